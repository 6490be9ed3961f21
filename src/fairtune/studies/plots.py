"""The studies' figures: the objective's gap at t and AUC against the varied quantity, one line per
series with the mean and its 95% interval (:mod:`fairtune.studies.summary`); for ``mask``,
the masks layer by layer with t-intervals over seeds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from fairtune.evaluation.criterion import Criterion
from fairtune.io import save_figure
from fairtune.studies.runner import START
from fairtune.studies.summary import (
    BOOTSTRAP,
    LEVEL,
    NO_INTERVAL,
    T_OVER_SEEDS,
    UNMOVED,
    PointSummary,
    interval,
)

X_LABELS = {
    "keep": "K: share of backbone weights updated (log scale)",
    "external-size": "share of the external fit part used (log scale)",
    "lr": "learning rate (log scale)",
    "steps": "steps run",
}
def panels(criterion: Criterion) -> tuple[tuple[str, str], ...]:
    """The metric of each column of a curve figure and its axis label."""
    return ((criterion.key, f"{criterion.label} at t  (lower is fairer)"), ("auc", "AUC"))

MAX_BANDS = 3
"""Up to this many series a curve's interval is a band; with more, bars."""
DODGE = 1.07
"""With bars, the factor between neighbouring series' x positions (log axes)."""

INTERVAL_TEXT = {
    T_OVER_SEEDS: f"{LEVEL:.0%} t-interval of the mean over the seeds",
    BOOTSTRAP: f"{LEVEL:.0%} bootstrap interval on the test set",
    NO_INTERVAL: "no interval (one seed, no bootstrap resamples)",
}


def interval_caption(points: list[PointSummary]) -> str:
    """What the figure's bands and bars are: each kind of interval its points carry."""
    kinds = [k for k in INTERVAL_TEXT if any(p.interval.kind == k for p in points)]
    return "bands/bars: " + "; where fewer seeds fitted: ".join(INTERVAL_TEXT[k] for k in kinds)


INTERVAL = ("mean", "low", "high")
"""The :class:`~fairtune.studies.summary.Interval` fields a line and its band are drawn from."""


DEGENERATE_LABEL = "degenerate at t in some seed (its gap is no fairness)"


def _series(points: list[PointSummary], test: str, metric: str, series: str) -> tuple:
    """x values, means, lower and upper bounds (within [0, 1], where both metrics lie) of one
    line of one panel, and whether each point is degenerate at t in some seed."""
    mine = [p for p in points if (p.test, p.metric, p.series) == (test, metric, series)]
    xs = [p.x for p in mine]
    mean, low, high = (np.array([getattr(p.interval, a) for p in mine]) for a in INTERVAL)
    flagged = np.array([p.degenerate > 0 for p in mine], dtype=bool)
    return xs, mean, np.clip(low, 0, 1), np.clip(high, 0, 1), flagged


UNMOVED_LABEL = f"did not move (every weight within {UNMOVED:g} of the start, every seed)"
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", ":")
NUDGE = 1.03
"""With bands, the factor between neighbouring series' x positions (log axes): lines that
agree lie side by side instead of on one another."""


def series_style(i: int, n: int) -> dict[str, Any]:
    """Series ``i`` of ``n``: its own marker and line style, the first drawn on top."""
    return {
        "marker": MARKERS[i % len(MARKERS)],
        "ls": LINESTYLES[i % len(LINESTYLES)],
        "zorder": 3 + n - i,
    }


def keep_span(ax: Any, points: list[PointSummary]) -> None:
    """Widen the y axis to at least the widest interval drawn or bootstrap width measured,
    within [0, 1]: noise smaller than the intervals must not look like a trend."""
    widths = [p.interval.high - p.interval.low for p in points]
    widths += [p.bootstrap_width for p in points]
    need = max((w for w in widths if not math.isnan(w)), default=0.0)
    low, high = ax.get_ylim()
    if high - low >= need:
        return
    centre = min(max((low + high) / 2, need / 2), 1 - need / 2)
    ax.set_ylim(max(centre - need / 2, 0.0), min(centre + need / 2, 1.0))


