"""Report: tables for the terminal, JSON and CSV files, the fairness-against-AUC plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table

from fairtune.comparison import CompareSettings
from fairtune.console import console
from fairtune.io import atomic_dir, save_figure, write_csv, write_json
from fairtune.metrics import METRICS
from fairtune.results import ResultRow, summarise

LABELS = {m.key: m.label for m in METRICS if m.overall}
COMPARE_KEYS = tuple(m.key for m in METRICS if m.compared)
BOTH_THRESHOLDS = tuple(m.key for m in METRICS if m.compared and m.threshold_dependent)
GROUP_COLUMNS = tuple(m for m in METRICS if m.per_group)

EXPLAIN = (
    "EOdds (mean) = 0.5·(|ΔTPR|+|ΔFPR|) as in the BMFT/SWiFT papers; EOdds (worst-case) = "
    "max(|ΔTPR|,|ΔFPR|) as fairlearn; Δ = largest minus smallest group; lower is fairer."
)


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
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value [95% CI]", justify="right")
    for key, label in LABELS.items():
        table.add_row(label, fmt(metrics.get(key), (ci or {}).get(key)))
    return table


def groups_table(metrics: dict[str, Any], attribute: str) -> Table:
    """One row per group: size, positives, AUC, accuracy, TPR, FPR, positive rate, ECE."""
    table = Table(title=f"by group ({attribute}), threshold {metrics['threshold']:.3f}")
    table.add_column("group")
    for col in GROUP_COLUMNS:
        table.add_column(col.key.replace("_", " "), justify="right")
    for name, row in metrics["by_group"].items():
        cells = [str(row[c.key]) if c.count else fmt(row[c.key]) for c in GROUP_COLUMNS]
        table.add_row(name, *cells)
    return table


def _cell(stat: dict[str, Any]) -> str:
    """mean±std over seeds, or the value±half its 95% interval for one seed."""
    mean = stat["mean"]
    if mean is None or math.isnan(mean):
        return "n/a"
    if stat["n_seeds"] > 1:
        return f"{mean:.3f}±{stat['std']:.3f}"
    ci = stat.get("ci")
    if ci and not any(c is None or math.isnan(c) for c in ci):
        return f"{mean:.3f}±{(ci[1] - ci[0]) / 2:.3f}"
    return f"{mean:.3f}"


def compare_table(rows: list[ResultRow], title: str) -> Table:
    """Method x metrics; threshold-dependent metrics at 0.5 and at the chosen threshold."""
    n_seeds = len({r.seed for r in rows})
    spread = (
        f"mean±std over {n_seeds} seeds" if n_seeds > 1 else "value±half the 95% bootstrap interval"
    )
    table = Table(
        title=title,
        caption=f"{spread}; '0.5 | t': at threshold 0.5 and at the chosen threshold t. {EXPLAIN}",
    )
    table.add_column("method")
    for key in COMPARE_KEYS:
        suffix = "\n0.5 | t" if key in BOTH_THRESHOLDS else ""
        table.add_column(LABELS[key] + suffix, justify="right")
    table.add_column("time s", justify="right")
    at_half = {k: summarise(rows, k) for k in COMPARE_KEYS}
    tuned = {k: summarise(rows, k, tuned=True) for k in BOTH_THRESHOLDS}
    times = summarise(rows, "wall_time_s")
    for method in at_half["auc"]:
        cells = []
        for key in COMPARE_KEYS:
            cell = _cell(at_half[key][method])
            if key in BOTH_THRESHOLDS:
                cell += " | " + _cell(tuned[key][method])
            cells.append(cell)
        table.add_row(method, *cells, f"{times[method]['mean']:.1f}")
    return table


def fairness_plot(rows: list[ResultRow], path: str | Path, title: str) -> None:
    """EOdds (mean) against AUC per method, at 0.5 and at the chosen threshold (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    auc = summarise(rows, "auc")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, tuned, label in (
        (axes[0], False, "threshold 0.5"),
        (axes[1], True, "chosen threshold"),
    ):
        eodds = summarise(rows, "eodds_mean", tuned=tuned)
        for method, stat in eodds.items():
            x, y = auc[method]["mean"], stat["mean"]
            xerr = None if math.isnan(auc[method]["std"]) else auc[method]["std"]
            yerr = None if math.isnan(stat["std"]) else stat["std"]
            marker = "*" if method == "baseline" else "o"
            ax.errorbar(
                x,
                y,
                xerr=xerr,
                yerr=yerr,
                fmt=marker,
                markersize=10 if marker == "*" else 6,
                capsize=3,
                label=method,
            )
            ax.annotate(method, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_xlabel("AUC (test)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("EOdds, mean of |ΔTPR| and |ΔFPR| (test; lower is fairer)")
    fig.suptitle(title)
    save_figure(fig, path)
    plt.close(fig)


def flat_rows(rows: list[ResultRow]) -> list[dict[str, Any]]:
    """One CSV line per (method, seed): the settings chosen and every test metric."""
    flat = []
    for r in rows:
        line: dict[str, Any] = {
            "method": r.method,
            "seed": r.seed,
            "wall_time_s": r.wall_time_s,
            "threshold": r.threshold,
        }
        line.update({f"{k}@0.5": v for k, v in r.metrics.items() if k != "by_group"})
        line.update({f"{k}@t": v for k, v in r.metrics_tuned.items() if k != "by_group"})
        line["chosen"] = str(r.selection.get("chosen", ""))
        flat.append(line)
    return flat


def write_comparison(
    out: str | Path,
    rows: list[ResultRow],
    title: str,
    settings: CompareSettings,
    extra: dict[str, Any],
) -> None:
    """Write results.json, results.csv, settings.json and the plot; print the table."""
    with atomic_dir(out) as tmp:
        write_json(tmp / "results.json", [r.to_dict() for r in rows])
        write_csv(tmp / "results.csv", flat_rows(rows))
        write_json(
            tmp / "settings.json",
            {
                **extra,
                "compare": asdict(settings),
                "selection_rule": settings.selection_rule().text(),
                "threshold_rule": settings.threshold_text(),
            },
        )
        fairness_plot(rows, tmp / "fairness_vs_auc.png", title)
    console.print(compare_table(rows, title))
    if settings.grid:
        console.print(f"Selection: {settings.selection_rule().text()}.")
        for method in settings.grids:
            console.print(f"  {method} searched {settings.grid_of(method)} (narrowed grid)")
        for r in rows:
            if r.method != "baseline":
                console.print(f"  {r.method} (seed {r.seed}): {r.selection['chosen']}")
    console.print(f"Threshold t: {settings.threshold_text()}.")
    console.print(
        f"Report written to {out}/ (results.json, results.csv, settings.json, fairness_vs_auc.png)"
    )
