"""The selection rules: which fitted setting of a method, and which model overall, to keep.

Every setting tried is scored on the held-out part of the external set
(:class:`HeldOutScore`); :class:`SelectionRule` picks one per method, gives
optuna the same preference as one number, and says the rule in words for the
report. :class:`CrossMethodRule` picks one model among every method's settings
and the unchanged starting model, keeping the original unless a paired
bootstrap shows a real improvement; :func:`selection_regret` says afterwards,
on test data, how much better the choice could have been.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from fairtune.data import FairData
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.evaluate import ScoredRows
from fairtune.evaluation.metrics import METRIC_KEYS, Bootstrap, binary_metrics
from fairtune.evaluation.operating import degenerate
from fairtune.evaluation.paired import Improvement, ScoredModel, paired_bootstrap_improvement
from fairtune.evaluation.thresholds import choose_threshold

SELECTION_BOOT = 1000
"""Paired bootstrap resamples behind the decision to leave the original model."""


def kept_text(criterion: Criterion) -> str:
    """The sentence that opens every reason to keep the original model."""
    return f"kept the original: no candidate improved {criterion.word} on held-out data"


@dataclass(frozen=True)
class HeldOutScore:
    """A model on the held-out part: the threshold chosen there, AUC at it, the overall
    metrics at it by key (:data:`fairtune.evaluation.metrics.METRIC_KEYS`), and whether some group
    gets (almost) one decision there."""

    threshold: float
    auc: float
    values: Mapping[str, float]
    degenerate: bool = False

    def of(self, criterion: Criterion) -> float:
        """The value of the metric ``criterion`` lowers."""
        return self.values[criterion.key]


def held_out_score(
    scores: torch.Tensor, held: FairData, rule: str, reference_rate: float
) -> HeldOutScore:
    """Threshold chosen by ``rule`` on a model's held-out ``scores``; AUC and every overall
    metric at it, and whether the decisions are degenerate there (no operating points)."""
    y, s, g, names = ScoredRows.of(held, scores).arrays()
    threshold = choose_threshold(y, s, rule, reference_rate)
    at = binary_metrics(y, s, g, names, threshold)
    values = {key: float(at[key]) for key in METRIC_KEYS}
    return HeldOutScore(threshold, at["auc"], values, degenerate(s, g, names, threshold).flagged)


@dataclass(frozen=True)
class SelectionRule:
    """Lowest held-out value of the criterion's metric among settings whose held-out AUC
    stays within the criterion's tolerance of the starting model's; if none does, the
    best held-out AUC."""

    criterion: Criterion
    holdout: float
    tuner: str
    trials: int

    def choose(self, scores: Sequence[HeldOutScore], start_auc: float) -> int:
        """The index of the setting kept among ``scores`` (NaN gap last, NaN AUC worst)."""
        indices = range(len(scores))
        floor = start_auc - self.criterion.tolerance
        ok = [i for i in indices if scores[i].auc >= floor]
        if ok:
            return min(
                ok, key=lambda i: (_nan_high(scores[i].of(self.criterion)), -scores[i].auc)
            )
        return max(indices, key=lambda i: _nan_low(scores[i].auc))

    def score(self, held: HeldOutScore, start_auc: float) -> float:
        """The rule as one number for optuna to minimise: AUC within tolerance first, then
        the lower gap."""
        shortfall = max(0.0, start_auc - self.criterion.tolerance - _nan_low(held.auc))
        return shortfall * 100 + _nan_high(held.of(self.criterion))

    def text(self) -> str:
        """The rule in one sentence, as the report prints it."""
        tried = (
            "grid setting" if self.tuner == "grid" else f"setting of {self.trials} optuna trials"
        )
        return (
            f"per method, the {tried} with the lowest {self.criterion.label} on the held-out "
            f"{self.holdout:.0%} of the external set, at the threshold chosen there, among those "
            f"whose held-out AUC is at least the starting model's minus "
            f"{self.criterion.tolerance}; if none qualifies, the best held-out AUC"
        )


@dataclass(frozen=True)
class Contender:
    """One model the cross-method rule may keep: which method and setting made it, its
    held-out scores (for the paired bootstrap) and its :class:`HeldOutScore`."""

    method: str
    setting: dict[str, Any]
    scored: ScoredModel
    held: HeldOutScore


@dataclass(frozen=True)
class HeldOutRows:
    """The held-out rows' labels and groups, on which the contenders are compared."""

    labels: Any
    groups: Any
    group_names: Sequence[str]


@dataclass(frozen=True)
class CrossChoice:
    """What the cross-method rule kept and why.

    ``index`` is the contender kept, None for the original; ``best`` the
    contender the rule ranked first (None when none qualified), ``improvement``
    its paired improvement over the original; ``reason`` the sentence reports print.
    """

    index: int | None
    method: str
    setting: dict[str, Any]
    reason: str
    best: int | None
    improvement: Improvement | None
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "kept_original": self.index is None,
            "method": self.method,
            "setting": self.setting,
            "reason": self.reason,
            "improvement": None if self.improvement is None else self.improvement.to_dict(),
            "candidates": self.counts,
        }


