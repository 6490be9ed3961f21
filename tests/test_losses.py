"""Losses: hand-computed values, empty cells, gradients, invariants over every kind."""

import math

import pytest
import torch

from fairtune.errors import FairtuneError
from fairtune.finetune.losses import BIAS_KINDS, Objective, bce_loss, bias_loss, pred_loss

# Probabilities chosen by hand; logits are their inverse sigmoid.
#   row:    0    1    2    3    4    5    6    7
#   y:      1    1    0    0    1    1    0    0
#   a:      0    0    0    0    1    1    1    1
#   p:     .9   .7   .2   .4   .6   .4   .1   .3
P = torch.tensor([0.9, 0.7, 0.2, 0.4, 0.6, 0.4, 0.1, 0.3], dtype=torch.float64)
Y = torch.tensor([1, 1, 0, 0, 1, 1, 0, 0], dtype=torch.float64)
A = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
Z = torch.logit(P)
# TPR_0 = (.9+.7)/2 = .8   TPR_1 = (.6+.4)/2 = .5   dTPR = +.3
# FPR_0 = (.2+.4)/2 = .3   FPR_1 = (.1+.3)/2 = .2   dFPR = +.1
# mean p: group 0 = .55, group 1 = .35
HAND_2 = {"eodds": 0.5 * (0.3 + 0.1), "eopp": 0.3, "dp": 0.2, "eodds_signed": 0.5 * 0.4}
# At t = 0.5 and tau = 0.5 the soft decision is sigmoid(2 logit p) = p^2 / (p^2 + (1 - p)^2):
# .9 -> .987805  .7 -> .844828  .2 -> .058824  .4 -> .307692
# .6 -> .692308  .4 -> .307692  .1 -> .012195  .3 -> .155172
# TPR .916316 vs .5, FPR .183258 vs .083684, mean .549787 vs .291842
HAND_2 |= {"eodds_t": 0.5 * (0.416316 + 0.099574), "eopp_t": 0.416316, "dp_t": 0.257945}


def batch(n, seed=0, n_groups=2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator=g, dtype=dtype)
    y = torch.randint(0, 2, (n,), generator=g).to(dtype)
    a = torch.randint(0, n_groups, (n,), generator=g)
    return z, y, a


@pytest.mark.parametrize("kind", BIAS_KINDS)
def test_two_groups_by_hand(kind):
    assert bias_loss(Z, Y, A, 2, kind).item() == pytest.approx(
        HAND_2[kind], abs=1e-6 if kind.endswith("_t") else 1e-12
    )


def test_three_groups_by_hand():
    # Group 2 added: positives p = .95, .85 (TPR .9); negatives p = .25 (FPR .25).
    p = torch.cat([P, torch.tensor([0.95, 0.85, 0.25], dtype=torch.float64)])
    y = torch.cat([Y, torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)])
    a = torch.cat([A, torch.tensor([2, 2, 2])])
    z = torch.logit(p)
    # TPR: .8, .5, .9 -> gap .4; FPR: .3, .2, .25 -> gap .1;
    # mean p: .55, .35, (.95+.85+.25)/3 = .68333 -> gap .33333
    assert bias_loss(z, y, a, 3, "eodds").item() == pytest.approx(0.25, abs=1e-12)
    assert bias_loss(z, y, a, 3, "eopp").item() == pytest.approx(0.4, abs=1e-12)
    assert bias_loss(z, y, a, 3, "dp").item() == pytest.approx(2.05 / 3 - 0.35, abs=1e-12)
    with pytest.raises(FairtuneError, match="exactly 2 groups"):
        bias_loss(z, y, a, 3, "eodds_signed")


def test_two_groups_gap_is_absolute_difference():
    # Swapping the groups flips every signed gap; the default loss does not change.
    for kind in ("eodds", "eopp", "dp", "eodds_signed"):
        assert bias_loss(Z, Y, 1 - A, 2, kind).item() == pytest.approx(HAND_2[kind], abs=1e-12)


def test_signed_form_cancels_opposite_gaps():
    # Group 1's negatives raised to p = .6, .4: FPR_1 = .5, dFPR = -.2 against dTPR = +.3.
    p = P.clone()
    p[6], p[7] = 0.6, 0.4
    z = torch.logit(p)
    assert bias_loss(z, Y, A, 2, "eodds").item() == pytest.approx(0.5 * (0.3 + 0.2), abs=1e-12)
    assert bias_loss(z, Y, A, 2, "eodds_signed").item() == pytest.approx(0.05, abs=1e-12)


def test_empty_cells_contribute_nothing():
    # Group 1 has no positives: the TPR term vanishes, the FPR gap stays.
    keep = torch.tensor([0, 1, 2, 3, 6, 7])
    z = Z[keep].clone().requires_grad_()
    y, a = Y[keep], A[keep]
    for kind, expected in [("eodds", 0.05), ("eopp", 0.0), ("eodds_signed", 0.05)]:
        loss = bias_loss(z, y, a, 2, kind)
        (grad,) = torch.autograd.grad(loss, z)
        assert loss.item() == pytest.approx(expected, abs=1e-12)
        assert torch.isfinite(grad).all()
    # A group absent from the batch altogether, and a batch of one group only.
    z3 = Z.clone().requires_grad_()
    assert bias_loss(z3, Y, A, 3, "eodds").item() == pytest.approx(HAND_2["eodds"], abs=1e-12)
    for kind in BIAS_KINDS:
        loss = bias_loss(z3, Y, torch.zeros_like(A), 2, kind)
        (grad,) = torch.autograd.grad(loss, z3)
        assert loss.item() == 0.0
        assert torch.isfinite(grad).all() and (grad == 0).all()


