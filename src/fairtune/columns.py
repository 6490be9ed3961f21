"""A table's columns as fairtune reads them: which are the label and the sensitive
attributes, and their coding into 0/1 labels and group ids."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairtune.errors import FairtuneError

GROUP_JOIN = " & "


@dataclass(frozen=True)
class Columns:
    """The label column, the sensitive attribute column(s) and the label's positive value.

    ``sensitive`` may be given as one name; it is kept as a tuple of names.
    ``positive`` None means the label column already holds 0/1.
    """

    label: str
    sensitive: Sequence[str]
    positive: Any = None

    def __post_init__(self) -> None:
        names = (self.sensitive,) if isinstance(self.sensitive, str) else tuple(self.sensitive)
        object.__setattr__(self, "sensitive", names)
        check_roles(self.label, names)


def check_roles(label: str, sensitive: Sequence[str]) -> None:
    """Fail if the label column is also named as a sensitive attribute."""
    if label in sensitive:
        raise FairtuneError(
            f"'{label}' is named both as the label and as a sensitive attribute: "
            "the sensitive attribute must be another column (--sensitive)"
        )


def check_header(names: Sequence[Any], source: str) -> None:
    """Fail on a header that names a column twice (read as ``X`` and ``X.1``, the copy of
    a label would become a feature: a label leak)."""
    counts = Counter(str(n) for n in names)
    twice = sorted(n for n, c in counts.items() if c > 1)
    if twice:
        raise FairtuneError(
            f"the header of '{source}' names column(s) {twice} more than once: "
            "drop or rename the copies"
        )


def first_row(mask: np.ndarray) -> str:
    """Where the first True of ``mask`` is, as the user counts: data rows from 1 (row 1 is
    the line after the header)."""
    return f"row {int(np.flatnonzero(mask)[0]) + 1}, counting data rows from 1"


def encode_labels(values: pd.Series, positive: Any = None) -> np.ndarray:
    """0/1 labels from a column of two values; ``positive`` names the 1 class."""
    if values.isna().any():
        raise FairtuneError(
            f"label column '{values.name}' has {int(values.isna().sum())} missing values: "
            "drop or fill those rows"
        )
    if positive is not None:
        as_str = values.astype(str)
        if str(positive) not in set(as_str):
            raise FairtuneError(
                f"positive label '{positive}' does not occur in column '{values.name}'"
            )
        return (as_str == str(positive)).to_numpy(np.float32)
    distinct = set(pd.unique(values))
    if distinct <= {0, 1} or distinct <= {False, True}:
        return values.astype(np.float32).to_numpy()
    raise FairtuneError(
        f"label column '{values.name}' holds {sorted(map(str, distinct))[:5]}, not 0/1: "
        "name the positive class with --positive"
    )


def group_values(frame: pd.DataFrame, sensitive: Sequence[str]) -> pd.Series:
    """One group name per row; several columns are crossed ("Female & Black")."""
    missing = [c for c in sensitive if c not in frame.columns]
    if missing:
        raise FairtuneError(
            f"sensitive column(s) {missing} not in the data; columns are {list(frame.columns)[:20]}"
        )
    parts = []
    for col in sensitive:
        if frame[col].isna().any():
            raise FairtuneError(
                f"sensitive column '{col}' has missing values: drop or fill those rows"
            )
        parts.append(frame[col].astype(str))
    names = parts[0]
    for part in parts[1:]:
        names = names + GROUP_JOIN + part
    return names


def encode_groups(
    frame: pd.DataFrame, sensitive: Sequence[str], group_names: Sequence[str] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Group ids and their names; known ``group_names`` keep ids stable across files."""
    names = group_values(frame, sensitive)
    if group_names is None:
        group_names = tuple(sorted(pd.unique(names)))
    lookup = {name: i for i, name in enumerate(group_names)}
    unknown = sorted(set(pd.unique(names)) - set(lookup))
    if unknown:
        raise FairtuneError(
            f"group(s) {unknown} of '{GROUP_JOIN.join(sensitive)}' were not seen when the model "
            f"was trained (known: {list(group_names)})"
        )
    return names.map(lookup).to_numpy(np.int64), tuple(group_names)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Fail naming the ``what`` columns (label, feature, ...) that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FairtuneError(
            f"{what} column(s) {missing} not in the data; columns are {list(frame.columns)[:20]}"
        )


def check_present(series: pd.Series, role: str = "feature") -> None:
    """Fail on missing values in a non-numeric column (text categories, labels)."""
    missing = series.isna().to_numpy()
    if missing.any():
        raise FairtuneError(
            f"{role} column '{series.name}' has {int(missing.sum())} missing values "
            f"(first at {first_row(missing)}): drop or fill them"
        )
