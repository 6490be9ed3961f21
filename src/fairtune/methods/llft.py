"""Last-layer fine-tuning baseline (Mao et al., 2023): a new head on the frozen backbone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fairtune.data import FairData
from fairtune.methods.base import MIN_STEPS, Fitted, Method, MethodConfig
from fairtune.methods.registry import register
from fairtune.models import ModelSplit
from fairtune.settings import learning_rate, setting, with_origin


@dataclass
class LLFTConfig(MethodConfig):
    """Last-layer fine-tuning settings."""

    epochs: int = with_origin(
        "ours: the papers' fine-tuning budget (SWiFT's 10 epochs)", setting(10, "epochs", low=0)
    )
    lr: float = with_origin(
        "ours: BMFT's head learning rate",
        learning_rate(1e-3, "learning rate (SGD, momentum 0.9, weight decay 5e-4)"),
    )
    beta: float = with_origin(
        "ours: BMFT's repair loss",
        setting(
            0.1,
            "weight of L_bias in L_pred + beta * L_bias",
            low=0,
        ),
    )
    head_init: str = with_origin(
        "ours: a fresh head as Mao et al. re-initialise it",
        setting(
            "default",
            "head re-initialisation: default (PyTorch's) or zeros",
            choices=("zeros", "default"),
        ),
    )


@register
class LLFT(Method[LLFTConfig]):
    """Re-initialise the head and train it alone on the balanced external set."""

    name = "llft"
    summary = "baseline: re-initialise and train only the head"
    tunes_backbone = False
    config_class = LLFTConfig
    grid: ClassVar[dict[str, list[Any]]] = {
        "lr": [1e-3, 1e-2, 1e-1],
        "beta": [0.1, 0.5],
        "min_steps": [MIN_STEPS],
    }

    def run_steps(self, split: ModelSplit, external: FairData) -> Fitted:
        c = self.config
        balanced = self.balanced(external)
        split.reset_head(c.head_init, seed=c.seed)
        return Fitted(None, self.head_step(split, balanced, "llft", c.epochs, c.lr, c.beta))
