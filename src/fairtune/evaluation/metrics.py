"""Metrics: the evaluation stage (METHODS.md, "Metrics").

Plain functions on numpy arrays. ``y_true`` holds 0/1 labels, ``scores`` the
predicted probabilities in [0, 1] and ``groups`` integer ids indexing
``group_names``. A row is predicted positive when ``score >= threshold``.

Every "d" (gap) is between groups: the largest minus the smallest value over
the groups where the quantity is defined, as fairlearn's
``difference(method="between_groups")``. Equalized odds comes in two forms:
``eodds_mean`` = 0.5 * (|dTPR| + |dFPR|) (the papers') and ``eodds_worst`` =
max(|dTPR|, |dFPR|) (fairlearn's ``agg="worst_case"``).

Undefined values (a group without positives has no TPR, a single class has no
AUC) are NaN, announced by a :class:`FairnessWarning`, and left out of the gaps.

All numbers come from one core, :func:`_group_counts`, that works on a matrix
of row weights: a row of ones for the point estimate, one row of resampling
counts per bootstrap draw.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairtune.errors import FairtuneError


@dataclass(frozen=True)
class Metric:
    """What one metric is: its key in the results, its label in tables, how to read it."""

    key: str
    label: str
    lower_is_better: bool | None  # None: neither direction is better (a count, a rate)
    threshold_dependent: bool  # changes with the decision threshold
    overall: bool = True  # a top-level value of binary_metrics
    per_group: bool = False  # also given for each group under ``by_group``
    count: bool = False  # a whole number of rows, not a rate
    compared: bool = False  # a column of the method comparison table
    curve: bool = False  # from the groups' ROC curves: a top-level value of evaluate_scores


METRICS: tuple[Metric, ...] = (
    Metric("n", "n", None, False, overall=False, per_group=True, count=True),
    Metric("positives", "positives", None, False, overall=False, per_group=True, count=True),
    Metric("auc", "AUC", False, False, per_group=True, compared=True),
    Metric("accuracy", "accuracy", False, True, per_group=True, compared=True),
    Metric("balanced_accuracy", "balanced acc.", False, True),
    Metric("f1", "F1", False, True),
    Metric("tpr", "TPR", False, True, overall=False, per_group=True),
    Metric("fpr", "FPR", True, True, overall=False, per_group=True),
    Metric("positive_rate", "positive rate", None, True, per_group=True, compared=True),
    Metric("eodds_mean", "EOdds (mean)", True, True, compared=True),
    Metric("eodds_worst", "EOdds (worst-case)", True, True, compared=True),
    Metric("eopp", "EOpp", True, True),
    Metric("dp", "DP", True, True, compared=True),
    Metric("worst_group_auc", "worst-group AUC", False, False, compared=True),
    Metric("auc_gap", "AUC gap", True, False),
    Metric("ece", "ECE", True, False, per_group=True),
    Metric("abroca", "ABROCA", True, False, overall=False, compared=True, curve=True),
)
"""Every metric :func:`binary_metrics` (or, for ``curve``, the evaluation) reports, in
display order."""

METRIC_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS if m.overall)
"""Top-level scalar metrics of :func:`binary_metrics`, in display order."""

GROUP_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS if m.per_group)
"""Keys of each ``by_group`` entry of :func:`binary_metrics`."""

_GROUP_RATES = tuple(m.key for m in METRICS if m.per_group and not m.count)

N_BINS = 10
"""Equal-width bins for the expected calibration error."""

MAX_CELLS = 2_000_000  # bootstrap draws x rows held in memory at once


class FairnessWarning(UserWarning):
    """A metric is undefined (NaN) for a group or overall, like sklearn's UndefinedMetricWarning."""


# ---------------------------------------------------------------- input checks


