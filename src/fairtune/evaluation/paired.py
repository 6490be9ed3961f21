"""Is one model's fairness gap (equalized odds by default) really lower than another's on
the same rows?

:func:`paired_bootstrap_improvement` resamples the held-out rows once per draw
and scores both models on that same resample, so the noise the two share
cancels in their difference (METHODS.md, "Verdicts": the original is kept
unless the held-out improvement's 95% lower bound is above 0). The metrics
come from the weighted core of :mod:`fairtune.evaluation.metrics`, as its bootstrap's do.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairtune.errors import FairtuneError
from fairtune.evaluation.metrics import (
    MAX_CELLS,
    METRIC_KEYS,
    Bootstrap,
    check_group_names,
    check_inputs,
    check_threshold,
    weighted_metrics,
)

PAIRED = Bootstrap(n_boot=1000)
"""The default resampling of the paired bootstrap."""

NOISE = Bootstrap(n_boot=100)
"""The resampling of :func:`regret_from_noise`: a mean, so fewer draws than an interval."""

CONFIDENCE = 1 - Bootstrap.alpha
"""Coverage of the percentile interval by default."""


@dataclass(frozen=True)
class ScoredModel:
    """One model's held-out scores and the threshold its decisions are taken at."""

    scores: Any
    threshold: float


@dataclass(frozen=True)
class Improvement:
    """How much fairer (a lower gap, e.g. ``eodds_mean``) model b is than model a.

    ``estimate`` is gap(a) - gap(b) on all rows, ``low`` and
    ``high`` the percentile interval (:data:`CONFIDENCE` by default) over ``n_boot``
    paired resamples (NaN when the gap is undefined in every resample).
    """

    estimate: float
    low: float
    high: float
    n_boot: int

    @property
    def improves(self) -> bool:
        """b improves on a: the interval's lower bound lies above 0."""
        return bool(self.low > 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, ``improves`` included."""
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "n_boot": self.n_boot,
            "improves": self.improves,
        }


def resample_weights(strata: Sequence[np.ndarray], n: int, b: int, rng: Any) -> np.ndarray:
    """(b, n) counts of how often each row is drawn, resampling within each stratum.

    Every stratum keeps its size in every draw.
    """
    w = np.zeros((b, n))
    for rows in strata:
        picks = rng.integers(len(rows), size=(b, len(rows)))
        flat = (np.arange(b)[:, None] * len(rows) + picks).ravel()
        w[:, rows] = np.bincount(flat, minlength=b * len(rows)).reshape(b, len(rows))
    return w


def _gap(
    w: np.ndarray, y: np.ndarray, g: np.ndarray, n_groups: int, model: ScoredModel, key: str
) -> np.ndarray:
    """Metric ``key`` of ``model`` under each row of weights ``w`` (rows in data order)."""
    s = model.scores
    order = np.argsort(s, kind="stable")  # the metrics core wants rows sorted by score
    _, m = weighted_metrics(w[:, order], y[order], s[order], g[order], n_groups, model.threshold)
    return m[key]


def stratified_draws(
    y: np.ndarray,
    g: np.ndarray,
    resampling: Bootstrap,
    key: str,
    measure: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """``measure`` of the weights of each of ``resampling.n_boot`` resamples of the rows,
    drawn with replacement within each group x label cell (so every group keeps its
    positives and negatives, and its TPR and FPR stay defined) from the stream of
    ``resampling.seed``, in chunks that keep the weights within :data:`MAX_CELLS`; the
    draws of every caller (the paired improvement, the regret's noise, the held-out
    evidence). Refuses ``n_boot`` below 1 and a ``key`` (the metric the caller measures)
    that is not a top-level metric."""
    if resampling.n_boot < 1:
        raise FairtuneError(f"n_boot must be at least 1, got {resampling.n_boot}")
    if key not in METRIC_KEYS:
        raise FairtuneError(f"unknown metric '{key}'; choose from {list(METRIC_KEYS)}")
    cells = g * 2 + y.astype(np.int64)
    strata = [np.flatnonzero(cells == c) for c in np.unique(cells)]
    rng = np.random.default_rng(resampling.seed)
    chunk = max(1, MAX_CELLS // len(y))
    n_boot = resampling.n_boot
    return np.concatenate(
        [
            measure(resample_weights(strata, len(y), min(chunk, n_boot - start), rng))
            for start in range(0, n_boot, chunk)
        ]
    )


def regret_from_noise(
    y_true: Any,
    groups: Any,
    group_names: Sequence[str],
    models: Sequence[ScoredModel],
    resampling: Bootstrap = NOISE,
    key: str = "eodds_mean",
) -> float:
    """The selection regret that the test rows' own noise shows for the first of ``models``
    (the best on these rows): the mean, over resamples of the rows as
    :func:`paired_bootstrap_improvement` draws them, of its ``key`` minus the lowest ``key``
    among ``models`` in the same resample (0 for a single model; NaN where undefined in
    every draw). A regret about this large cannot be told from the test set's noise: even
    a choice of the right model would show it on a new test set of this size."""
    names = check_group_names(group_names)
    checked = [check_inputs(y_true, m.scores, groups, len(names)) for m in models]
    if not checked:
        raise FairtuneError("regret_from_noise needs at least one model")
    y, _, g = checked[0]
    scored = [
        ScoredModel(s, check_threshold(m.threshold))
        for (_, s, _), m in zip(checked, models, strict=True)
    ]

    def regret(w: np.ndarray) -> np.ndarray:
        gaps = np.stack([_gap(w, y, g, len(names), m, key) for m in scored])
        return gaps[0] - np.nanmin(gaps, axis=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined in every draw -> NaN
        return float(np.nanmean(stratified_draws(y, g, resampling, key, regret)))


def paired_bootstrap_improvement(
    y_true: Any,
    groups: Any,
    group_names: Sequence[str],
    a: ScoredModel,
    b: ScoredModel,
    resampling: Bootstrap = PAIRED,
    key: str = "eodds_mean",
) -> Improvement:
    """Paired percentile bootstrap of gap(a) - gap(b) on the same rows, where the gap is the
    top-level metric ``key`` of :data:`fairtune.evaluation.metrics.METRIC_KEYS` (lower is
    fairer).

    Each draw resamples the rows with replacement within each group x label
    cell (so every group keeps its positives and negatives and its TPR and
    FPR stay defined) and evaluates both models, each at its own threshold,
    on that one resample, ``resampling.n_boot`` times from the stream of
    ``resampling.seed``; the interval covers ``1 - resampling.alpha``. Positive values
    mean b is fairer; see :attr:`Improvement.improves`. The same seed gives the same
    interval.
    """
    names = check_group_names(group_names)
    y, s_a, g = check_inputs(y_true, a.scores, groups, len(names))
    _, s_b, _ = check_inputs(y_true, b.scores, groups, len(names))
    a = ScoredModel(s_a, check_threshold(a.threshold))
    b = ScoredModel(s_b, check_threshold(b.threshold))

    def difference(w: np.ndarray) -> np.ndarray:
        return _gap(w, y, g, len(names), a, key) - _gap(w, y, g, len(names), b, key)

    draws = stratified_draws(y, g, resampling, key, difference)
    coverage = 1 - resampling.alpha
    tail = 100 * (1 - coverage) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined in every draw -> NaN
        low, high = np.nanpercentile(draws, [tail, 100 - tail])
    estimate = difference(np.ones((1, len(y))))[0]
    return Improvement(float(estimate), float(low), float(high), resampling.n_boot)
