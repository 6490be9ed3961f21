"""Report: tables for the terminal, JSON and CSV files, the fairness-against-AUC plot."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table

from fairtune.console import console
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.measurement import Intervals, Metrics
from fairtune.evaluation.metrics import METRIC_KEYS, METRICS
from fairtune.io import atomic_dir, atomic_write_text, write_csv, write_json
from fairtune.reporting.markdown import (
    REPORT_FILE,
    ReportPart,
    chosen_lines,
    report_markdown,
    settings_lines,
)
from fairtune.reporting.notes import notes
from fairtune.reporting.plot import fairness_plot
from fairtune.reporting.tables import (
    DEGENERATE,
    degenerate_note,
    fmt,
    fold,
    headline_table,
    print_whole,
)
from fairtune.selection.comparison import CompareSettings
from fairtune.selection.results import (
    ResultRow,
    by_test_set,
    degenerate_methods,
    spread,
    summarise,
)

LABELS = {m.key: m.label for m in METRICS if m.overall or m.curve}
COMPARE_KEYS = tuple(m.key for m in METRICS if m.compared)
BOTH_THRESHOLDS = tuple(m.key for m in METRICS if m.compared and m.threshold_dependent)
AT_THRESHOLD = frozenset(m.key for m in METRICS if m.threshold_dependent)
GROUP_COLUMNS = tuple(m for m in METRICS if m.per_group)

EXPLAIN = (
    "EOdds (mean) = 0.5·(|ΔTPR|+|ΔFPR|) as in the BMFT/SWiFT papers; EOdds (worst-case) = "
    "max(|ΔTPR|,|ΔFPR|) as fairlearn; Δ = largest minus smallest group; lower is fairer."
)

def _point_label(key: str) -> str:
    """``specificity_0.8`` -> ``specificity 0.8``."""
    return key.replace("_", " ")


def overall_table(metrics: Metrics, ci: Intervals | None, title: str) -> Table:
    """One row per metric: its value at the threshold, with a bootstrap interval.

    Then EOdds (mean) at each operating point. Values taken where the model is
    degenerate carry :data:`DEGENERATE` and the caption names the groups.
    """
    flagged = metrics.degenerate
    notes = []
    if flagged:
        groups = ", ".join(metrics.degenerate_groups)
        notes.append(
            f"WARNING: degenerate at threshold {metrics.threshold:.3f}: group(s) {groups} "
            "get (almost) one decision"
        )
    rows = []
    for key, label in LABELS.items():
        mark = DEGENERATE if flagged and key in AT_THRESHOLD else ""
        rows.append((label, fmt(metrics.value(key), ci.of(key) if ci else None) + mark))
    for key, point in metrics.operating_points.items():
        text = "n/a"
        if point is not None:
            mark = DEGENERATE if point.degenerate.flagged else ""
            text = f"{fmt(point.eodds_mean)}{mark} (t {point.threshold:.3f})"
            if mark:
                notes.append(f"WARNING: degenerate at {_point_label(key)}")
        rows.append((f"EOdds (mean) at {_point_label(key)}", text))
    if notes:
        notes.append(degenerate_note())
    table = Table(title=title, caption="\n".join(notes) or None)
    table.add_column("metric")
    table.add_column("value [95% CI]", justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def groups_table(metrics: Metrics, attribute: str) -> Table:
    """One row per group: size, positives, AUC, accuracy, TPR, FPR, positive rate, ECE."""
    table = Table(title=f"by group ({attribute}), threshold {metrics.threshold:.3f}")
    table.add_column("group")
    for col in GROUP_COLUMNS:
        table.add_column(col.key.replace("_", " "), justify="right")
    for name, group in metrics.by_group.items():
        cells = [
            str(getattr(group, c.key)) if c.count else fmt(getattr(group, c.key))
            for c in GROUP_COLUMNS
        ]
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


def _point_key(rows: Sequence[ResultRow], criterion: str) -> str | None:
    """The rows' operating point for ``criterion``, e.g. ``specificity_0.8``."""
    for r in rows:
        for key in r.operating_points():
            if key.startswith(criterion + "_"):
                return key
    return None


