"""The picture people look at: the objective's gap (EOdds (mean) by default) against AUC per
method at the chosen threshold, with the Pareto front, the starting model, the selected model
and the reference marked."""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.evaluate import VerdictSettings
from fairtune.io import save_figure
from fairtune.selection.records import ChoiceRecord
from fairtune.selection.results import SELECTED, ResultRow, degenerate_methods, summarise


def short_title(title: str) -> str:
    """``title`` with every path in it shortened to its file or folder name."""
    words = []
    for word in title.split(" "):
        core = word.rstrip(",:;)")
        if "/" in core:
            word = (Path(core).name or core) + word[len(core) :]
        words.append(word)
    return " ".join(words)


MARKERS = {"baseline": ("*", 15), "selected": ("s", 18), "threshold_optimizer": ("D", 8)}
"""Rows drawn with their own marker (and size); every other method is a circle."""

FRAMED = frozenset({"selected"})
"""Rows drawn as a hollow frame around the point they repeat, so that point stays visible."""


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The methods no other beats on both AUC (higher) and the gap (lower), by AUC ascending."""
    defined = {m: p for m, p in points.items() if not any(math.isnan(v) for v in p)}
    front = [
        m
        for m, (x, y) in defined.items()
        if not any((x2 >= x and y2 <= y) and (x2 > x or y2 < y) for x2, y2 in defined.values())
    ]
    return sorted(front, key=lambda m: defined[m])


def _error(stat: dict[str, Any]) -> Any:
    """Error bar of one point: the std over seeds, or its 95% interval for one seed."""
    if stat["n_seeds"] > 1:
        return stat["std"]
    ci = stat.get("ci")
    if ci and not any(c is None or math.isnan(c) for c in ci):
        return [[max(stat["mean"] - ci[0], 0.0)], [max(ci[1] - stat["mean"], 0.0)]]
    return None


def _plot_caption(n_seeds: int, front: list[str], criterion: Criterion) -> str:
    """What the plot's error bars, hollow markers and Pareto front mean."""
    low, high = VerdictSettings().bounds
    bars = (
        f"standard deviation over {n_seeds} seeds"
        if n_seeds > 1
        else "95% bootstrap interval (one seed)"
    )
    text = (
        f"Error bars: {bars}. {criterion.label}: {criterion.declared.meaning}, as the gap "
        "between groups. Hollow: "
        f"degenerate at t in some seed (a group's positive rate below {low:.0%} or above "
        f"{high:.0%})."
    )
    if len(front) == 1:
        text += (
            f"\nPareto front: {front[0]} alone (no method has higher AUC or lower "
            f"{criterion.word}"
        )
    elif front:
        text += (
            "\nDashed step: Pareto front (no other method has both higher AUC and lower "
            f"{criterion.word}"
        )
    text = (text + "; degenerate methods left out).") if front else text
    return text + (
        "\nStar: the starting model. Black frame: the model the selection across methods kept,"
        " around the method it chose."
    )


def selection_text(rows: list[ResultRow], saved: str | None = None) -> str:
    """What the selection across methods kept in each seed and why, and where its model is."""
    lines = []
    for r in rows:
        if r.method == SELECTED and isinstance(r.selection, ChoiceRecord):
            lines.append(
                textwrap.fill(
                    f"Selected (seed {r.seed}): {r.selection.method}: {r.selection.reason}",
                    160,
                    subsequent_indent="    ",
                )
            )
    where = f"Its model: {saved}" if saved else "compare writes no model file without --save-models"
    return "\n".join(lines) + f"\n{where}." if lines else ""


def clip_axes(ax: Any) -> None:
    """Keep the axes within what AUC and a gap metric (both 0 to 1) can be."""
    low, high = ax.get_xlim()
    ax.set_xlim(max(low, 0.0), min(high, 1.0))
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0.0), min(high, 1.0))


def _label(method: str, rows: list[ResultRow], degenerate: bool) -> str:
    """The legend's entry: the method, what the selection kept, whether degenerate."""
    text = method
    if method == SELECTED:
        kept = Counter(r.selection.method for r in rows if isinstance(r.selection, ChoiceRecord))
        text += ": kept " * bool(kept) + ", ".join(
            f"{m} ({n} seed{'s' * (n > 1)})" for m, n in kept.items()
        )
    return text + (" (degenerate)" if degenerate else "")


def fairness_plot(
    rows: list[ResultRow],
    path: str | Path,
    title: str,
    criterion: Criterion | None = None,
    saved: str | None = None,
) -> None:
    """The criterion's metric (default EOdds (mean)) at the chosen threshold t against AUC,
    one point per method (PNG); ``saved`` says where the selected model was written.

    The legend sits outside the axes; the Pareto front is a dashed step line;
    ``baseline``, ``selected`` and ``threshold_optimizer`` (where present) have
    their own markers; a method degenerate at t in some seed is drawn hollow
    and left out of the front.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    criterion = criterion or Criterion()
    auc = summarise(rows, "auc", tuned=True)
    eodds = summarise(rows, criterion.key, tuned=True)
    flagged = degenerate_methods(rows, tuned=True)
    points = {m: (auc[m]["mean"], eodds[m]["mean"]) for m in eodds}
    fig, ax = plt.subplots(figsize=(9, 5.5))
    front = pareto_front({m: p for m, p in points.items() if m not in flagged})
    if len(front) > 1:
        xs, ys = zip(*(points[m] for m in front), strict=True)
        ax.step(xs, ys, where="pre", linestyle="--", color="0.5", zorder=1, label="Pareto front")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (method, (x, y)) in enumerate(points.items()):
        marker, size = MARKERS.get(method, ("o", 7))
        colour = colours[i % len(colours)]
        hollow = method in flagged or method in FRAMED
        if method in FRAMED:
            colour = "black"
        if math.isnan(x) and not math.isnan(y):  # hard decisions: no AUC, the gap as a line
            ax.axhline(
                y,
                linestyle=":",
                color=colour,
                zorder=1,
                label=f"{method} (no AUC; needs the attribute at prediction)",
            )
            continue
        ax.errorbar(
            x,
            y,
            xerr=None if method in FRAMED else _error(auc[method]),
            yerr=None if method in FRAMED else _error(eodds[method]),
            fmt=marker,
            markersize=size,
            color=colour,
            markerfacecolor="none" if hollow else colour,
            markeredgewidth=1.5,
            elinewidth=1.0,
            ecolor=matplotlib.colors.to_rgba(colour, 0.45),
            capsize=3,
            zorder=3 if method in FRAMED else 2,
            label=_label(method, rows, method in flagged),
        )
    ax.set_xlabel("AUC (test; higher is better)")
    ax.set_ylabel(f"{criterion.label} at t (test; lower is fairer)")
    ax.set_title(f"{short_title(title)}\nat each method's chosen threshold t", fontsize=11)
    ax.grid(alpha=0.3)
    clip_axes(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=9)
    caption = _plot_caption(len({r.seed for r in rows}), front, criterion)
    chosen = selection_text(rows, saved)
    fig.text(0.01, 0.0, caption + (f"\n{chosen}" if chosen else ""), fontsize=8, va="top")
    save_figure(fig, path)
    plt.close(fig)
