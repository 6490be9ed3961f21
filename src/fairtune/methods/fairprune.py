"""FairPrune baseline (Wu et al., 2022): prune the weights that serve the privileged group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from fairtune.data import FairData
from fairtune.evaluation.criterion import gap_of
from fairtune.evaluation.evaluate import evaluate_model
from fairtune.finetune.importance import fisher_diagonal
from fairtune.finetune.losses import Objective
from fairtune.finetune.masks import Mask
from fairtune.methods.base import Fitted, MaskedConfig, Method, extreme_groups
from fairtune.methods.registry import register
from fairtune.models import ModelSplit
from fairtune.settings import setting, with_origin


@dataclass
class FairPruneConfig(MaskedConfig):
    """FairPrune settings."""

    beta: float = with_origin(
        "ours: both groups weighed alike",
        setting(
            1.0,
            "weight of the privileged group's curvature in the saliency",
            low=0,
        ),
    )
    step: float = with_origin(
        "ours: small rounds, so the stopping rule stops close to the best",
        setting(
            0.001,
            "share of the still unpruned weights zeroed per round",
            low=0,
            high=1,
            open_low=True,
            log=True,
        ),
    )
    max_rounds: int = with_origin(
        "ours: bounds the cost (2 Fisher passes a round)", setting(20, "most pruning rounds", low=0)
    )
    max_drop: float = with_origin(
        "ours: else predicting one class for all would count as fair",
        setting(
            0.05,
            "a round is kept only if balanced accuracy on the external set "
            "stays within this of the starting model's",
            low=0,
            high=1,
        ),
    )


def group_curvature(
    split: ModelSplit, rows: FairData, config: MaskedConfig, params: list[str]
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher (Gauss-Newton) of L_pred over one group's rows."""
    fisher = fisher_diagonal(
        split.model,
        rows,
        {"pred": Objective.pred(n_groups=1)},
        params=params,
        mode=config.importance,
        batch_size=config.batch_size,
    )
    return fisher["pred"]


@register
class FairPrune(Method[FairPruneConfig]):
    """Zero the lowest-saliency weights, s = 0.5 θ² (h_unpriv − β h_priv), while the gap falls.

    The privileged group is the one with the highest AUC on the external set, the
    unprivileged the lowest. Each round prunes ``step`` of the remaining weights
    (every weight matrix and kernel, biases and norms kept) and is kept only if
    the gap of the bias kind (equalized odds (mean) by default; equal opportunity or
    demographic parity with those objectives) on the external set improves while
    balanced accuracy stays above a floor (else all-positive predictions would count
    as fair).
    """

    name = "fairprune"
    summary = "baseline: prune weights salient for the privileged group while the gap improves"
    tunes_backbone = False
    studied = False
    config_class = FairPruneConfig
    grid: ClassVar[dict[str, list[Any]]] = {"beta": [0.25, 0.5], "step": [0.0005, 0.001, 0.005]}
    fine_tunes = False  # it prunes: no phase for a budgeted search to scale

    def run_steps(self, split: ModelSplit, external: FairData) -> Fitted:
        c = self.config
        params = dict(split.model.named_parameters())
        names = [n for n, p in params.items() if p.dim() >= 2]
        keep = {n: torch.ones_like(params[n]) for n in names}
        gap = gap_of(c.bias_kind)
        start = evaluate_model(split.model, external).metrics
        best, floor = start.value(gap), start.balanced_accuracy - c.max_drop
        history: list[dict[str, Any]] = [{"round": 0, gap: best, "pruned": 0.0}]
        privileged, unprivileged = extreme_groups(split.model, external)
        privileged_rows = external.select_groups([privileged])
        unprivileged_rows = external.select_groups([unprivileged])
        kept = 0
        for round_ in range(1, c.max_rounds + 1):
            h_u = group_curvature(split, unprivileged_rows, c, names)
            h_p = group_curvature(split, privileged_rows, c, names)
            saliency = {
                n: 0.5 * params[n].detach() ** 2 * (h_u[n] - c.beta * h_p[n]) for n in names
            }
            alive = torch.cat([saliency[n][keep[n] > 0] for n in names])
            cut = alive.kthvalue(max(1, int(c.step * alive.numel()))).values
            trial = {n: keep[n] * (saliency[n] > cut) for n in names}
            before = {n: params[n].detach().clone() for n in names}
            with torch.no_grad():
                for n in names:
                    params[n].mul_(trial[n])
            after = evaluate_model(split.model, external).metrics
            value = after.value(gap)
            pruned = 1 - sum(float(t.sum()) for t in trial.values()) / sum(
                t.numel() for t in trial.values()
            )
            history.append({"round": round_, gap: value, "pruned": pruned})
            if not (value < best and after.balanced_accuracy >= floor):
                with torch.no_grad():
                    for n in names:
                        params[n].copy_(before[n])
                break
            best, keep, kept = value, trial, round_
        pruned = sum(int((k == 0).sum()) for k in keep.values())
        info = {
            "privileged": external.group_names[privileged],
            "rounds_kept": kept,
            "pruned": pruned,
            "pruned_nothing": pruned == 0,
        }
        return Fitted(Mask(keep, "prune"), history, info)

    @classmethod
    def notes(cls, info: dict[str, Any]) -> list[str]:
        """A pruning that pruned nothing: its row is the starting model."""
        if not info.get("pruned_nothing"):
            return []
        return [
            "pruned nothing: it stopped before the first round, so its row is the starting model"
        ]
