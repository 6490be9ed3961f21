"""The image CSV reader: one row per image, a path column, a label and sensitive attributes.

An image set is a CSV with one row per image (ISIC / Fitzpatrick17k / CheXpert
style): a column with the image path, a label column and sensitive attribute
columns. :func:`read_image_csv` turns it into a :class:`~fairtune.data.FairData`
whose inputs are an :class:`~fairtune.images.ImageSource`, decoded from disk one
item at a time. :class:`ImageOptions` are the reader settings a model saves, so
every later command reads its images alike; :class:`ImageReading` are those of
one reading alone.

Row numbers in messages and reports count the CSV's data rows from 1, the header
not counted (row 1 is the line after the header).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fairtune.augment import Augment
from fairtune.binarize import apply_binarize
from fairtune.columns import GROUP_JOIN, Columns, encode_groups, encode_labels
from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.images import MAX_PIXELS, Decoding, ImageSource
from fairtune.settings import check, setting

__all__ = ["ImageOptions", "ImageReading", "image_paths", "read_image_csv"]


@dataclass(frozen=True)
class ImageOptions:
    """The reader settings saved in a model's config: path column, decoding, binarising rules.

    ``binarize`` maps a sensitive column to a rule (see
    :func:`~fairtune.binarize.parse_binarize`).
    """

    image_col: str
    decoding: Decoding = field(default_factory=Decoding)
    binarize: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The saved form (``ModelConfig.images``)."""
        return {
            "image_col": self.image_col,
            "image_size": self.decoding.image_size,
            "channels": self.decoding.channels,
            "mean": self.decoding.mean,
            "std": self.decoding.std,
            "binarize": self.binarize,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageOptions:
        """Options from their saved form; keys missing from older configs take their defaults."""
        decoding = Decoding(d["image_size"], d.get("channels", 3), d.get("mean"), d.get("std"))
        return cls(d["image_col"], decoding, d.get("binarize"))


@dataclass(frozen=True)
class ImageReading:
    """Where the images of one reading are and how to treat them; not saved with a model.

    ``image_root`` is the folder relative paths start from (None: the CSV's
    folder); ``skip_bad`` drops unreadable files instead of failing;
    ``augment`` augments every item read; ``allow_outside_root`` lets paths
    lead out of the image root (refused by default: a CSV naming
    ``../../etc/passwd`` must not make fairtune open it); ``max_pixels`` limits
    an image's decoded size.
    """

    image_root: str | os.PathLike[str] | None = None
    skip_bad: bool = False
    augment: Augment | None = None
    allow_outside_root: bool = False
    max_pixels: int = setting(MAX_PIXELS, "largest image, in pixels, that is decoded", low=1)

    def __post_init__(self) -> None:
        check(self, "image reading")


def read_image_csv(
    csv_path: str | os.PathLike[str],
    options: ImageOptions,
    columns: Columns,
    group_names: Sequence[str] | None = None,
    reading: ImageReading = ImageReading(),
    frame: pd.DataFrame | None = None,
) -> tuple[FairData, dict[str, Any]]:
    """Read an image set described by a CSV into :class:`~fairtune.data.FairData`.

    ``frame``: the CSV's rows already read (a published set read by
    ``fairtune.datasets``); ``csv_path`` then names their source in messages.

    The ``options.image_col`` column holds paths relative to
    ``reading.image_root`` (default: the CSV's folder) or absolute ones. Missing
    files always fail here, before any training, unless ``reading.skip_bad``:
    then every file is checked (:meth:`ImageSource.scan`) and the bad rows are
    dropped and listed in the report. Known ``group_names`` keep group ids
    stable across files.

    Returns the data and a report: ``csv``, ``rows_read``, ``rows_used``,
    ``bad_rows`` (row, file, reason) and, with ``options.binarize``, ``binarized``.
    """
    csv_path = Path(csv_path)
    frame = _read_frame(csv_path, options, columns) if frame is None else frame
    report: dict[str, Any] = {"csv": str(csv_path), "rows_read": len(frame)}
    paths = image_paths(csv_path, frame[options.image_col], reading)
    source = ImageSource(
        paths,
        options.decoding,
        augment=reading.augment,
        rows=np.arange(len(frame)),
        origin=f"'{csv_path.name}'",
        max_pixels=reading.max_pixels,
    )

    if reading.skip_bad:
        bad = source.scan(decode=True)  # verify() alone lets a truncated JPEG through
    else:
        absent = [i for i, p in enumerate(paths) if not os.path.isfile(p)]
        if absent:
            first = absent[0]
            raise FairtuneError(
                f"{len(absent)} image file(s) listed in '{csv_path.name}' do not exist, first "
                f"'{paths[first]}' (row {first + 1}); check the image root "
                f"('{_root(csv_path, reading.image_root)}') or "
                "skip bad images (--skip-bad-images, or skip_bad=True)"
            )
        bad = []
    if bad:
        keep = np.setdiff1d(np.arange(len(frame)), [b["index"] for b in bad])
        source = source.take(keep)
        frame = frame.iloc[keep]
    report["bad_rows"] = [{k: b[k] for k in ("row", "file", "reason")} for b in bad]
    report["rows_used"] = len(frame)
    if len(frame) == 0:
        raise FairtuneError(f"no readable images left in '{csv_path.name}'")

    if options.binarize:
        frame, report["binarized"] = apply_binarize(frame, options.binarize)
    labels = encode_labels(frame[columns.label], columns.positive)
    groups, names = encode_groups(frame, columns.sensitive, group_names)
    data = FairData(
        source,
        torch.tensor(labels),
        torch.tensor(groups),
        names,
        attribute=GROUP_JOIN.join(columns.sensitive),
    )
    return data, report


def _read_frame(csv_path: Path, options: ImageOptions, columns: Columns) -> pd.DataFrame:
    """The CSV's rows, once it is known to name every column the reading needs."""
    if not csv_path.is_file():
        raise FairtuneError(f"image CSV '{csv_path}' does not exist")
    try:
        frame = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FairtuneError(
            f"cannot parse CSV '{csv_path}': {' '.join(str(exc).split())}"
        ) from None
    sensitive = list(columns.sensitive)
    needed = dict.fromkeys([options.image_col, columns.label, *sensitive])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise FairtuneError(
            f"column(s) {missing} not in '{csv_path.name}'; columns are {list(frame.columns)[:20]}"
        )
    if options.binarize:
        outside = [c for c in options.binarize if c not in sensitive]
        if outside:
            raise FairtuneError(
                f"binarize names {outside}, which are not sensitive columns ({sensitive})"
            )
    return frame


def _root(csv_path: Path, image_root: str | os.PathLike[str] | None) -> Path:
    """The folder relative image paths start from."""
    return Path(image_root) if image_root is not None else csv_path.parent


def image_paths(csv_path: Path, names: pd.Series, reading: ImageReading) -> list[str]:
    """Each row's image file: absolute as written, or relative to the image root; inside
    the root unless ``reading.allow_outside_root``. The check follows symlinks first
    (``os.path.realpath``): a link in the root to a file elsewhere leads outside it."""
    empty = names.isna() | (names.astype(str).str.strip() == "")
    if empty.any():
        raise FairtuneError(
            f"image column '{names.name}' is empty in {int(empty.sum())} row(s) of "
            f"'{csv_path.name}' (first: row {int(np.flatnonzero(empty.to_numpy())[0]) + 1})"
        )
    root = _root(csv_path, reading.image_root)
    paths = [str(root / p) if not os.path.isabs(p) else p for p in names.astype(str).str.strip()]
    if not reading.allow_outside_root:
        inside = os.path.join(os.path.realpath(root), "")
        outside = [i for i, p in enumerate(paths) if not os.path.realpath(p).startswith(inside)]
        if outside:
            first = outside[0]
            raise FairtuneError(
                f"{len(outside)} image path(s) in '{csv_path.name}' lead outside the image root "
                f"'{root}', first '{names.iloc[first]}' (row {first + 1}): fix the paths, set "
                "--image-root, or allow them with --allow-outside-root"
            )
    return paths
