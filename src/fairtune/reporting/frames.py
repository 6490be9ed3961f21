"""Results as a pandas DataFrame, and results.json read back into result rows.

``results_frame(rows)`` is tidy: one row per method, seed and test set, one
column per metric at threshold 0.5 (``auc@0.5``) and at the chosen threshold t
(``auc@t``), each with its 95% bootstrap interval (``auc@t_low``,
``auc@t_high``); the settings kept are in ``chosen``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fairtune.errors import FairtuneError
from fairtune.evaluation.measurement import VALUE_KEYS
from fairtune.selection.results import ResultRow


def _line(row: ResultRow) -> dict[str, Any]:
    """One row of the frame."""
    chosen = row.selection.chosen
    line: dict[str, Any] = {
        "method": row.method,
        "seed": row.seed,
        "test_set": row.test_set,
        "threshold": row.threshold,
        "wall_time_s": row.wall_time_s,
        "chosen": None if chosen is None else json.dumps(chosen, sort_keys=True),
        "failed": row.failed,
    }
    at = (("0.5", row.metrics, row.ci), ("t", row.metrics_tuned, row.ci_tuned))
    for suffix, metrics, ci in at:
        for key in VALUE_KEYS:
            low, high = (ci.of(key) if ci else None) or (math.nan, math.nan)
            line[f"{key}@{suffix}"] = metrics.value(key)
            line[f"{key}@{suffix}_low"] = low
            line[f"{key}@{suffix}_high"] = high
        line[f"degenerate@{suffix}"] = metrics.degenerate
    return line


def results_frame(rows: Sequence[ResultRow]) -> pd.DataFrame:
    """The rows of a comparison (``fairtune.compare`` or :func:`load_results`) as a tidy
    DataFrame: one row per method, seed and test set; per metric its value and 95%
    interval at 0.5 and at t."""
    return pd.DataFrame([_line(r) for r in rows])


def load_results(path: str | Path) -> list[ResultRow]:
    """The result rows of a ``results.json`` (or of the compare folder that holds it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        records = json.loads(path.read_text())
        return [ResultRow.from_dict(record) for record in records]
    except (OSError, json.JSONDecodeError, TypeError, KeyError, ValueError) as error:
        raise FairtuneError(f"{path} is not a results.json that compare wrote: {error}") from None
