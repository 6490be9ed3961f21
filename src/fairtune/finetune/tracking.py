"""The operating threshold t that an at-threshold loss aims at, re-estimated as the model moves.

``compare`` reports decisions at a threshold chosen by a rule on held-out
external data (:mod:`fairtune.evaluation.thresholds`). A loss that aims at those decisions
needs the same t while it trains: :class:`ThresholdTracker` chooses it by the
same rule on the rows the method trains on, before a phase and after each of
its epochs, with the reference positive rate (rule ``positive_rate``) taken
once from the model as the method received it (METHODS.md, "Bias loss at the
operating threshold").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from fairtune.data import FairData
from fairtune.evaluation.thresholds import THRESHOLD_RULES, choose_threshold
from fairtune.finetune.losses import AT_THRESHOLD_KINDS, TAU, MovingThreshold
from fairtune.models import predict_proba
from fairtune.settings import setting, with_origin

TAU_SETTING: Any = with_origin(
    "ours: soft decisions about one logit wide (METHODS.md, bias loss at the operating threshold)",
    setting(
        TAU,
        "temperature of the soft decisions sigmoid((z - logit t) / tau) of the *_t bias losses",
        low=0,
        open_low=True,
    ),
)
RULE_SETTING: Any = with_origin(
    "ours: compare's default rule, so the loss aims at the threshold the verdict uses",
    setting(
        "positive_rate",
        "how the *_t bias losses choose t on the training rows, as compare does on held-out "
        "rows: the starting model's positive rate, best balanced accuracy, or 0.5",
        choices=THRESHOLD_RULES,
    ),
)


def aims_at_threshold(loss: Any) -> MovingThreshold | None:
    """The threshold a loss aims at, or None when it does not (a threshold-free kind)."""
    at = getattr(loss, "at", None)
    kind = getattr(loss, "bias_kind", AT_THRESHOLD_KINDS[0])
    return at if isinstance(at, MovingThreshold) and kind in AT_THRESHOLD_KINDS else None


@dataclass
class ThresholdTracker:
    """Chooses t by ``rule`` for one method's fit; ``reference_rate`` is fixed at first use."""

    rule: str = "positive_rate"
    reference_rate: float | None = None

    def estimate(self, model: nn.Module, data: FairData) -> float:
        """t for ``model`` on ``data`` by the rule (the first call fixes the reference rate)."""
        scores = predict_proba(model, data).numpy()
        if self.reference_rate is None:
            self.reference_rate = float(np.mean(scores >= 0.5))
        return choose_threshold(data.labels.numpy(), scores, self.rule, self.reference_rate)

    def aim(self, loss: Any, model: nn.Module, data: FairData) -> Any:
        """``loss`` with its threshold (if it has one) set for ``model`` on ``data``."""
        at = aims_at_threshold(loss)
        if at is not None:
            at.value = self.estimate(model, data)
        return loss

    def follow(
        self,
        loss: Any,
        model: nn.Module,
        data: FairData,
        on_epoch: Callable[[int], bool] | None,
    ) -> Callable[[int], bool] | None:
        """Aim ``loss`` now; return an epoch callback that aims it again after each epoch and
        then calls ``on_epoch`` (``on_epoch`` itself when the loss has no threshold)."""
        if aims_at_threshold(self.aim(loss, model, data)) is None:
            return on_epoch

        def after(epoch: int) -> bool:
            self.aim(loss, model, data)
            return bool(on_epoch(epoch)) if on_epoch is not None else False

        return after
