"""Result rows of a comparison and their summaries over seeds.

One :class:`ResultRow` per (method, seed); ``to_dict`` is its results.json form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass
class ResultRow:
    """One method at one seed: its settings, cost, threshold and test metrics."""

    method: str
    seed: int
    config: dict[str, Any]
    wall_time_s: float
    threshold: float
    threshold_rule: str
    metrics: dict[str, Any]  # on the test set at threshold 0.5
    metrics_tuned: dict[str, Any]  # on the test set at ``threshold``
    ci: dict[str, Any] | None
    ci_tuned: dict[str, Any] | None
    selection: dict[str, Any]
    arch: str | None = None  # the image model's architecture, where one was named

    def to_dict(self) -> dict[str, Any]:
        """The row as results.json holds it (``arch`` only where set)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.arch is None:
            del out["arch"]
        return out


def summarise(rows: Sequence[ResultRow], key: str, tuned: bool = False) -> dict[str, Any]:
    """Per method: mean, standard deviation over seeds and (one seed) the bootstrap interval
    of metric ``key`` (or of ``wall_time_s``)."""
    out: dict[str, Any] = {}
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        values = np.array([_value(r, key, tuned) for r in mine], dtype=float)
        ci = (mine[0].ci_tuned if tuned else mine[0].ci) if len(mine) == 1 else None
        out[method] = {
            "mean": float(np.nanmean(values)) if not np.isnan(values).all() else math.nan,
            "std": float(np.nanstd(values)) if len(values) > 1 else math.nan,
            "ci": None if ci is None else ci.get(key),
            "n_seeds": len(mine),
        }
    return out


def _value(row: ResultRow, key: str, tuned: bool) -> float:
    if key == "wall_time_s":
        return row.wall_time_s
    return (row.metrics_tuned if tuned else row.metrics)[key]
