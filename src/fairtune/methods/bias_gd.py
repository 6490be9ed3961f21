"""Bias gradient descent baseline (Marcinkevics et al., 2022): all weights, L_bias alone."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

from fairtune.data import FairData
from fairtune.evaluation.evaluate import evaluate_model
from fairtune.methods.base import MIN_STEPS, Fitted, Method, MethodConfig
from fairtune.methods.registry import register
from fairtune.models import ModelSplit
from fairtune.settings import learning_rate, setting, with_origin


@dataclass
class BiasGDConfig(MethodConfig):
    """Bias gradient descent settings."""

    epochs: int = with_origin(
        "ours: the papers' fine-tuning budget (10 epochs)", setting(10, "most epochs", low=0)
    )
    lr: float = with_origin(
        "ours: small, since L_bias alone pulls every weight",
        learning_rate(1e-5, "Adam learning rate"),
    )
    max_drop: float = with_origin(
        "ours: the spec stops by a balanced-accuracy floor and names no value",
        setting(
            0.05,
            "stop once balanced accuracy on the external set falls more than "
            "this below the starting model's; keep the last epoch above",
            low=0,
            high=1,
        ),
    )


@register
class BiasGD(Method[BiasGDConfig]):
    """Minimise L_bias over every weight with Adam, stopped by a balanced-accuracy floor."""

    name = "bias_gd"
    summary = "baseline: gradient descent on the bias loss alone, balanced-accuracy floor"
    tunes_backbone = True
    studied = False
    config_class = BiasGDConfig
    grid: ClassVar[dict[str, list[Any]]] = {"lr": [1e-5, 1e-4, 1e-3], "min_steps": [MIN_STEPS]}

    def run_steps(self, split: ModelSplit, external: FairData) -> Fitted:
        c = self.config
        model = split.model
        floor = evaluate_model(model, external).metrics.balanced_accuracy - c.max_drop
        last_good = copy.deepcopy(model.state_dict())
        stopped: dict[str, Any] = {"floor": floor, "stopped_at_epoch": None}

        def check(epoch: int) -> bool:
            if evaluate_model(model, external).metrics.balanced_accuracy < floor:
                stopped["stopped_at_epoch"] = epoch
                return True
            last_good.update(copy.deepcopy(model.state_dict()))
            return False

        phase = self.phase(
            "bias_gd",
            self.objective(external, 0.0, 1.0),
            split.all_params(),
            epochs=c.epochs,
            lr=c.lr,
            optimizer="adam",
            weight_decay=0.0,
        )
        history = self.train(split, external, phase, on_epoch=check)
        model.load_state_dict(last_good)
        return Fitted(None, history, stopped)
