"""Held-out evidence: is the model handed back better or worse than the one given?

Whatever returns a model also returns :class:`Evidence`: the criterion's metric
(EOdds mean by default, at the threshold t chosen on the held-out rows) and AUC of the starting
and the returned model on a part of the external set the fine-tuning never
saw, each change with a paired percentile bootstrap interval (both models are
scored on the same resample, so the noise they share cancels). When the
held-out AUC falls by more than the tolerance, or the objective gets worse,
:func:`warn_if_worse` says so with a :class:`WorseModelWarning`; when the held-out rows are
too few to rule out such a fall (the AUC change's interval reaches below minus the
tolerance), it says that with a :class:`WeakEvidenceWarning`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from torch import nn

from fairtune.data import FairData
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.metrics import Bootstrap, FairnessWarning, weighted_metrics
from fairtune.evaluation.paired import CONFIDENCE, stratified_draws
from fairtune.evaluation.thresholds import choose_threshold
from fairtune.models import predict_proba

EVIDENCE_BOOT = 1000
"""Paired bootstrap resamples behind the evidence's intervals."""


class WorseModelWarning(FairnessWarning):
    """The returned model is worse than the starting one on held-out external rows."""


class WeakEvidenceWarning(FairnessWarning):
    """The held-out external rows are too few to rule out that the returned model's AUC fell
    by more than the tolerance."""


@dataclass(frozen=True)
class EvidenceRule:
    """How the evidence is taken: the held-out share, the criterion (its metric, threshold
    rule and AUC tolerance, the same as the selection's) and the bootstrap resamples."""

    holdout: float
    criterion: Criterion
    n_boot: int = EVIDENCE_BOOT


@dataclass(frozen=True)
class Change:
    """One metric of the starting and the returned model on the held-out rows, and the
    95% paired bootstrap interval of after - before."""

    metric: str
    before: float
    after: float
    low: float
    high: float

    @property
    def delta(self) -> float:
        """after - before."""
        return self.after - self.before

    def text(self) -> str:
        """``name before -> after (change +d [95% lo, hi])``."""
        return (
            f"{self.metric} {self.before:.3f} -> {self.after:.3f} (change {self.delta:+.3f} "
            f"[{CONFIDENCE:.0%} {self.low:+.3f}, {self.high:+.3f}])"
        )


