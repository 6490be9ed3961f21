"""What the published medical image sets share once read: fairtune's image-CSV layout.

A reader of a published set (:mod:`fairtune.datasets.skin`,
:mod:`fairtune.datasets.chest`) returns a :class:`MedicalTable`: one row per
image with a root-relative ``image`` path, a binary label column, sensitive
attribute columns already binarised the way the papers binarise them, a
``patient`` column, and a :class:`ReadSummary` of the rows read, dropped (by
reason) and kept. Written to a CSV in the image root, the frame is an image CSV
that ``fairtune train --image-col image`` reads into the same data.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from fairtune.errors import FairtuneError

IMAGE = "image"
PATIENT = "patient"
SEX = "sex"
AGE = "age"
AGE_CUT = 60


@dataclass(frozen=True)
class ReadSummary:
    """How many rows of a set's published files were read, dropped (per reason) and kept."""

    files: tuple[str, ...]
    rows_read: int
    dropped: tuple[tuple[str, int], ...] = ()
    layout: str = ""

    @property
    def kept(self) -> int:
        return self.rows_read - sum(n for _, n in self.dropped)

    def count(self, reason: str) -> int:
        """Rows dropped for ``reason`` (0 when none were)."""
        return sum(n for r, n in self.dropped if r == reason)

    def lines(self) -> list[str]:
        """The summary as printed: what was read, one line per reason rows were dropped, kept."""
        out = [f"layout: {self.layout}"] if self.layout else []
        out.append(f"read {self.rows_read} rows of {', '.join(self.files)}")
        out += [f"dropped {n}: {reason}" for reason, n in self.dropped if n]
        out.append(f"kept {self.kept}")
        return out

    def one_line(self) -> str:
        """The rows read, dropped and kept, in one line (the layout left out)."""
        return "; ".join(self.lines()[1:] if self.layout else self.lines())


@dataclass(frozen=True)
class MedicalTable:
    """A published set read into fairtune's image-CSV layout.

    ``frame`` (a pandas DataFrame) has the ``image`` column (paths relative to
    ``root``, the image root), the label column ``label``, the sensitive columns
    (``sensitive`` is the one used, ``attributes`` all the set offers) and the
    ``patient`` column; ``summary`` says which layout was found and what was read,
    dropped and kept. ``to_csv`` writes the frame as an image CSV, ``len`` counts
    its rows.
    """

    frame: pd.DataFrame
    root: Path
    label: str
    sensitive: tuple[str, ...]
    attributes: tuple[str, ...]
    summary: ReadSummary
    image_col: str = IMAGE
    patient: str = PATIENT

    def __len__(self) -> int:
        return len(self.frame)

    def to_csv(self, path: str | Path, **kwargs: Any) -> None:
        """Write the frame as an image CSV (no index): read it back with ``--data PATH
        --image-col image --image-root ROOT``, ROOT being :attr:`root`."""
        self.frame.to_csv(path, **{"index": False, **kwargs})

    def with_frame(self, frame: pd.DataFrame) -> MedicalTable:
        """The same set restricted to ``frame``'s rows (a part of a split)."""
        return replace(self, frame=frame)


@dataclass
class Drops:
    """Rows dropped so far, per reason, in the order the rules ran."""

    counts: list[tuple[str, int]] = field(default_factory=list)

    def keep(self, frame: pd.DataFrame, kept: pd.Series, reason: str) -> pd.DataFrame:
        """``frame``'s rows where ``kept`` is true; the others are counted under ``reason``."""
        kept = kept.fillna(False).astype(bool)
        self.counts.append((reason, int((~kept).sum())))
        return frame[kept]


@dataclass(frozen=True)
class Task:
    """The label column a reader writes and the sensitive attributes it offers and uses.

    ``sensitive`` None: the first of ``attributes``.
    """

    label: str
    attributes: tuple[str, ...]
    sensitive: Sequence[str] | None = None


def finish(
    frame: pd.DataFrame, root: Path, read: ReadSummary, unknown: dict[str, str], task: Task
) -> MedicalTable:
    """Drop the rows whose chosen sensitive attribute is unknown (each counted under its reason
    in ``unknown``: attribute -> reason) and assemble the table."""
    chosen = tuple(task.sensitive or task.attributes[:1])
    outside = [c for c in chosen if c not in task.attributes]
    if outside:
        raise FairtuneError(
            f"sensitive attribute(s) {outside} are not among this set's: "
            f"{', '.join(task.attributes)}"
        )
    drops = Drops(list(read.dropped))
    for column in chosen:
        frame = drops.keep(frame, frame[column].notna(), unknown[column])
    summary = replace(read, dropped=tuple(drops.counts))
    if frame.empty:
        raise FairtuneError(f"no rows left of {', '.join(read.files)}: {summary.one_line()}")
    frame = frame.reset_index(drop=True)
    return MedicalTable(frame, root, task.label, chosen, task.attributes, summary)


def read_file(path: Path) -> pd.DataFrame:
    """A published table (CSV, gzip-compressed when its name ends in .gz), or one line saying
    why it cannot be read."""
    try:
        return pd.read_csv(path, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise FairtuneError(f"cannot read '{path}' as CSV: {reason}") from None
    except (EOFError, zlib.error) as exc:
        raise FairtuneError(
            f"cannot read '{path}': the compressed file is cut short or damaged ({exc}); "
            "download it again (an interrupted download?)"
        ) from None
    except OSError as exc:
        raise FairtuneError(f"cannot read '{path}': {exc}") from None


def refuse_duplicates(frame: pd.DataFrame, keys: Sequence[str], file: str) -> None:
    """Fail when ``file`` lists a key (an image, a study) more than once: a damaged or
    concatenated download, whose rows cannot be told apart."""
    repeated = frame.duplicated(list(keys), keep="first")
    if repeated.any():
        first = frame.loc[repeated, list(keys)].iloc[0].tolist()
        raise FairtuneError(
            f"'{file}' lists {int(repeated.sum())} {' + '.join(keys)} more than once "
            f"(first: {', '.join(map(str, first))}): each must appear once in the published "
            "file; download it again"
        )


def require(frame: pd.DataFrame, columns: Sequence[str], file: str) -> None:
    """Fail naming the published columns ``file`` lacks (another release or another file)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FairtuneError(
            f"'{file}' lacks column(s) {missing} of the published layout; "
            f"its columns are {list(frame.columns)[:20]}"
        )


def folder_of(path: str | Path) -> Path:
    """The download folder, which must exist."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FairtuneError(f"'{path}' is not a folder: give the set's download folder")
    return folder


def sex_groups(values: pd.Series, codes: dict[str, str]) -> pd.Series:
    """'female' / 'male' from a published coding (``codes``: raw value -> group); other values
    (blank, 'Unknown') become missing."""
    return values.astype("string").str.strip().map(codes).astype(object)


def age_groups(values: pd.Series, cut: int = AGE_CUT) -> pd.Series:
    """'under CUT' / 'CUT and over' from ages in years; blanks (and non-numbers) become missing."""
    years = pd.to_numeric(values, errors="coerce")
    groups = pd.Series(None, index=values.index, dtype=object)
    groups[years < cut] = f"under {cut}"
    groups[years >= cut] = f"{cut} and over"
    return groups
