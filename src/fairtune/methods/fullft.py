"""Full fine-tuning baseline: every weight, L_pred (+ beta * L_bias), balanced external set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fairtune.data import FairData
from fairtune.methods.base import MIN_STEPS, Fitted, Method, MethodConfig
from fairtune.methods.registry import register
from fairtune.models import ModelSplit
from fairtune.settings import learning_rate, setting, with_origin


@dataclass
class FullFTConfig(MethodConfig):
    """Full fine-tuning settings."""

    epochs: int = with_origin(
        "ours: the papers' fine-tuning budget (SWiFT's 10 epochs)", setting(10, "epochs", low=0)
    )
    lr: float = with_origin(
        "ours: the papers' backbone learning rate",
        learning_rate(1e-4, "learning rate (SGD, momentum 0.9, weight decay 5e-4)"),
    )
    beta: float = with_origin(
        "ours: plain fine-tuning, the papers' baseline",
        setting(
            0.0,
            "weight of L_bias added to L_pred (0: plain fine-tuning)",
            low=0,
        ),
    )


@register
class FullFT(Method[FullFTConfig]):
    """Fine-tune all weights on the balanced external set."""

    name = "fullft"
    summary = "baseline: fine-tune every weight on the balanced external set"
    tunes_backbone = True
    config_class = FullFTConfig
    grid: ClassVar[dict[str, list[Any]]] = {
        "lr": [1e-4, 1e-3, 1e-2],
        "beta": [0.0, 0.5],
        "min_steps": [MIN_STEPS],
    }

    def run_steps(self, split: ModelSplit, external: FairData) -> Fitted:
        c = self.config
        balanced = self.balanced(external)
        phase = self.phase(
            "fullft",
            self.objective(balanced, 1.0, c.beta),
            split.all_params(),
            epochs=c.epochs,
            lr=c.lr,
        )
        return Fitted(None, self.train(split, balanced, phase))