def _at_point(
    rows: Sequence[ResultRow], key: str, metric: str
) -> tuple[dict[str, Any], set[str]]:
    """Per method, the spread of ``metric`` at operating point ``key``; the degenerate ones.

    The point does not move with the threshold, so it is read from the 0.5
    metrics; it has no bootstrap interval.
    """
    points = [(r, r.operating_points().get(key)) for r in rows]
    values = [math.nan if p is None else p.gaps[metric] for _, p in points]
    flagged = {r.method for r, p in points if p is not None and p.degenerate.flagged}
    return spread(rows, values), flagged


def compare_table(
    rows: list[ResultRow], title: str, criterion: Criterion | None = None
) -> Table:
    """Method x metrics, led by the criterion's metric (the objective, default EOdds (mean));
    threshold-dependent metrics at the chosen threshold t and at 0.5.

    Then ABROCA and the criterion's metric at the specificity operating point. A
    cell whose method is degenerate there in some seed carries :data:`DEGENERATE`.
    """
    criterion = criterion or Criterion()
    head = criterion.key
    keys = (head, *(k for k in COMPARE_KEYS if k != head))
    n_seeds = len({r.seed for r in rows})
    spread = (
        f"mean±std over {n_seeds} seeds"
        if n_seeds > 1
        else "value±half the 95% bootstrap interval (none for ABROCA and operating points)"
    )
    point = _point_key(rows, "specificity")
    point_text = ""
    if point:
        pinned, level = point.rsplit("_", 1)
        point_text = (
            f"{criterion.label} at {_point_label(point)}: at the threshold where the overall "
            f"{pinned} on the test rows is {level} (descriptive); "
        )
    table = Table(
        title=title,
        caption=(
            f"Objective {criterion.objective}: {criterion.declared.meaning}; its "
            f"{criterion.label} leads the table and chose the models. "
            f"{spread}; 't | 0.5': at the chosen threshold t, then at threshold 0.5; "
            f"{point_text}ABROCA: area between the groups' ROC curves, threshold-free. "
            f"{degenerate_note(' (in at least one seed)')}. {EXPLAIN}"
        ),
    )
    table.add_column("method", no_wrap=True)
    both = (*BOTH_THRESHOLDS, head)
    for key in keys:
        suffix = "\nt | 0.5" if key in both else ""
        table.add_column(LABELS[key] + suffix, justify="right")
    if point:
        table.add_column(f"{criterion.label}\n{_point_label(point)}", justify="right")
    table.add_column("time s", justify="right")
    at_half = {k: summarise(rows, k) for k in keys}
    tuned = {k: summarise(rows, k, tuned=True) for k in both}
    flagged = {is_t: degenerate_methods(rows, tuned=is_t) for is_t in (True, False)}
    at_point, point_flagged = _at_point(rows, point, head) if point else ({}, set())
    times = summarise(rows, "wall_time_s")
    for method in at_half["auc"]:
        cells = []
        for key in keys:
            if key not in both:
                cells.append(_cell(at_half[key][method]))
                continue
            t_cell, half_cell = (
                _cell(stats[key][method]) + (DEGENERATE if method in flagged[is_t] else "")
                for stats, is_t in ((tuned, True), (at_half, False))
            )
            cells.append(f"{t_cell} | {half_cell}")
        if point:
            mark = DEGENERATE if method in point_flagged else ""
            cells.append(_cell(at_point[method]) + mark)
        table.add_row(method, *cells, f"{times[method]['mean']:.1f}")
    return table


def _verdict_columns(row: ResultRow) -> dict[str, Any]:
    """CSV columns of a row's verdicts: ABROCA, degeneracy at 0.5 and t, each operating point."""
    out: dict[str, Any] = {"abroca": row.metrics.abroca}
    for where, m in (("0.5", row.metrics), ("t", row.metrics_tuned)):
        out[f"degenerate@{where}"] = m.degenerate
        out[f"degenerate_groups@{where}"] = ";".join(m.degenerate_groups)
    for key, point in row.operating_points().items():
        for name in ("threshold", "eodds_mean", "eodds_worst", "accuracy"):
            out[f"{name}@{key}"] = None if point is None else getattr(point, name)
        out[f"degenerate@{key}"] = None if point is None else point.degenerate.flagged
    return out


