"""The selection rule: which fitted setting of a method a comparison keeps.

Every setting tried is scored on the held-out part of the external set
(:class:`HeldOutScore`); :class:`SelectionRule` picks one, gives optuna the
same preference as one number, and says the rule in words for the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HeldOutScore:
    """A model on the held-out part: the threshold chosen there, and AUC and EOdds at it."""

    threshold: float
    auc: float
    eodds_mean: float


@dataclass(frozen=True)
class SelectionRule:
    """Lowest held-out EOdds (mean) among settings whose held-out AUC stays within
    ``tolerance`` of the starting model's; if none does, the best held-out AUC."""

    tolerance: float
    holdout: float
    tuner: str
    trials: int

    def choose(self, scores: Sequence[HeldOutScore], start_auc: float) -> int:
        """The index of the setting kept among ``scores`` (NaN EOdds last, NaN AUC worst)."""
        indices = range(len(scores))
        ok = [i for i in indices if scores[i].auc >= start_auc - self.tolerance]
        if ok:
            return min(ok, key=lambda i: (_nan_high(scores[i].eodds_mean), -scores[i].auc))
        return max(indices, key=lambda i: _nan_low(scores[i].auc))

    def score(self, held: HeldOutScore, start_auc: float) -> float:
        """The rule as one number for optuna to minimise: AUC within tolerance first, then
        lower EOdds."""
        shortfall = max(0.0, start_auc - self.tolerance - _nan_low(held.auc))
        return shortfall * 100 + _nan_high(held.eodds_mean)

    def text(self) -> str:
        """The rule in one sentence, as the report prints it."""
        tried = (
            "grid setting" if self.tuner == "grid" else f"setting of {self.trials} optuna trials"
        )
        return (
            f"per method, the {tried} with the lowest EOdds (mean) on the held-out "
            f"{self.holdout:.0%} of the external set, at the threshold chosen there, among those "
            f"whose held-out AUC is at least the starting model's minus {self.tolerance}; "
            "if none qualifies, the best held-out AUC"
        )


def _nan_high(x: float) -> float:
    return math.inf if math.isnan(x) else x


def _nan_low(x: float) -> float:
    return -math.inf if math.isnan(x) else x