@dataclass(frozen=True)
class Evidence:
    """The starting and the returned model on the held-out part of the external set.

    ``objective`` is the criterion's metric (EOdds mean by default) at each model's
    threshold t chosen there by ``threshold_rule``; ``auc`` the AUC. ``chosen_on_rows``
    says the same rows also chose the model (``auto``): the evidence is then optimistic.
    """

    rows: int
    holdout: float
    threshold_rule: str
    tolerance: float
    n_boot: int
    objective: Change
    auc: Change
    chosen_on_rows: bool = False

    def problems(self) -> list[str]:
        """Why the returned model is worse, in words; empty when it is not."""
        found = []
        if self.auc.after < self.auc.before - self.tolerance:
            found.append(f"held-out AUC fell by {-self.auc.delta:.3f}, more than {self.tolerance}")
        if self.objective.after > self.objective.before or (
            math.isnan(self.objective.after) and not math.isnan(self.objective.before)
        ):
            found.append(f"held-out {self.objective.metric} at t got worse")
        return found

    def blind_spot(self) -> str | None:
        """What these rows cannot rule out, in words: an AUC fall larger than the tolerance
        inside the change's interval; None when they can (or when the model changed
        nothing)."""
        if not self.auc.low < -self.tolerance:
            return None
        return (
            f"{self.rows} held-out rows cannot rule out an AUC fall of more than "
            f"{self.tolerance:g}: the AUC change's {CONFIDENCE:.0%} interval reaches "
            f"{self.auc.low:+.3f}"
        )

    def text(self) -> str:
        """The evidence in one sentence."""
        chosen = "; these rows also chose the model" if self.chosen_on_rows else ""
        return (
            f"held-out evidence ({self.rows} rows, {self.holdout:.0%} of the external set, never "
            f"trained on{chosen}; t by {self.threshold_rule}, {self.n_boot} paired resamples): "
            f"{self.objective.text()}, {self.auc.text()}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, the problems and the blind spot included."""
        return {**asdict(self), "problems": self.problems(), "blind_spot": self.blind_spot()}


def describe(evidence: Evidence | None) -> str:
    """The evidence in one sentence, or that there is none."""
    return "no held-out evidence" if evidence is None else evidence.text()


def measure(
    rule: EvidenceRule, held: FairData, before: nn.Module, after: nn.Module, seed: int
) -> Evidence:
    """The evidence of ``after`` against ``before`` on the held-out rows ``held``.

    Each model's threshold is chosen on ``held`` by the rule (``positive_rate``
    keeps the starting model's positive rate at 0.5 there).
    """
    y = held.labels.numpy().astype(np.int64)
    g = held.groups.numpy().astype(np.int64)
    s_before, s_after = (predict_proba(m, held).numpy().astype(np.float64) for m in (before, after))
    rate = float((s_before >= 0.5).mean())
    t_before, t_after = (
        choose_threshold(y, s, rule.criterion.threshold_rule, rate) for s in (s_before, s_after)
    )
    key = rule.criterion.key

    def both(w: np.ndarray) -> np.ndarray:
        """(draws, 4): the metric and AUC of the starting model, then of the returned one."""
        pairs = ((s_before, t_before), (s_after, t_after))
        measured = [_metrics(w, y, s, g, held.n_groups, t, key) for s, t in pairs]
        return np.column_stack([m[name] for m in measured for name in (key, "auc")])

    resampled = stratified_draws(y, g, Bootstrap(rule.n_boot, seed=seed), key, both)
    draws = np.vstack([both(np.ones((1, len(y)))), resampled])  # row 0: every row once
    changes = [
        _change(name, draws[:, i], draws[:, i + 2]) for i, name in enumerate((key, "auc"))
    ]
    criterion = rule.criterion
    return Evidence(
        len(y), rule.holdout, criterion.threshold_rule, criterion.tolerance, rule.n_boot, *changes
    )


def warn_if_worse(evidence: Evidence, what: str) -> None:
    """Warn (:class:`WorseModelWarning`) when ``what`` made the model worse on held-out rows,
    else (:class:`WeakEvidenceWarning`) when those rows are too few to say it did not."""
    problems = evidence.problems()
    if problems:
        warnings.warn(
            f"{what} made the model worse on held-out external data: {'; '.join(problems)} "
            f"({evidence.text()}); keep the original model, or try method='auto'",
            WorseModelWarning,
            stacklevel=3,
        )
    elif blind := evidence.blind_spot():
        warnings.warn(
            f"{what}: {blind}; check the model on data of your own before using it, or give "
            "more external rows",
            WeakEvidenceWarning,
            stacklevel=3,
        )


def _metrics(
    w: np.ndarray, y: np.ndarray, s: np.ndarray, g: np.ndarray, n_groups: int, t: float, key: str
) -> dict[str, np.ndarray]:
    """Metric ``key`` and AUC under each row of weights (the first row: every row once)."""
    order = np.argsort(s, kind="stable")  # the metrics core wants rows sorted by score
    _, m = weighted_metrics(w[:, order], y[order], s[order], g[order], n_groups, t)
    return {key: m[key], "auc": m["auc"]}


def _change(metric: str, before: np.ndarray, after: np.ndarray) -> Change:
    """before/after on all rows (index 0) and the percentile interval of the paired draws."""
    tail = 100 * (1 - CONFIDENCE) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined in every draw -> NaN
        low, high = np.nanpercentile(after[1:] - before[1:], [tail, 100 - tail])
    return Change(metric, float(before[0]), float(after[0]), float(low), float(high))