def test_pred_loss_equals_weighted_sum():
    z, y, _ = batch(13, seed=3)
    n, pos, neg = len(y), y.sum(), (1 - y).sum()
    log_p, log_q = torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z)
    # (P/n) * mean_i[-(N/P) y log p - (1-y) log(1-p)]
    #   = (1/n^2) * sum_i[-N y log p - P (1-y) log(1-p)]
    explicit = (-(neg * y * log_p) - pos * (1 - y) * log_q).sum() / n**2
    assert pred_loss(z, y).item() == pytest.approx(explicit.item(), rel=1e-10)
    assert bce_loss(z, y).item() == pytest.approx(-(y * log_p + (1 - y) * log_q).mean().item())


def test_pred_loss_balances_classes():
    # Each class contributes P*N/n^2 times its mean loss, whatever the class sizes.
    z = torch.tensor([0.3, -0.2, 1.1, 0.5], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    per_pos = -torch.nn.functional.logsigmoid(z[:1]).mean()
    per_neg = -torch.nn.functional.logsigmoid(-z[1:]).mean()
    expected = (1 * 3 / 16) * (per_pos + per_neg)
    assert pred_loss(z, y).item() == pytest.approx(expected.item(), rel=1e-10)


def test_pred_loss_single_class_batches_are_finite():
    z = torch.randn(5, dtype=torch.float64, requires_grad=True)
    for y in (torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)):
        loss = pred_loss(z, y)
        (grad,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


LOSSES = {
    "pred": lambda z, y, a: pred_loss(z, y),
    "bce": lambda z, y, a: bce_loss(z, y),
    **{kind: (lambda k: lambda z, y, a: bias_loss(z, y, a, 3, k))(kind) for kind in BIAS_KINDS},
}
LOSSES["eodds_signed"] = lambda z, y, a: bias_loss(z, y, a % 2, 2, "eodds_signed")


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradcheck_on_logits(name):
    z, y, a = batch(12, seed=1, n_groups=3)
    z.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: LOSSES[name](t, y, a), (z,))


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradient_through_linear_model_matches_finite_differences(name):
    _, y, a = batch(10, seed=2, n_groups=3)
    x = torch.randn(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    w = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    w.requires_grad_()
    (grad,) = torch.autograd.grad(LOSSES[name](x @ w, y, a), w)
    eps = 1e-6
    for j in range(4):
        e = torch.zeros(4, dtype=torch.float64)
        e[j] = eps
        with torch.no_grad():
            fd = (LOSSES[name](x @ (w + e), y, a) - LOSSES[name](x @ (w - e), y, a)) / (2 * eps)
        assert grad[j].item() == pytest.approx(fd.item(), abs=1e-7)


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_invariants(name, n):
    z, y, a = batch(n, seed=n, n_groups=3)
    z.requires_grad_()
    copies = (z.detach().clone(), y.clone(), a.clone())
    loss = LOSSES[name](z, y, a)
    (grad,) = torch.autograd.grad(loss, z)
    assert loss.dim() == 0 and loss.item() >= 0 and math.isfinite(loss.item())
    assert torch.isfinite(grad).all()
    for before, after in zip(copies, (z, y, a), strict=True):
        assert torch.equal(before, after)


@pytest.mark.parametrize("kind", BIAS_KINDS)
def test_float32_works(kind):
    z, y, a = batch(9, dtype=torch.float32)
    assert bias_loss(z, y, a, 2, kind).dtype == torch.float32


def test_objective_weighs_the_terms():
    z, y, a = batch(20, seed=4)
    swift = Objective(w_pred=0.1, w_bias=0.9)
    expected = 0.1 * pred_loss(z, y) + 0.9 * bias_loss(z, y, a, 2)
    assert swift(z, y, a).item() == pytest.approx(expected.item(), rel=1e-12)
    assert Objective.pred()(z, y, a).item() == pytest.approx(pred_loss(z, y).item())
    assert Objective.pred("bce")(z, y, a).item() == pytest.approx(bce_loss(z, y).item())
    bias3 = Objective.bias("eopp", n_groups=3)(z, y, a)
    assert bias3.item() == pytest.approx(bias_loss(z, y, a, 3, "eopp").item())


def test_bad_input_raises():
    z, y, a = batch(6)
    with pytest.raises(FairtuneError, match="unknown bias loss"):
        bias_loss(z, y, a, 2, "nope")
    with pytest.raises(FairtuneError, match="unknown"):
        Objective(pred_kind="nope")
    with pytest.raises(FairtuneError, match="group ids"):
        bias_loss(z, y, a + 1, 2)
    with pytest.raises(FairtuneError, match="same length"):
        pred_loss(z, y[:3])
    with pytest.raises(FairtuneError, match="at least one"):
        pred_loss(z[:0], y[:0])
