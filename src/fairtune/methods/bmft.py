"""BMFT: bias-based weight masking fine-tuning, "impair then repair" (Xue et al., 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fairtune.data import FairData
from fairtune.masks import Mask, hard_mask
from fairtune.methods.base import MaskedConfig, Method, opt, register
from fairtune.models import ModelSplit


@dataclass
class BMFTConfig(MaskedConfig):
    """BMFT settings; defaults are the authors' (METHODS.md)."""

    keep: float = opt(0.5, "share of backbone weights updated (top of R; authors: K=50 -> 0.5)")
    impair_epochs: int = opt(5, "epochs of the impair step (L_bias on masked backbone weights)")
    impair_lr: float = opt(1e-4, "impair learning rate (SGD, momentum 0.9, weight decay 5e-4)")
    repair_epochs: int = opt(5, "epochs of the repair step (re-initialised head)")
    repair_lr: float = opt(1e-3, "repair learning rate (SGD, momentum 0.9, weight decay 5e-4)")
    beta: float = opt(0.1, "weight of L_bias in the repair loss L_pred + beta * L_bias")
    head_init: str = opt(
        "zeros", "head re-initialisation: zeros (authors) or default", choices=("zeros", "default")
    )


@register
class BMFT(Method):
    """Hard top-K mask over the backbone from relative importance; impair, then repair."""

    name = "bmft"
    summary = "BMFT: hard bias-importance mask, impair the backbone, repair a new head"
    config_class = BMFTConfig
    grid: ClassVar[dict[str, list[Any]]] = {"impair_lr": [1e-4, 1e-3, 1e-2], "keep": [0.25, 0.5]}

    def make_mask(self, split: ModelSplit, external: FairData) -> Mask:
        """The top ``keep`` share of backbone weights by relative importance."""
        r = self.relative_importance(split, external)
        return hard_mask(r, split.backbone_params(), keep=self.config.keep)

    def _fit(
        self, split: ModelSplit, external: FairData
    ) -> tuple[Mask, list[dict[str, Any]], dict[str, Any]]:
        c = self.config
        mask = self.make_mask(split, external)
        history = self.train(
            split,
            external,
            "impair",
            self.objective(external, 0.0, 1.0),
            split.backbone_params(),
            mask,
            epochs=c.impair_epochs,
            lr=c.impair_lr,
        )
        balanced = self.balanced(external)
        split.reset_head(c.head_init, seed=c.seed)
        history += self.train(
            split,
            balanced,
            "repair",
            self.objective(balanced, 1.0, c.beta),
            split.head_params(),
            epochs=c.repair_epochs,
            lr=c.repair_lr,
        )
        return mask, history, {"mask_density": mask.density()}
