"""Binarised attributes: a several-valued sensitive column turned into two groups by a rule.

A rule is an inclusive numeric range (``"1-3"``) or a comma list of values
(``"1,2,3"``, ``"Black,Asian"``); this module works on pandas frames alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairtune.errors import FairtuneError

__all__ = ["apply_binarize", "parse_binarize"]

_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class _Rule:
    """One binarisation rule: an inclusive numeric range or a list of values."""

    text: str
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()

    def contains(self, value: Any) -> bool:
        number = _as_number(value)
        if self.low is not None and self.high is not None:
            return number is not None and self.low <= number <= self.high
        if str(value).strip() in self.values:
            return True
        return number is not None and any(_as_number(v) == number for v in self.values)


def _as_number(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _parse_rule(column: str, text: str) -> _Rule:
    text = str(text).strip()
    match = _RANGE.match(text)
    if match:
        low, high = float(match.group(1)), float(match.group(2))
        if low > high:
            raise FairtuneError(
                f"binarize rule '{column}:{text}': the range's start exceeds its end"
            )
        return _Rule(text, low=low, high=high)
    values = tuple(v.strip() for v in text.split(","))
    if not text or any(not v for v in values):
        raise FairtuneError(
            f"binarize rule '{column}:{text}' is malformed: give a range like 'fitzpatrick:1-3' "
            "or a list like 'fitzpatrick:1,2,3'"
        )
    return _Rule(text, values=values)


def parse_binarize(specs: str | Sequence[str]) -> dict[str, str]:
    """Parse ``"column:rule"`` strings into ``{column: rule}``.

    A rule is an inclusive numeric range (``"fitzpatrick:1-3"``) or a comma list
    of values (``"fitzpatrick:1,2,3"``, ``"race:Black,Asian"``).
    """
    if isinstance(specs, str):
        specs = [specs]
    rules: dict[str, str] = {}
    for spec in specs:
        column, sep, rule = str(spec).rpartition(":")
        column, rule = column.strip(), rule.strip()
        if not sep or not column or not rule:
            raise FairtuneError(
                f"binarize rule '{spec}' is malformed: write column:rule, e.g. 'fitzpatrick:1-3' "
                "or 'fitzpatrick:1,2,3'"
            )
        if column in rules:
            raise FairtuneError(f"binarize names column '{column}' twice")
        _parse_rule(column, rule)
        rules[column] = rule
    return rules


def apply_binarize(
    frame: pd.DataFrame, binarize: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, dict[str, list[str]]]]:
    """Replace each named column by two groups, ``"<col> <rule>"`` and ``"<col> other"``.

    Returns the new frame and, per column, which raw values went to which group
    (so a code such as -1 for "unknown" landing in "other" is visible).
    Missing values stay missing, so the group encoding reports them.
    """
    frame = frame.copy()
    summary: dict[str, dict[str, list[str]]] = {}
    for column, text in binarize.items():
        if column not in frame.columns:
            raise FairtuneError(
                f"binarize names column '{column}', not in the data; "
                f"columns are {list(frame.columns)[:20]}"
            )
        rule = _parse_rule(column, text)
        inside, other = f"{column} {rule.text}", f"{column} other"
        series = frame[column]
        present = series.notna()
        member = series[present].map(rule.contains).astype(bool)
        new = pd.Series(np.where(present, other, None), index=frame.index, dtype=object)
        new[member[member].index] = inside
        summary[column] = {
            inside: sorted({str(v) for v in series[present][member]}),
            other: sorted({str(v) for v in series[present][~member]}),
        }
        frame[column] = new.where(present, np.nan)
    return frame, summary