def curves_figure(
    kind: str,
    points: list[PointSummary],
    path: str | Path,
    title: str,
    n_seeds: int,
    criterion: Criterion,
) -> None:
    """The figure of a ``keep``, ``steps``, ``external-size`` or ``lr`` study from its
    summarised ``points``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tests = list(dict.fromkeys(p.test for p in points))
    series = list(dict.fromkeys(p.series for p in points if p.series != START))
    categories = list(dict.fromkeys(p.x for p in points if p.series != START))
    fig, axes = plt.subplots(
        len(tests), 2, figsize=(13, 4.2 * len(tests)), squeeze=False, constrained_layout=True
    )
    for row, test in enumerate(tests):
        for col, (metric, label) in enumerate(panels(criterion)):
            ax = axes[row][col]
            _, start, start_low, start_high, _ = _series(points, test, metric, START)
            ax.axhline(start[0], color="black", ls="--", lw=1.2, label="starting model")
            if not math.isnan(start_low[0]):
                ax.axhspan(start_low[0], start_high[0], color="black", alpha=0.07)
            marked = False
            for i, name in enumerate(series):
                xs, mean, low, high, flagged = _series(points, test, metric, name)
                pos = [categories.index(x) for x in xs] if kind == "steps" else xs
                style = {**series_style(i, len(series)), "label": name}
                if kind != "steps" and len(series) <= MAX_BANDS:  # apart, so none hides another
                    pos = np.array(pos, dtype=float) * NUDGE ** (i - (len(series) - 1) / 2)
                if kind == "steps":
                    bars = np.nan_to_num(np.abs(np.stack([mean - low, high - mean])))
                    style.update(ls="none", ms=8)
                    ax.errorbar(pos, mean, yerr=bars, capsize=4, **style)
                elif len(series) <= MAX_BANDS:
                    (line,) = ax.plot(pos, mean, **style)
                    ax.fill_between(pos, low, high, alpha=0.15, color=line.get_color())
                else:  # bands would hide each other: bars, each series shifted a little
                    pos = np.array(pos, dtype=float) * DODGE ** (i - (len(series) - 1) / 2)
                    bars = np.nan_to_num(np.abs(np.stack([mean - low, high - mean])))
                    ax.errorbar(pos, mean, yerr=bars, capsize=2, elinewidth=0.8, **style)
                if metric == criterion.key and flagged.any():
                    at = np.array(pos, dtype=float)[flagged]
                    legend = None if marked else DEGENERATE_LABEL
                    ax.scatter(at, mean[flagged], marker="x", s=90, c="red", zorder=5, label=legend)
                    marked = True
                still = [
                    p.unmoved
                    for p in points
                    if (p.test, p.metric, p.series) == (test, metric, name)
                ]
                if any(still):
                    at = np.array(pos, dtype=float)[np.array(still)]
                    ax.scatter(
                        at,
                        mean[np.array(still)],
                        s=260,
                        facecolors="none",
                        edgecolors="0.4",
                        linewidths=1.5,
                        zorder=6,
                        label=UNMOVED_LABEL,
                    )
            keep_span(ax, [p for p in points if (p.test, p.metric) == (test, metric)])
            if kind == "steps":
                ax.set_xticks(range(len(categories)), categories, rotation=25, ha="right")
            else:
                ax.set_xscale("log")
            ax.set_xlabel(X_LABELS[kind])
            ax.set_ylabel(label)
            ax.set_title(f"{label.split('  ')[0]}: test set '{test}'")
            ax.grid(alpha=0.3)
    handles = {}
    for ax in axes.flat:
        handles.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    axes[0][1].legend(
        list(handles.values()),
        list(handles),
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=8,
    )
    seeds = f"mean over {n_seeds} seeds" if n_seeds > 1 else "one seed"
    fig.suptitle(
        f"{title}\n{seeds}; {interval_caption(points)} (grey: the starting model's; "
        "cut to [0, 1]); t chosen on the held-out external part",
        fontsize=10,
    )
    save_figure(fig, path)
    plt.close(fig)


MASK_LINES = (
    ("bmft_density_batch", "BMFT hard mask, batch Fisher"),
    ("bmft_density_per_sample", "BMFT hard mask, per-sample Fisher"),
    ("random_density", "random mask"),
)
SOFT_LINES = (
    ("swift_mean_batch", "SWiFT soft mask, batch Fisher"),
    ("swift_mean_per_sample", "SWiFT soft mask, per-sample Fisher"),
)
OVERLAP_LINES = (
    ("jaccard_bmft_batch_per_sample", "Jaccard: BMFT batch vs per-sample"),
    ("jaccard_bmft_random", "Jaccard: BMFT batch vs random"),
    ("spearman_r_batch_per_sample", "Spearman of R: batch vs per-sample"),
)


def _layer_panel(
    ax: Any, seeds: list[dict[str, Any]], lines: tuple, ylabel: str, lowest: float = 0.0
) -> None:
    """One line per statistic over the layers: the mean over seeds and its t-interval, cut
    to the statistics' range [``lowest``, 1] (head layers, which have no hard mask, left
    blank)."""
    names = [row["layer"] for row in seeds[0]["layers"]]
    for key, label in lines:
        table = [[math.nan if row[key] is None else row[key] for row in s["layers"]] for s in seeds]
        per_layer = [interval(column) for column in zip(*table, strict=True)]
        mean, low, high = (np.array([getattr(c, a) for c in per_layer]) for a in INTERVAL)
        pos = np.arange(len(names))
        (line,) = ax.plot(pos, mean, marker="o", ms=3, label=label)
        low, high = np.clip(low, lowest, 1), np.clip(high, lowest, 1)
        ax.fill_between(pos, low, high, alpha=0.15, color=line.get_color())
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("layer (parameter tensor), input to output")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def mask_figure(seeds: list[dict[str, Any]], path: str | Path, title: str) -> None:
    """The ``mask`` study's layer-by-layer figure and the histogram of SWiFT's mask values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(12, 0.35 * len(seeds[0]["layers"]))
    fig, axes = plt.subplots(2, 2, figsize=(width, 9), constrained_layout=True)
    keep = seeds[0]["keep"]
    _layer_panel(axes[0][0], seeds, MASK_LINES, f"share of weights updated (K = {keep})")
    _layer_panel(axes[0][1], seeds, SOFT_LINES, "mean soft-mask value tanh(R)")
    _layer_panel(axes[1][0], seeds, OVERLAP_LINES, "overlap / rank correlation", lowest=-1.0)
    counts = np.array([s["swift_histogram"]["counts"] for s in seeds], dtype=float)
    edges = np.array(seeds[0]["swift_histogram"]["edges"])
    share = counts / counts.sum(axis=1, keepdims=True)
    axes[1][1].bar(edges[:-1], share.mean(axis=0), width=np.diff(edges), align="edge")
    axes[1][1].set_xlabel("SWiFT soft-mask value tanh(R) (batch Fisher)")
    axes[1][1].set_ylabel("share of all weights")
    axes[1][1].set_yscale("log")
    axes[1][1].set_title("distribution of soft-mask values")
    for ax, name in zip(axes.flat[:3], ("hard masks", "soft masks", "agreement"), strict=True):
        ax.set_title(f"{name}, layer by layer")
    n = len(seeds)
    bands = (
        f"bands: {INTERVAL_TEXT[T_OVER_SEEDS]} (cut to the statistic's range)"
        if n > 1
        else "no bands (one seed)"
    )
    fig.suptitle(f"{title}\n{n} seed(s); lines: mean over seeds, {bands}", fontsize=10)
    save_figure(fig, path)
    plt.close(fig)
