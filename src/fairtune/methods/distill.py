"""Distilling group thresholds: teach the model to make, at one threshold and without the
attribute, the decisions that fairlearn's ThresholdOptimizer makes with it.

On the external set (METHODS.md, "Distilling group thresholds"): fit the
group thresholds to the starting model's scores, under the constraint of the
objective the bias loss trains towards (equalized odds unless told); each row's
probability q of a positive decision under its group's randomized rule is its
soft target. Fine-tuning then minimises BCE(sigmoid((z - logit t) / tau), q)
+ w_pred * L_pred at the starting model's operating threshold t. The attribute
is read only to compute q; the model it returns decides from its inputs alone,
so it can learn the group thresholds only where its inputs carry the attribute
or a proxy of it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fairtune.data import FairData
from fairtune.evaluation.criterion import objective_of
from fairtune.evaluation.postprocess import (
    LabelledScores,
    decision_probabilities,
    threshold_optimizer_reference,
)
from fairtune.finetune.losses import pred_loss
from fairtune.methods.base import MIN_STEPS, Fitted, Method, MethodConfig
from fairtune.methods.registry import register
from fairtune.models import ModelSplit, predict_proba
from fairtune.settings import learning_rate, setting, with_origin

TARGET_OBJECTIVES = ("accuracy_score", "balanced_accuracy_score")
"""What fairlearn's group thresholds may maximise when they make the targets."""

NEAREST = "nearest_rate"
"""Of :data:`TARGET_OBJECTIVES`, the one whose positive rate lies nearest the start's at t."""


@dataclass
class DistillConfig(MethodConfig):
    """Settings of the distillation of group thresholds."""

    balance: str = with_origin(
        "ours: the group thresholds are fitted on the set as it comes, as the reference row's",
        setting(
            "none",
            "group-and-class balancing of the external set: down, up, none",
            choices=("down", "up", "none"),
        ),
    )
    epochs: int = with_origin(
        "ours: the papers' fine-tuning budget (SWiFT's 10 epochs)", setting(10, "epochs", low=0)
    )
    lr: float = with_origin(
        "ours: full fine-tuning's grid middle",
        learning_rate(1e-3, "learning rate (SGD, momentum 0.9, weight decay 5e-4)"),
    )
    w_pred: float = with_origin(
        "ours: keeps the ranking (AUC) while the decisions move",
        setting(0.5, "weight of L_pred on the true labels beside the distillation loss", low=0),
    )
    targets_at: str = with_origin(
        "ours: the verdict judges decisions at the starting model's positive rate, and "
        "fairlearn's default objective (accuracy) can pick a rate far from it",
        setting(
            NEAREST,
            "what the group thresholds maximise under the constraint: accuracy_score "
            "(fairlearn's default; on unbalanced classes a positive rate far below the "
            "start's), balanced_accuracy_score, or nearest_rate: of those two, the one whose "
            "positive rate on the training rows lies nearest the starting model's at t",
            choices=(NEAREST, *TARGET_OBJECTIVES),
        ),
    )
    train: str = with_origin(
        "ours: every weight, like full fine-tuning; the head alone cannot reach an "
        "attribute the backbone's features have lost",
        setting("all", "what moves: all weights or the head", choices=("all", "head")),
    )


@dataclass(frozen=True)
class _Distillation:
    """BCE of the soft decisions at t against the targets, + w_pred * L_pred.

    The target of a row travels as its id in the group slot of the training rows:
    ``targets[id]`` is its probability of a positive decision.
    """

    targets: Tensor
    logit_t: float
    tau: float
    w_pred: float

    def __call__(self, logits: Tensor, labels: Tensor, ids: Tensor) -> Tensor:
        q = self.targets.to(logits.device, logits.dtype)[ids]
        loss = F.binary_cross_entropy_with_logits((logits - self.logit_t) / self.tau, q)
        return loss + self.w_pred * pred_loss(logits, labels) if self.w_pred else loss


@register
class Distill(Method[DistillConfig]):
    """Fine-tune so that one threshold reproduces the group thresholds' decisions."""

    name = "distill"
    summary = "fit group thresholds on the external set, then teach the model their decisions"
    tunes_backbone = True
    config_class = DistillConfig
    grid: ClassVar[dict[str, list[Any]]] = {
        "lr": [1e-3, 1e-2],
        "w_pred": [0.1, 0.5],
        "targets_at": list(TARGET_OBJECTIVES),
        "min_steps": [MIN_STEPS],
    }

    def run_steps(self, split: ModelSplit, external: FairData) -> Fitted:
        c = self.config
        data = self.balanced(external)
        scores = predict_proba(split.model, data).numpy()
        t = self.tracker.estimate(split.model, data)
        labels, groups = data.labels.numpy(), data.groups.numpy()
        names = data.group_names
        constraint = objective_of(c.bias_kind).constraint
        rate = float((scores >= t).mean())
        options = TARGET_OBJECTIVES if c.targets_at == NEAREST else (c.targets_at,)
        cache = {} if self.context.targets is None else self.context.targets
        fitted_on = hashlib.sha256(b"".join(a.tobytes() for a in (scores, labels, groups)))
        made = {}
        for objective in options:  # the same for every lr and w_pred: fitted once per search
            key = ("distill", fitted_on.hexdigest(), tuple(names), constraint, objective, c.seed)
            if key not in cache:
                cache[key] = threshold_optimizer_reference(
                    LabelledScores(scores, labels, groups),
                    scores,
                    groups,
                    names,
                    c.seed,
                    constraint,
                    objective=objective,
                ).rules
            made[objective] = cache[key]
        expected = {o: decision_probabilities(r, scores, groups, names) for o, r in made.items()}
        objective = min(options, key=lambda o: abs(float(expected[o].mean()) - rate))
        rules, q = made[objective], expected[objective]
        levels, ids = np.unique(q, return_inverse=True)
        carrier = data.replace(
            groups=torch.as_tensor(ids, dtype=torch.long),
            group_names=[f"q={v:.6g}" for v in levels],
        )
        loss = _Distillation(
            torch.as_tensor(levels, dtype=torch.float32), math.log(t / (1 - t)), c.tau, c.w_pred
        )
        params = split.all_params() if c.train == "all" else split.head_params()
        phase = self.phase("distill", loss, params, epochs=c.epochs, lr=c.lr)
        history = self.train(split, carrier, phase)
        decided = predict_proba(split.model, data).numpy() >= t
        info = {
            "threshold": t,
            "targets_at": objective,
            "positive_rate_at_t": rate,
            "targets_positive_rate": {o: float(v.mean()) for o, v in expected.items()},
            "rules": {k: vars(r).copy() for k, r in rules.items()},
            "agreement": float(np.mean(np.where(decided, q, 1 - q))),
            "agreement_start": float(np.mean(np.where(scores >= t, q, 1 - q))),
            "agreement_of_rules_with_themselves": float(np.mean(q**2 + (1 - q) ** 2)),
        }
        return Fitted(None, history, info)
