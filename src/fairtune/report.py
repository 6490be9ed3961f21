"""Report: tables for the terminal, JSON and CSV files, the fairness-against-AUC plot."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fairtune.io import atomic_path, atomic_write_text

LABELS = {
    "auc": "AUC",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced acc.",
    "f1": "F1",
    "eodds_mean": "EOdds (mean)",
    "eodds_worst": "EOdds (worst-case)",
    "eopp": "EOpp",
    "dp": "DP",
    "worst_group_auc": "worst-group AUC",
    "auc_gap": "AUC gap",
    "ece": "ECE",
}
EXPLAIN = (
    "EOdds (mean) = 0.5·(|ΔTPR|+|ΔFPR|) as in the BMFT/SWiFT papers; EOdds (worst-case) = "
    "max(|ΔTPR|,|ΔFPR|) as fairlearn; Δ = largest minus smallest group; lower is fairer."
)

console = Console()


def fmt(value: float | None, ci: Sequence[float] | None = None) -> str:
    """A number with three decimals and, if given, its confidence interval."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.3f}"
    if ci is not None and not any(c is None or math.isnan(c) for c in ci):
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def overall_table(metrics: dict[str, Any], ci: dict[str, Any] | None, title: str) -> Table:
    """One row per metric: its value at the threshold, with a bootstrap interval."""
    table = Table(title=title, caption=EXPLAIN)
    table.add_column("metric")
    table.add_column("value [95% CI]", justify="right")
    for key, label in LABELS.items():
        table.add_row(label, fmt(metrics.get(key), (ci or {}).get(key)))
    return table


def groups_table(metrics: dict[str, Any], attribute: str) -> Table:
    """One row per group: size, positives, AUC, accuracy, TPR, FPR, positive rate, ECE."""
    table = Table(title=f"by group ({attribute}), threshold {metrics['threshold']:.3f}")
    cols = ["n", "positives", "auc", "accuracy", "tpr", "fpr", "positive_rate", "ece"]
    table.add_column("group")
    for col in cols:
        table.add_column(col.replace("_", " "), justify="right")
    for name, row in metrics["by_group"].items():
        cells = [str(row[c]) if c in ("n", "positives") else fmt(row[c]) for c in cols]
        table.add_row(name, *cells)
    return table


def clean(obj: Any) -> Any:
    """JSON-ready copy: NaN and infinities become null, tuples become lists."""
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically, NaN as null."""
    atomic_write_text(path, json.dumps(clean(obj), indent=2) + "\n")


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write flat dict rows as CSV, atomically; columns in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(clean(rows))
    atomic_write_text(path, buffer.getvalue())


def save_figure(fig: Any, path: str | Path) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
