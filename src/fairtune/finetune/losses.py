"""Losses on a batch of logits: the prediction loss L_pred and the bias loss L_bias.

Both follow METHODS.md. :class:`Objective` weighs the two into the one callable
that importance and fine-tuning take: ``objective(logits, labels, groups)``, of
type :data:`LossFn`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from fairtune.errors import FairtuneError

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""A loss on a batch: (logits, labels, groups) -> scalar tensor; an :class:`Objective` is one."""

AT_THRESHOLD_KINDS = ("eodds_t", "eopp_t", "dp_t")
"""Bias losses on soft decisions at the operating threshold t rather than on probabilities."""
BIAS_KINDS = ("eodds", "eopp", "dp", "eodds_signed", *AT_THRESHOLD_KINDS)
TAU = 0.5
"""Default temperature of the soft decisions at t, in logit units (METHODS.md)."""
PRED_KINDS = ("weighted", "bce")


def _check(logits: Tensor, labels: Tensor, groups: Tensor | None = None) -> None:
    if logits.dim() != 1 or labels.shape != logits.shape:
        raise FairtuneError(
            f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} must be 1-D "
            "and of the same length"
        )
    if len(logits) == 0:
        raise FairtuneError("a loss needs a batch of at least one sample")
    if groups is not None and groups.shape != logits.shape:
        raise FairtuneError(
            f"groups {tuple(groups.shape)} must have the shape of the logits {tuple(logits.shape)}"
        )


def bce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Plain binary cross-entropy on logits, mean over the batch."""
    _check(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def pred_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L_pred: (P / n) * BCE(z, y; pos_weight = N / P), classes rebalanced per batch.

    P positives (guarded by +1e-10), N negatives, n = P + N samples in the batch.
    """
    _check(logits, labels)
    y = labels.to(logits.dtype)
    n = len(y)
    positives = y.sum() + 1e-10
    negatives = n - y.sum()
    bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=negatives / positives)
    return positives / n * bce


def _cell_means(p: Tensor, groups: Tensor, select: Tensor, n_groups: int) -> tuple[Tensor, Tensor]:
    """Mean of ``p`` per group over the selected rows, and which groups have any."""
    w = select.to(p.dtype)
    sums = p.new_zeros(n_groups).index_add(0, groups, p * w)
    counts = p.new_zeros(n_groups).index_add(0, groups, w)
    return sums / counts.clamp(min=1), counts > 0


def _gap(means: Tensor, present: Tensor) -> Tensor:
    """Largest minus smallest mean over the present groups; 0 with fewer than two."""
    hi = means.masked_fill(~present, float("-inf")).max()
    lo = means.masked_fill(~present, float("inf")).min()
    return torch.where(present.sum() >= 2, hi - lo, means.new_zeros(()))


def _signed_diff(means: Tensor, present: Tensor) -> Tensor:
    """Group 0's mean minus group 1's; 0 unless both groups are present."""
    return torch.where(present.all(), means[0] - means[1], means.new_zeros(()))


@dataclass
class MovingThreshold:
    """The operating threshold t that an at-threshold bias loss aims at; its owner
    re-estimates ``value`` as the model moves (see ``fairtune.methods.base``)."""

    value: float = 0.5


def soft_decisions(logits: Tensor, threshold: float, tau: float = TAU) -> Tensor:
    """sigmoid((z - logit t) / tau): a differentiable stand-in for the decision z >= logit t."""
    if not 0.0 < threshold < 1.0 or not tau > 0:
        raise FairtuneError(f"soft decisions need t in (0, 1) and tau > 0, not {threshold}, {tau}")
    return torch.sigmoid((logits - math.log(threshold / (1.0 - threshold))) / tau)


