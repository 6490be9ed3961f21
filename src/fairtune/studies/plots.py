"""The studies' figures: EOdds (mean) at t and AUC against the varied quantity, one line per
series with mean and ±1 std over seeds; for ``mask``, the masks layer by layer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from fairtune.io import save_figure
from fairtune.studies.runner import START

X_LABELS = {
    "keep": "K: share of backbone weights updated (log scale)",
    "external-size": "share of the external fit part used (log scale)",
    "lr": "learning rate (log scale)",
    "steps": "steps run",
}
PANELS = (("eodds_mean", "at_t", "EOdds (mean) at t  (lower is fairer)"), ("auc", "at_t", "AUC"))


def _values(records: list[dict[str, Any]], test: str, key: str, at: str) -> list[float]:
    """``key`` at ``at`` on test set ``test`` of each fitted record (NaN where it failed)."""
    out = []
    for r in records:
        value = None if r["failed"] else r["test"][test][at][key]
        out.append(math.nan if value is None else float(value))
    return out


def _summary(records: list[dict[str, Any]], test: str, key: str, at: str) -> dict[Any, tuple]:
    """Per x value: the mean and std over seeds (NaN seeds left out)."""
    by_x: dict[Any, list[float]] = {}
    for r, v in zip(records, _values(records, test, key, at), strict=True):
        by_x.setdefault(r["x"], []).append(v)
    out = {}
    for x, values in by_x.items():
        finite = [v for v in values if not math.isnan(v)]
        out[x] = (np.mean(finite), np.std(finite)) if finite else (math.nan, math.nan)
    return out


def curves_figure(kind: str, records: list[dict[str, Any]], path: str | Path, title: str) -> None:
    """The figure of a ``keep``, ``steps``, ``external-size`` or ``lr`` study."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tests = list(next(r for r in records if not r["failed"])["test"])
    series = list(dict.fromkeys(r["series"] for r in records if r["series"] != START))
    n_seeds = len({r["seed"] for r in records})
    fig, axes = plt.subplots(
        len(tests), 2, figsize=(13, 4.2 * len(tests)), squeeze=False, constrained_layout=True
    )
    categories = list(dict.fromkeys(r["x"] for r in records if r["series"] != START))
    for row, test in enumerate(tests):
        for col, (key, at, label) in enumerate(PANELS):
            ax = axes[row][col]
            start = _summary([r for r in records if r["series"] == START], test, key, at)
            ax.axhline(start[None][0], color="black", ls="--", lw=1.2, label="starting model")
            for i, name in enumerate(series):
                stats = _summary([r for r in records if r["series"] == name], test, key, at)
                xs = list(stats)
                pos = [categories.index(x) for x in xs] if kind == "steps" else xs
                mean = np.array([stats[x][0] for x in xs])
                std = np.array([stats[x][1] for x in xs])
                style = {"marker": "o", "ls": ("-", "--", ":", "-.")[i // 10 % 4], "label": name}
                if kind == "steps":
                    style.update(ls="none", ms=8)
                    ax.errorbar(pos, mean, yerr=std if n_seeds > 1 else None, capsize=4, **style)
                else:
                    (line,) = ax.plot(pos, mean, **style)
                    if n_seeds > 1:
                        colour = line.get_color()
                        ax.fill_between(pos, mean - std, mean + std, alpha=0.15, color=colour)
            if kind == "steps":
                ax.set_xticks(range(len(categories)), categories, rotation=25, ha="right")
            else:
                ax.set_xscale("log")
            ax.set_xlabel(X_LABELS[kind])
            ax.set_ylabel(label)
            ax.set_title(f"{label.split('  ')[0]}: test set '{test}'")
            ax.grid(alpha=0.3)
    axes[0][1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    band = f"mean over {n_seeds} seeds, band/bars ±1 std" if n_seeds > 1 else "one seed"
    fig.suptitle(f"{title}\n{band}; t chosen on the held-out external part", fontsize=10)
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


def _layer_panel(ax: Any, seeds: list[dict[str, Any]], lines: tuple, ylabel: str) -> None:
    """One line per statistic over the layers, mean and ±1 std over seeds."""
    names = [row["layer"] for row in seeds[0]["layers"]]
    for key, label in lines:
        table = np.array(
            [[math.nan if row[key] is None else row[key] for row in s["layers"]] for s in seeds]
        )
        seen = ~np.isnan(table).all(axis=0)  # head layers have no hard mask
        mean, std = np.full(len(names), math.nan), np.full(len(names), math.nan)
        mean[seen] = np.nanmean(table[:, seen], axis=0)
        std[seen] = np.nanstd(table[:, seen], axis=0)
        pos = np.arange(len(names))
        (line,) = ax.plot(pos, mean, marker="o", ms=3, label=label)
        if len(seeds) > 1:
            ax.fill_between(pos, mean - std, mean + std, alpha=0.15, color=line.get_color())
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
    _layer_panel(axes[1][0], seeds, OVERLAP_LINES, "overlap / rank correlation")
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
    fig.suptitle(f"{title}\n{n} seed(s); lines: mean, bands: ±1 std over seeds", fontsize=10)
    save_figure(fig, path)
    plt.close(fig)