@dataclass(frozen=True)
class CrossMethodRule:
    """One choice among every method's settings and the unchanged starting model.

    Contenders that are degenerate on the held-out part are dropped, then those whose
    held-out AUC falls below the original's minus the criterion's tolerance; of the rest
    the lowest held-out value of the criterion's metric at its chosen threshold (ties:
    higher AUC) is kept only if the paired bootstrap's 95% lower bound of its improvement
    over the original, on the held-out rows, lies above 0. Otherwise the original is kept.
    """

    criterion: Criterion
    holdout: float
    n_boot: int = SELECTION_BOOT

    def choose(
        self, rows: HeldOutRows, original: Contender, contenders: Sequence[Contender], seed: int
    ) -> CrossChoice:
        """The contender kept (or the original), with the reason in words."""
        c = self.criterion
        sound = [i for i, x in enumerate(contenders) if not x.held.degenerate]
        kept_auc = [i for i in sound if contenders[i].held.auc >= original.held.auc - c.tolerance]
        ok = [i for i in kept_auc if not math.isnan(contenders[i].held.of(c))]
        counts = {
            "tried": len(contenders),
            "degenerate": len(contenders) - len(sound),
            "auc_below_tolerance": len(sound) - len(kept_auc),
            f"{c.objective}_undefined": len(kept_auc) - len(ok),
        }
        if not ok:
            reason = (
                f"{kept_text(c)} (none of {len(contenders)} is non-degenerate with held-out "
                f"AUC within {c.tolerance} of the original's)"
            )
            return CrossChoice(None, original.method, {}, reason, None, None, counts)
        best = min(ok, key=lambda i: (contenders[i].held.of(c), -contenders[i].held.auc))
        winner = contenders[best]
        improvement = paired_bootstrap_improvement(
            rows.labels,
            rows.groups,
            rows.group_names,
            original.scored,
            winner.scored,
            Bootstrap(n_boot=self.n_boot, seed=seed),
            key=c.key,
        )
        named = f"{winner.method} {winner.setting}"
        gain = (
            f"held-out {c.label} {original.held.of(c):.3f} -> "
            f"{winner.held.of(c):.3f}, improvement {improvement.estimate:.3f} "
            f"[95% {improvement.low:.3f}, {improvement.high:.3f}]"
        )
        if not improvement.improves:
            reason = f"{kept_text(c)} (best: {named}, {gain}; the lower bound is not above 0)"
            return CrossChoice(None, original.method, {}, reason, best, improvement, counts)
        reason = f"chose {named}: the lowest held-out {c.word} of {len(ok)} qualifying; {gain}"
        return CrossChoice(
            best, winner.method, winner.setting, reason, best, improvement, counts
        )

    def text(self) -> str:
        """The rule in one sentence, as the report prints it."""
        return (
            "across methods, among every setting tried and the starting model: drop models "
            f"degenerate on the held-out {self.holdout:.0%} of the external set, keep those "
            f"whose held-out AUC is at least the starting model's minus "
            f"{self.criterion.tolerance}, take the lowest held-out {self.criterion.label} at "
            "the chosen threshold, and keep the starting "
            "model unless a paired bootstrap on the held-out rows "
            f"({self.n_boot} resamples) puts the 95% lower bound of the improvement above 0"
        )


@dataclass(frozen=True)
class ScoreOnTest:
    """A model on the test set, at the threshold chosen for it on held-out data: its AUC
    and the value of the criterion's metric there."""

    auc: float
    value: float
    degenerate: bool = False


def selection_regret(
    selected: ScoreOnTest,
    original: ScoreOnTest,
    candidates: Sequence[ScoreOnTest],
    tolerance: float,
) -> tuple[float, int | None]:
    """Test value of the criterion's metric for the selected model minus the best among the
    models (the original and ``candidates``) whose test AUC is at least the original's minus
    ``tolerance`` and that are not degenerate on test (a degenerate model's small gap is no
    fairness).

    Returns the regret and the index of that best model in ``candidates`` (None: the
    original). Reported only: test data never chooses.
    """
    pool = [original, *candidates]
    ok = comparable_on_test(original, candidates, tolerance)
    if not ok or math.isnan(selected.value):
        return math.nan, None
    best = ok[0]
    return selected.value - pool[best].value, None if best == 0 else best - 1


def comparable_on_test(
    original: ScoreOnTest, candidates: Sequence[ScoreOnTest], tolerance: float
) -> list[int]:
    """The models the regret compares with, as indices into ``[original, *candidates]``,
    lowest test value first: test AUC at least the original's minus ``tolerance``, the
    criterion's metric defined, and not degenerate on test."""
    pool = [original, *candidates]
    ok = [
        i
        for i, c in enumerate(pool)
        if c.auc >= original.auc - tolerance and not math.isnan(c.value) and not c.degenerate
    ]
    return sorted(ok, key=lambda i: pool[i].value)


def _nan_high(x: float) -> float:
    return math.inf if math.isnan(x) else x


def _nan_low(x: float) -> float:
    return -math.inf if math.isnan(x) else x
