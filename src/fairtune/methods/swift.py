"""SWiFT: soft-mask weight fine-tuning (Yan et al., 2025)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from fairtune.data import FairData
from fairtune.finetune.masks import Mask, soft_mask
from fairtune.finetune.training import OPTIMIZERS
from fairtune.methods.base import MIN_STEPS, Fitted, MaskedConfig, Method, extreme_groups
from fairtune.methods.registry import register
from fairtune.models import ModelSplit
from fairtune.settings import OPTIMIZER, learning_rate, setting, with_origin


@dataclass
class SWiFTConfig(MaskedConfig):
    """SWiFT settings; defaults are the authors' (METHODS.md)."""

    beta: float = with_origin(
        "SWiFT paper",
        setting(
            0.1,
            "step 1 loss beta*L_pred + (1-beta)*L_bias; step 2 (1-beta)*L_pred + beta*L_bias",
            low=0,
            high=1,
        ),
    )
    step1_epochs: int = with_origin(
        "SWiFT paper", setting(10, "epochs of step 1 (soft-masked backbone)", low=0)
    )
    step1_lr: float = with_origin(
        "SWiFT paper", learning_rate(1e-4, "step 1 learning rate", optimizer="step1_optimizer")
    )
    step1_optimizer: str = with_origin(
        "SWiFT paper (skin; Adam for chest X-rays)",
        setting(
            "sgd",
            "step 1 optimizer: sgd (skin; momentum 0.9, weight decay 5e-4) or adam (chest X-ray)",
            choices=OPTIMIZERS,
            kind=OPTIMIZER,
        ),
    )
    step2_epochs: int = with_origin(
        "ours: as step 1 (the paper gives step 1's)",
        setting(
            10,
            "epochs of step 2 (head, backbone frozen)",
            low=0,
        ),
    )
    step2_lr: float = with_origin(
        "SWiFT paper", learning_rate(1e-3, "step 2 learning rate (SGD)")
    )


def reset_head_partially(split: ModelSplit, mask: Mask) -> int:
    """Zero the head weights whose mask value is above their tensor's mean; count them."""
    params = dict(split.model.named_parameters())
    zeroed = 0
    with torch.no_grad():
        for name in split.head_params():
            m = mask.values[name]
            above = m > m.mean()
            params[name][above] = 0.0
            zeroed += int(above.sum())
    return zeroed


@register
class SWiFT(Method[SWiFTConfig]):
    """Soft mask tanh(R) on every weight; masked backbone step, head reset, head step."""

    name = "swift"
    summary = "SWiFT: soft mask scales every gradient; backbone step, partial head reset, head step"
    tunes_backbone = True
    config_class = SWiFTConfig
    grid: ClassVar[dict[str, list[Any]]] = {
        "step1_optimizer": list(OPTIMIZERS),
        "step1_lr": [1e-4, 1e-3, 1e-2],
        "beta": [0.1, 0.3],
        "min_steps": [MIN_STEPS],
    }

    def run_steps(self, split: ModelSplit, external: FairData) -> Fitted:
        c = self.config
        info: dict[str, Any] = {}
        if external.n_groups > 2:
            best, worst = extreme_groups(split.model, external)
            n_groups = external.n_groups
            external = external.select_groups([best, worst])
            info["groups"] = list(external.group_names)
            warnings.warn(
                f"SWiFT works on two groups: of the {n_groups} groups it keeps the best- and "
                f"worst-AUC ones ({', '.join(info['groups'])}) and fine-tunes on their rows alone",
                stacklevel=2,
            )
        balanced = self.balanced(external)
        mask = soft_mask(self.relative_importance(split, balanced), split.all_params())
        step1 = self.phase(
            "step1",
            self.objective(balanced, c.beta, 1 - c.beta),
            split.backbone_params(),
            mask,
            epochs=c.step1_epochs,
            lr=c.step1_lr,
            optimizer=c.step1_optimizer,
        )
        history = self.train(split, balanced, step1)
        info["head_weights_reset"] = self.reset_head(split, mask)
        step2 = self.phase(
            "step2",
            self.objective(balanced, 1 - c.beta, c.beta),
            split.head_params(),
            epochs=c.step2_epochs,
            lr=c.step2_lr,
        )
        history += self.train(split, balanced, step2)
        info["mask_mean"] = mask.mean()
        return Fitted(mask, history, info)

    def reset_head(self, split: ModelSplit, mask: Mask) -> int:
        """The partial head reset between the steps; the number of head weights zeroed."""
        return reset_head_partially(split, mask)