def bias_loss(
    logits: Tensor,
    labels: Tensor,
    groups: Tensor,
    n_groups: int,
    kind: str = "eodds",
    at: tuple[float, float] = (0.5, TAU),
) -> Tensor:
    """L_bias: a differentiable fairness gap on probabilities sigmoid(z).

    ``kind``: "eodds" 0.5 * (|TPR gap| + |FPR gap|), "eopp" |TPR gap|, "dp" the gap
    of mean probabilities, "eodds_signed" the authors' 0.5 * |dFPR + dTPR| (two
    groups only; opposite gaps cancel). A gap is the largest minus the smallest
    group mean over the groups present in that cell of the batch; a cell with
    fewer than two groups present contributes 0. The kinds ending in "_t" take the
    same gaps of soft decisions at the threshold: :func:`soft_decisions` with
    ``at`` = (t, tau) in place of sigmoid(z).
    """
    _check(logits, labels, groups)
    if kind not in BIAS_KINDS:
        raise FairtuneError(f"unknown bias loss '{kind}'; choose one of {list(BIAS_KINDS)}")
    if kind == "eodds_signed" and n_groups != 2:
        raise FairtuneError(
            f"the signed equalized-odds loss needs exactly 2 groups, not {n_groups}: "
            "use kind='eodds' or keep two groups"
        )
    if int(groups.min()) < 0 or int(groups.max()) >= n_groups:
        raise FairtuneError(f"group ids must lie in 0..{n_groups - 1}")
    if kind in AT_THRESHOLD_KINDS:
        p, kind = soft_decisions(logits, *at), kind.removesuffix("_t")
    else:
        p = torch.sigmoid(logits)
    positive = labels > 0.5
    if kind == "dp":
        return _gap(*_cell_means(p, groups, torch.ones_like(positive), n_groups))
    tpr = _cell_means(p, groups, positive, n_groups)
    if kind == "eopp":
        return _gap(*tpr)
    fpr = _cell_means(p, groups, ~positive, n_groups)
    if kind == "eodds":
        return 0.5 * (_gap(*tpr) + _gap(*fpr))
    return 0.5 * (_signed_diff(*fpr) + _signed_diff(*tpr)).abs()


PRED_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "weighted": pred_loss,
    "bce": bce_loss,
}


@dataclass(frozen=True)
class Objective:
    """``w_pred * L_pred + w_bias * L_bias`` as a callable on (logits, labels, groups).

    A term of weight 0 is not computed. SWiFT's step 1, for instance, is
    ``Objective(w_pred=0.1, w_bias=0.9)``. An at-threshold ``bias_kind`` aims at
    ``at.value`` with temperature ``tau``.
    """

    w_pred: float = 1.0
    w_bias: float = 0.0
    bias_kind: str = "eodds"
    n_groups: int = 2
    pred_kind: str = "weighted"
    at: MovingThreshold = field(default_factory=MovingThreshold)
    tau: float = TAU

    def __post_init__(self) -> None:
        if self.pred_kind not in PRED_KINDS:
            raise FairtuneError(
                f"unknown prediction loss '{self.pred_kind}'; choose one of {list(PRED_KINDS)}"
            )
        if self.bias_kind not in BIAS_KINDS:
            raise FairtuneError(
                f"unknown bias loss '{self.bias_kind}'; choose one of {list(BIAS_KINDS)}"
            )

    @classmethod
    def pred(cls, kind: str = "weighted", n_groups: int = 2) -> Objective:
        """L_pred alone."""
        return cls(w_pred=1.0, w_bias=0.0, n_groups=n_groups, pred_kind=kind)

    @classmethod
    def bias(
        cls, kind: str = "eodds", n_groups: int = 2, at: MovingThreshold | None = None
    ) -> Objective:
        """L_bias alone (at ``at``'s threshold for an at-threshold kind)."""
        return cls(
            w_pred=0.0, w_bias=1.0, bias_kind=kind, n_groups=n_groups, at=at or MovingThreshold()
        )

    def __call__(self, logits: Tensor, labels: Tensor, groups: Tensor) -> Tensor:
        total = logits.new_zeros(())
        if self.w_pred:
            total = total + self.w_pred * PRED_LOSSES[self.pred_kind](logits, labels)
        if self.w_bias:
            at = (self.at.value, self.tau)
            bias = bias_loss(logits, labels, groups, self.n_groups, self.bias_kind, at)
            total = total + self.w_bias * bias
        return total
