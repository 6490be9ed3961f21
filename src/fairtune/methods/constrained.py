"""Constrained fine-tuning: min L_pred subject to the objective's gap at t <= eps.

An augmented Lagrangian (METHODS.md, "Constrained fine-tuning"): every batch
minimises L_pred + lambda * (g - eps) + rho / 2 * max(0, g - eps)^2, g the soft
gap at t (the ``*_t`` bias loss); after each epoch the multiplier moves by the
hard gap of the decisions at t on a part of the external set kept out of the
batches, lambda <- max(0, lambda + rho * (gap - eps)) (Cotter et al. 2019's
two data sets: the constraint is enforced where it is measured, not where it is
fitted). The epoch kept is the best that met the constraint on that part.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from fairtune.data import FairData, holdout_split
from fairtune.evaluation.criterion import gap_of
from fairtune.evaluation.criterion import objective as declared_objective
from fairtune.evaluation.metrics import binary_metrics
from fairtune.finetune.losses import AT_THRESHOLD_KINDS, MovingThreshold, bias_loss, pred_loss
from fairtune.finetune.tracking import ThresholdTracker
from fairtune.methods.base import MIN_STEPS, Fitted, Method, MethodConfig
from fairtune.methods.registry import register
from fairtune.models import ModelSplit, predict_proba
from fairtune.settings import learning_rate, setting, with_origin

"""The metric of decisions that each at-threshold loss stands in for."""


@dataclass
class ConstrainedConfig(MethodConfig):
    """Constrained fine-tuning settings."""

    bias_kind: str = with_origin(
        "ours: the verdict's equalized odds, at the operating threshold",
        setting(
            "eodds_t", "the constrained gap: eodds_t, eopp_t, dp_t", choices=AT_THRESHOLD_KINDS
        ),
    )
    eps: float = with_origin(
        "ours: within the seed-to-seed spread of EOdds on the tabular protocols",
        setting(0.02, "largest gap at t allowed on the part kept out", low=0, high=1),
    )
    rho: float = with_origin(
        "ours: the augmented Lagrangian's usual unit penalty",
        setting(1.0, "penalty weight, also the multiplier's step size", low=0, open_low=True),
    )
    check_share: float = with_origin(
        "ours: compare's held-out share; Cotter et al. 2019 keep a second set for the multiplier",
        setting(
            0.3,
            "share of the external set kept out of the batches to measure the constraint",
            low=0,
            high=1,
            open_low=True,
            open_high=True,
        ),
    )
    epochs: int = with_origin(
        "ours: the papers' fine-tuning budget (SWiFT's 10 epochs)", setting(10, "epochs", low=0)
    )
    lr: float = with_origin(
        "ours: a step ten times full fine-tuning's, since the penalty starts at zero",
        learning_rate(1e-3, "learning rate (SGD, momentum 0.9, weight decay 5e-4)"),
    )
    train: str = with_origin(
        "ours: every weight, like full fine-tuning",
        setting("all", "what moves: all weights or the head", choices=("all", "head")),
    )


@dataclass
class _AugmentedLagrangian:
    """L_pred + lam * (g - eps) + rho / 2 * max(0, g - eps)^2 on a batch; ``lam`` and ``at``
    move between epochs."""

    bias_kind: str
    n_groups: int
    eps: float
    rho: float
    tau: float
    lam: float = 0.0
    at: MovingThreshold = field(default_factory=MovingThreshold)

    def __call__(self, logits: Tensor, labels: Tensor, groups: Tensor) -> Tensor:
        at = (self.at.value, self.tau)
        excess = bias_loss(logits, labels, groups, self.n_groups, self.bias_kind, at) - self.eps
        penalty = self.lam * excess + 0.5 * self.rho * torch.relu(excess) ** 2
        return pred_loss(logits, labels) + penalty


@register
class Constrained(Method[ConstrainedConfig]):
    """Fine-tune for the prediction loss under a constraint on the gap at t."""

    name = "constrained"
    summary = "min L_pred s.t. the gap at t <= eps (augmented Lagrangian, checked on a kept part)"
    tunes_backbone = True
    config_class = ConstrainedConfig
    grid: ClassVar[dict[str, list[Any]]] = {
        "lr": [1e-3, 1e-2],
        "eps": [0.02, 0.05],
        "min_steps": [MIN_STEPS],
    }

    @classmethod
    def bias_kind_for(cls, objective: str) -> str:
        """The objective's gap of soft decisions at t: the one this method constrains."""
        return declared_objective(objective).at_threshold

    @classmethod
    def notes(cls, info: dict[str, Any]) -> list[str]:
        """Whether the constraint was met on the part kept out of training."""
        return [constraint_note(info)] if "constraint_met" in info else []

    def run_steps(self, split: ModelSplit, external: FairData) -> Fitted:
        c = self.config
        fit, kept = holdout_split(external, c.check_share, c.seed)
        apart = len(fit) > 0 and not (kept.cell_counts() == 0).any()
        if not apart:  # a part without every (group, label) cell has no gap to check
            fit = kept = external
        loss = _AugmentedLagrangian(c.bias_kind, external.n_groups, c.eps, c.rho, c.tau)
        checker = ThresholdTracker(c.threshold_rule)
        records: list[dict[str, Any]] = []
        best: dict[str, Any] = {}

        def update(epoch: int) -> bool:
            gap, auc, t = self._hard_gap(split, kept, checker)
            met = gap <= c.eps
            records.append({"epoch": epoch, "gap": gap, "auc": auc, "lambda": loss.lam, "t": t})
            rank = (met, auc if met else -gap)
            if not best or rank > best["rank"]:
                best.update(rank=rank, state=copy.deepcopy(split.model.state_dict()), epoch=epoch)
            loss.lam = max(0.0, loss.lam + c.rho * (gap - c.eps))
            return False

        start_gap, start_auc, _ = self._hard_gap(split, kept, checker)
        params = split.all_params() if c.train == "all" else split.head_params()
        phase = self.phase("constrained", loss, params, epochs=c.epochs, lr=c.lr)
        history = self.train(split, self.balanced(fit), phase, on_epoch=update)
        if best:
            split.model.load_state_dict(best["state"])
        kept_record = next((r for r in records if r["epoch"] == best.get("epoch")), None)
        info = {
            "eps": c.eps,
            "start_gap": start_gap,
            "start_auc": start_auc,
            "epoch_kept": best.get("epoch"),
            "gap_kept_part": kept_record["gap"] if kept_record else start_gap,
            "constraint_met": bool(kept_record and kept_record["gap"] <= c.eps),
            "checked_apart": apart,
            "epochs": records,
        }
        return Fitted(None, history, info)

    def _hard_gap(
        self, split: ModelSplit, data: FairData, checker: ThresholdTracker
    ) -> tuple[float, float, float]:
        """The constrained metric of the decisions at t (chosen by the rule) on ``data``,
        the AUC there, and t."""
        t = checker.estimate(split.model, data)
        scores = predict_proba(split.model, data).numpy()
        m = binary_metrics(data.labels.numpy(), scores, data.groups.numpy(), data.group_names, t)
        return float(m[gap_of(self.config.bias_kind)]), float(m["auc"]), t


def constraint_note(info: dict[str, Any]) -> str:
    """Whether a constrained fine-tuning met its eps on the part it kept out, in words."""
    verdict = "met" if info["constraint_met"] else "NOT met"
    where = (
        "the part of the external set kept out of training"
        if info.get("checked_apart", True)
        else "its training rows (too few to keep a part with every group and label apart)"
    )
    return (
        f"checked its constraint (gap at t <= {info['eps']:g}): {verdict} on {where}, "
        f"{info['gap_kept_part']:.3f} (start {info['start_gap']:.3f})"
    )