def flat_rows(rows: list[ResultRow]) -> list[dict[str, Any]]:
    """One CSV line per (method, seed) and, where there are several, test set: the settings
    chosen and every test metric."""
    flat = []
    for r in rows:
        line: dict[str, Any] = {
            "method": r.method,
            **({"test_set": r.test_set} if r.test_set is not None else {}),
            "seed": r.seed,
            "wall_time_s": r.wall_time_s,
            "threshold": r.threshold,
        }
        for where, m in (("0.5", r.metrics), ("t", r.metrics_tuned)):
            line.update({f"{k}@{where}": m.value(k) for k in METRIC_KEYS})
            line.update({f"threshold@{where}": m.threshold, f"n@{where}": m.n})
        line["chosen"] = str(r.selection.chosen)
        line.update(_verdict_columns(r))
        flat.append(line)
    return flat


def show_tables(
    rows: list[ResultRow], title: str, wide: bool = False, criterion: Criterion | None = None
) -> None:
    """Print the headline table on ``criterion``, then every metric: in one table when
    ``wide`` or when the output is not a terminal (a file, a log), else folded to the
    terminal's width."""
    console.print(headline_table(rows, title, criterion))
    full = compare_table(rows, f"{title}: every metric", criterion)
    if wide or not console.is_terminal:
        print_whole(console, full)
        return
    for table in fold(full, console.width):
        console.print(table)


def plot_files(names: Sequence[str | None]) -> dict[str | None, str]:
    """The plot's file per test set: ``fairness_vs_auc.png`` for the one test set, else
    ``fairness_vs_auc_<name>.png`` (characters unfit for a file name as ``_``; numbered
    where two names would give one file)."""
    if names == [None]:
        return {None: "fairness_vs_auc.png"}
    safe = [re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)) for name in names]
    if len(set(safe)) < len(safe):
        safe = [f"{i + 1}_{name}" for i, name in enumerate(safe)]
    return {name: f"fairness_vs_auc_{file}.png" for name, file in zip(names, safe, strict=True)}


def write_comparison(
    out: str | Path,
    rows: list[ResultRow],
    title: str,
    settings: CompareSettings,
    extra: dict[str, Any],
    wide: bool = False,
    saved: str | None = None,
) -> None:
    """Write report.md, results.json, results.csv, settings.json and the plot (one per test
    set where there are several, its caption naming where the selected models are:
    ``saved``); print the tables (:func:`show_tables`) and the notes (per test set)."""
    sets = by_test_set(rows)
    titles = {name: title if name is None else f"{title}, test {name}" for name in sets}
    plots = plot_files(list(sets))
    with atomic_dir(out) as tmp:
        write_json(tmp / "results.json", [r.to_dict() for r in rows])
        write_csv(tmp / "results.csv", flat_rows(rows))
        write_json(
            tmp / "settings.json",
            {
                **extra,
                "compare": asdict(settings),
                "criterion": settings.criterion.text(),
                "selection_rule": settings.selection_rule().text(),
                "threshold_rule": settings.threshold_text(),
            },
        )
        for name, mine in sets.items():
            fairness_plot(mine, tmp / plots[name], titles[name], settings.criterion, saved)
        criterion = settings.criterion
        parts = [
            ReportPart(
                name,
                headline_table(mine, titles[name], criterion),
                compare_table(mine, f"{titles[name]}: every metric", criterion),
                plots[name],
                chosen_lines(mine) + notes(mine, criterion),
            )
            for name, mine in sets.items()
        ]
        markdown = report_markdown(title, settings_lines(settings, extra), parts)
        atomic_write_text(tmp / REPORT_FILE, markdown)
    for name, mine in sets.items():
        show_tables(mine, titles[name], wide, settings.criterion)
    if settings.grid:
        console.print(f"Selection: {settings.selection_rule().text()}.")
        for method in settings.grids:
            console.print(f"  {method} searched {settings.grid_of(method)} (narrowed grid)")
        for r in next(iter(sets.values()), []):  # the choices are the same on every test set
            if r.method != "baseline":
                console.print(f"  {r.method} (seed {r.seed}): {r.selection.chosen}")
    console.print(f"Threshold t: {settings.threshold_text()}.")
    console.print(f"Criterion: {settings.criterion.text()}.")
    for name, mine in sets.items():
        if name is not None:
            console.print(f"On test set {name}:")
        for note in notes(mine, settings.criterion):
            console.print(note)
    console.print(
        f"Report written to {out}/ ({REPORT_FILE}, results.json, results.csv, settings.json, "
        f"{', '.join(plots.values())})"
    )
