"""BMFT: bias-based weight masking fine-tuning, "impair then repair" (Xue et al., 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fairtune.data import FairData
from fairtune.finetune.masks import Mask, hard_mask
from fairtune.methods.base import MIN_STEPS, Fitted, MaskedConfig, Method
from fairtune.methods.registry import register
from fairtune.models import ModelSplit
from fairtune.settings import learning_rate, setting, with_origin


@dataclass
class BMFTConfig(MaskedConfig):
    """BMFT settings; defaults are the authors' (METHODS.md)."""

    keep: float = with_origin(
        "BMFT paper (K = 50)",
        setting(
            0.5,
            "share of backbone weights updated (top of R; authors: K=50 -> 0.5)",
            low=0,
            high=1,
            open_low=True,
        ),
    )
    impair_epochs: int = with_origin(
        "BMFT paper (5 epochs; the code has 10)",
        setting(
            5,
            "epochs of the impair step (L_bias on masked backbone weights)",
            low=0,
        ),
    )
    impair_lr: float = with_origin(
        "BMFT authors' code",
        learning_rate(1e-4, "impair learning rate (SGD, momentum 0.9, weight decay 5e-4)"),
    )
    repair_epochs: int = with_origin(
        "BMFT paper", setting(5, "epochs of the repair step (re-initialised head)", low=0)
    )
    repair_lr: float = with_origin(
        "BMFT authors' code",
        learning_rate(1e-3, "repair learning rate (SGD, momentum 0.9, weight decay 5e-4)"),
    )
    beta: float = with_origin(
        "BMFT paper",
        setting(
            0.1,
            "weight of L_bias in the repair loss L_pred + beta * L_bias",
            low=0,
        ),
    )
    head_init: str = with_origin(
        "BMFT authors' code",
        setting(
            "zeros",
            "head re-initialisation: zeros (authors) or default",
            choices=("zeros", "default"),
        ),
    )


@register
class BMFT(Method[BMFTConfig]):
    """Hard top-K mask over the backbone from relative importance; impair, then repair."""

    name = "bmft"
    summary = "BMFT: hard bias-importance mask, impair the backbone, repair a new head"
    tunes_backbone = True
    config_class = BMFTConfig
    grid: ClassVar[dict[str, list[Any]]] = {
        "impair_lr": [1e-4, 1e-3, 1e-2],
        "keep": [0.25, 0.5],
        "min_steps": [MIN_STEPS],
    }

    def make_mask(self, split: ModelSplit, external: FairData) -> Mask:
        """The top ``keep`` share of backbone weights by relative importance."""
        r = self.relative_importance(split, external)
        return hard_mask(r, split.backbone_params(), keep=self.config.keep)

    def run_steps(self, split: ModelSplit, external: FairData) -> Fitted:
        c = self.config
        mask = self.make_mask(split, external)
        impair = self.phase(
            "impair",
            self.objective(external, 0.0, 1.0),
            split.backbone_params(),
            mask,
            epochs=c.impair_epochs,
            lr=c.impair_lr,
        )
        history = self.train(split, external, impair)
        history += self.repair(split, external)
        return Fitted(mask, history, {"mask_density": mask.density()})

    def repair(self, split: ModelSplit, external: FairData) -> list[dict[str, Any]]:
        """Step 2: re-initialise the head and train it on the balanced external set."""
        c = self.config
        balanced = self.balanced(external)
        split.reset_head(c.head_init, seed=c.seed)
        return self.head_step(split, balanced, "repair", c.repair_epochs, c.repair_lr, c.beta)