def check_inputs(
    y_true: Any, scores: Any, groups: Any | None = None, n_groups: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validated 1-D copies: labels as float 0/1, scores as float, groups as int."""
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    arrays = {"y_true": y, "scores": s}
    if groups is not None:
        arrays["groups"] = np.asarray(groups)
    for name, a in arrays.items():
        if a.ndim != 1:
            raise FairtuneError(f"{name} must be 1-D, got shape {a.shape}")
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in lengths.items())
        raise FairtuneError(f"inputs differ in length ({listed}): pass one value per row")
    if len(y) == 0:
        raise FairtuneError("no rows to evaluate: pass at least one row")
    if np.isnan(s).any():
        raise FairtuneError(
            f"scores hold {int(np.isnan(s).sum())} NaN values: fix the model output"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise FairtuneError("y_true must hold only 0 and 1: encode the label as binary")
    if s.min() < 0.0 or s.max() > 1.0:
        raise FairtuneError(
            f"scores must be probabilities in [0, 1], got range [{s.min():g}, {s.max():g}]: "
            "apply a sigmoid to logits"
        )
    if groups is None:
        return y, s, None
    g = arrays["groups"]
    if g.dtype.kind == "f" and np.all(g == np.round(g)):
        g = g.astype(np.int64)
    if g.dtype.kind not in "biu":
        raise FairtuneError(f"groups must be integer ids indexing group_names, got dtype {g.dtype}")
    g = g.astype(np.int64)
    if n_groups is not None and (g.min() < 0 or g.max() >= n_groups):
        raise FairtuneError(
            f"group ids must lie in 0..{n_groups - 1} to index group_names, "
            f"got range {g.min()}..{g.max()}"
        )
    return y, s, g


def check_threshold(threshold: float) -> float:
    if not 0.0 < threshold < 1.0:
        raise FairtuneError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    return float(threshold)


def check_group_names(group_names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(n) for n in group_names)
    if len(names) < 2:
        raise FairtuneError(f"group_names must name at least two groups, got {list(names)}")
    return names


# ------------------------------------------------------------------- the core


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _spread(values: np.ndarray) -> np.ndarray:
    """Largest minus smallest along the last axis over defined (non-NaN) values.

    NaN where fewer than two values are defined.
    """
    defined = (~np.isnan(values)).sum(axis=-1)
    gap = np.fmax.reduce(values, axis=-1) - np.fmin.reduce(values, axis=-1)
    return np.where(defined >= 2, gap, np.nan)


def _auc(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Weighted ROC AUC per row of weights ``w`` (B, m); ``s`` sorted ascending.

    Mann-Whitney form: for each positive, the weight of negatives scored lower
    plus half the weight of negatives scored equal, which is sklearn's
    trapezoidal AUC. NaN where either class has zero weight.
    """
    if len(s) == 0:
        return np.full(w.shape[0], np.nan)
    neg_cum = np.zeros((w.shape[0], len(s) + 1))
    np.cumsum(w * (1.0 - y), axis=1, out=neg_cum[:, 1:])
    new_block = np.r_[True, s[1:] != s[:-1]]
    starts = np.flatnonzero(new_block)
    ends = np.r_[starts[1:], len(s)]
    block = np.cumsum(new_block) - 1
    below = neg_cum[:, starts[block]]
    tied = neg_cum[:, ends[block]] - below
    wins = (w * y * (below + 0.5 * tied)).sum(axis=1)
    pos = (w * y).sum(axis=1)
    return _ratio(wins, pos * neg_cum[:, -1])


def _group_counts(
    w: np.ndarray, y: np.ndarray, s: np.ndarray, g: np.ndarray, n_groups: int, threshold: float
) -> dict[str, np.ndarray]:
    """Per-group weighted counts and AUC for each row of weights ``w`` (B, n).

    Rows must be sorted by score. Returns arrays of shape (B, n_groups) for
    ``n``, ``positives``, ``negatives``, ``tp``, ``fp``, ``predicted``,
    ``correct`` and ``auc``, and ``calib`` (B, n_groups, N_BINS): the summed
    score-minus-label per calibration bin, from which ECE follows.
    """
    pred = (s >= threshold).astype(np.float64)
    onehot = np.zeros((len(g), n_groups))
    onehot[np.arange(len(g)), g] = 1.0
    columns = np.stack(
        [np.ones_like(y), y, 1.0 - y, pred * y, pred * (1.0 - y), pred, (pred == y) * 1.0]
    )  # (7, n)
    sums = w @ (onehot[:, None, :] * columns.T[:, :, None]).reshape(len(g), -1)
    sums = sums.reshape(w.shape[0], len(columns), n_groups)
    names = ("n", "positives", "negatives", "tp", "fp", "predicted", "correct")
    counts = {name: sums[:, i] for i, name in enumerate(names)}

    bins = np.minimum(np.floor(s * N_BINS), N_BINS - 1).astype(np.int64)
    cell = np.zeros((len(g), n_groups * N_BINS))
    cell[np.arange(len(g)), g * N_BINS + bins] = s - y
    counts["calib"] = (w @ cell).reshape(w.shape[0], n_groups, N_BINS)

    counts["auc"] = np.stack(
        [_auc(w[:, g == k], y[g == k], s[g == k]) for k in range(n_groups)], axis=1
    )
    return counts


def _summarise(c: dict[str, np.ndarray], overall_auc: np.ndarray) -> dict[str, np.ndarray]:
    """Per-group rates (B, n_groups) and the top-level metrics (B,) from the counts."""
    n_g = c["n"]
    by_group = {
        "auc": c["auc"],
        "accuracy": _ratio(c["correct"], n_g),
        "tpr": _ratio(c["tp"], c["positives"]),
        "fpr": _ratio(c["fp"], c["negatives"]),
        "positive_rate": _ratio(c["predicted"], n_g),
        "ece": _ratio(np.abs(c["calib"]).sum(axis=2), n_g),
    }
    summed = ("n", "positives", "negatives", "tp", "fp", "correct", "predicted")
    total = {k: c[k].sum(axis=1) for k in summed}
    tpr = _ratio(total["tp"], total["positives"])
    tnr = _ratio(total["negatives"] - total["fp"], total["negatives"])
    fn = total["positives"] - total["tp"]
    d_tpr = _spread(by_group["tpr"])
    d_fpr = _spread(by_group["fpr"])
    top = {
        "auc": overall_auc,
        "accuracy": _ratio(total["correct"], total["n"]),
        "balanced_accuracy": 0.5 * (tpr + tnr),
        "f1": _ratio(2 * total["tp"], 2 * total["tp"] + total["fp"] + fn),
        "positive_rate": _ratio(total["predicted"], total["n"]),
        "eodds_mean": 0.5 * (d_tpr + d_fpr),
        "eodds_worst": np.maximum(d_tpr, d_fpr),
        "eopp": d_tpr,
        "dp": _spread(by_group["positive_rate"]),
        "worst_group_auc": np.fmin.reduce(by_group["auc"], axis=1),
        "auc_gap": _spread(by_group["auc"]),
        "ece": _ratio(np.abs(c["calib"].sum(axis=1)).sum(axis=1), total["n"]),
    }
    return {**top, **{f"group_{k}": v for k, v in by_group.items()}}


def weighted_metrics(
    w: np.ndarray, y: np.ndarray, s: np.ndarray, g: np.ndarray, n_groups: int, threshold: float
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Counts and metrics for each row of weights; rows must be sorted by score."""
    counts = _group_counts(w, y, s, g, n_groups, threshold)
    return counts, _summarise(counts, _auc(w, y, s))


def _sort_by_score(
    y: np.ndarray, s: np.ndarray, g: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(s, kind="stable")
    return y[order], s[order], g[order]


# ------------------------------------------------------------------ public API


def binary_metrics(
    y_true: Any,
    scores: Any,
    groups: Any,
    group_names: Sequence[str],
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Evaluate a binary classifier's quality and fairness on one set.

    Returns a JSON-ready dict: the :data:`METRIC_KEYS` (python floats, NaN where
    undefined), ``threshold``, ``n`` and ``by_group``, a dict from group name to
    :data:`GROUP_KEYS`. Groups without rows are left out of ``by_group`` and of
    the gaps. Each undefined value raises a :class:`FairnessWarning` naming
    what is missing.
    """
    names = check_group_names(group_names)
    y, s, g = check_inputs(y_true, scores, groups, len(names))
    threshold = check_threshold(threshold)
    y, s, g = _sort_by_score(y, s, g)
    counts, m = weighted_metrics(np.ones((1, len(y))), y, s, g, len(names), threshold)

    by_group: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names):
        n_k = int(counts["n"][0, k])
        if n_k == 0:
            continue
        positives = int(counts["positives"][0, k])
        for label, count, rate in ((1, positives, "TPR"), (0, n_k - positives, "FPR")):
            if count == 0:
                warnings.warn(
                    f"group '{name}' has no rows with label {label}: its {rate} and AUC are "
                    "undefined (NaN) and left out of the gaps",
                    FairnessWarning,
                    stacklevel=2,
                )
        by_group[name] = {"n": n_k, "positives": positives}
        for key in _GROUP_RATES:
            by_group[name][key] = float(m[f"group_{key}"][0, k])

    if y.min() == y.max():
        warnings.warn(
            f"y_true holds only label {int(y[0])}: AUC, balanced accuracy and the per-group "
            "AUCs are undefined (NaN)",
            FairnessWarning,
            stacklevel=2,
        )
    out: dict[str, Any] = {key: float(m[key][0]) for key in METRIC_KEYS}
    gaps = ("eodds_mean", "eodds_worst", "eopp", "dp", "auc_gap")
    missing = [key for key in (*gaps, "f1") if np.isnan(out[key])]
    if missing:
        warnings.warn(
            f"undefined (NaN): {', '.join(missing)}; a gap needs two groups where the rate is "
            "defined, F1 needs a positive label or prediction",
            FairnessWarning,
            stacklevel=2,
        )
    out["threshold"] = threshold
    out["n"] = len(y)
    out["by_group"] = by_group
    return out


@dataclass(frozen=True)
class Bootstrap:
    """How bootstrap intervals are drawn: ``n_boot`` resamples (at least 1) from the
    random stream of ``seed``, intervals covering ``1 - alpha`` (alpha in (0, 1))."""

    n_boot: int = 200
    alpha: float = 0.05
    seed: int = 0


def bootstrap_ci(
    y_true: Any,
    scores: Any,
    groups: Any,
    group_names: Sequence[str],
    threshold: float = 0.5,
    bootstrap: Bootstrap = Bootstrap(),
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals ``[lo, hi]`` for each of :data:`METRIC_KEYS`.

    Rows are resampled with replacement within each group, so every group keeps
    its size. The same ``bootstrap.seed`` gives the same intervals. Resamples
    where a metric is undefined are skipped; a metric undefined in every resample
    gets ``[nan, nan]``.
    """
    n_boot, alpha, seed = bootstrap.n_boot, bootstrap.alpha, bootstrap.seed
    names = check_group_names(group_names)
    y, s, g = check_inputs(y_true, scores, groups, len(names))
    threshold = check_threshold(threshold)
    if n_boot < 1:
        raise FairtuneError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise FairtuneError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    y, s, g = _sort_by_score(y, s, g)
    members = [np.flatnonzero(g == k) for k in range(len(names))]
    rng = np.random.default_rng(seed)
    chunk = max(1, MAX_CELLS // len(y))
    draws: dict[str, list[np.ndarray]] = {key: [] for key in METRIC_KEYS}
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w = np.zeros((b, len(y)))
        for rows in members:
            if len(rows) == 0:
                continue
            picks = rng.integers(len(rows), size=(b, len(rows)))
            flat = (np.arange(b)[:, None] * len(rows) + picks).ravel()
            w[:, rows] = np.bincount(flat, minlength=b * len(rows)).reshape(b, len(rows))
        _, m = weighted_metrics(w, y, s, g, len(names), threshold)
        for key in METRIC_KEYS:
            draws[key].append(m[key])

    out: dict[str, list[float]] = {}
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN metric -> [nan, nan]
        for key in METRIC_KEYS:
            lo, hi = np.nanpercentile(np.concatenate(draws[key]), q)
            out[key] = [float(lo), float(hi)]
    return out
