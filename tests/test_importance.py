"""Importance: both Fisher modes against plain loops, and the model left untouched."""

import copy
from functools import partial

import pytest
import torch
from _helpers import random_data
from torch import nn

from fairtune.errors import FairtuneError
from fairtune.finetune.importance import FISHER_MODES, fisher_diagonal, per_sample_gradients
from fairtune.finetune.losses import Objective
from fairtune.models import MLP, logits

OBJECTIVES = {"pred": Objective.pred(), "bias": Objective.bias()}
MORE_OBJECTIVES = {
    **OBJECTIVES,
    "eopp": Objective.bias("eopp"),
    "dp": Objective.bias("dp"),
    "swift": Objective(w_pred=0.1, w_bias=0.9),
}


make_data = partial(random_data, n=40, seed=0, dtype=torch.float64)


def mlp():
    torch.manual_seed(0)
    return MLP(in_features=5, hidden=(4,)).double()


def bn_model():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1)).double()
    with torch.no_grad():  # running statistics away from their initial values
        for _ in range(3):
            model(torch.randn(16, 5, dtype=torch.float64) * 2 + 1)
    return model


MODELS = {"mlp": mlp, "batchnorm": bn_model}


def assert_same(result, reference):
    assert result.keys() == reference.keys()
    for k in reference:
        assert result[k].keys() == reference[k].keys()
        for n, ref in reference[k].items():
            assert result[k][n].dtype == torch.float32
            torch.testing.assert_close(result[k][n], ref.float(), rtol=1e-6, atol=1e-12)


def loop_per_sample(model, data, objectives, batch_size):
    """Per-sample Fisher by a Python loop: one backward of n * (dL/dz_i) * z_i per sample."""
    model.eval()
    params = dict(model.named_parameters())
    sums = {k: {n: torch.zeros_like(p) for n, p in params.items()} for k in objectives}
    count = 0
    for x, y, a in data.loader(batch_size):
        y = y.double()
        with torch.no_grad():
            z = logits(model, x)
        for k, objective in objectives.items():
            leaf = z.clone().requires_grad_()
            (dz,) = torch.autograd.grad(objective(leaf, y, a), leaf)
            for i in range(len(y)):
                zi = logits(model, x[i : i + 1])
                grads = torch.autograd.grad(len(y) * dz[i] * zi[0], list(params.values()))
                for n, g in zip(params, grads, strict=True):
                    sums[k][n] += g.square()
        count += len(y)
    return {k: {n: s / count for n, s in per.items()} for k, per in sums.items()}


def loop_batch(model, data, objectives, batch_size):
    """Batch Fisher as the authors do it: a forward and a backward per loss and batch."""
    model = copy.deepcopy(model).eval()
    params = dict(model.named_parameters())
    sums = {k: {n: torch.zeros_like(p) for n, p in params.items()} for k in objectives}
    count = 0
    for x, y, a in data.loader(batch_size):
        for k, objective in objectives.items():
            model.zero_grad()
            objective(logits(model, x), y.double(), a).backward()
            for n, p in params.items():
                sums[k][n] += p.grad.square()
        count += 1
    return {k: {n: s / count for n, s in per.items()} for k, per in sums.items()}


@pytest.mark.parametrize("model_name", list(MODELS))
def test_per_sample_matches_loop(model_name):
    model, data = MODELS[model_name](), make_data()
    result = fisher_diagonal(model, data, MORE_OBJECTIVES, mode="per_sample", batch_size=16)
    assert_same(result, loop_per_sample(model, data, MORE_OBJECTIVES, batch_size=16))


@pytest.mark.parametrize("model_name", list(MODELS))
def test_batch_matches_two_pass_loop(model_name):
    model, data = MODELS[model_name](), make_data()
    result = fisher_diagonal(model, data, MORE_OBJECTIVES, mode="batch", batch_size=16)
    assert_same(result, loop_batch(model, data, MORE_OBJECTIVES, batch_size=16))


def test_per_sample_pred_gradient_is_own_weighted_bce_term():
    model, data = mlp(), make_data(n=24)
    x, y, a = data.inputs, data.labels.double(), data.groups
    grads = per_sample_gradients(model, x, y, a, Objective.pred())
    n, pos, neg = len(y), y.sum() + 1e-10, (1 - y).sum()
    params = dict(model.named_parameters())
    for i in range(n):
        zi = logits(model, x[i : i + 1])[0]
        # Sample i's term of L_pred = (1/n) sum_i t_i, written out without BCE helpers.
        p = torch.sigmoid(zi)
        t_i = (pos / n) * (-(neg / pos) * y[i] * torch.log(p) - (1 - y[i]) * torch.log(1 - p))
        own = torch.autograd.grad(t_i, list(params.values()))
        for name, g in zip(params, own, strict=True):
            torch.testing.assert_close(grads[name][i], g, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("objective", list(MORE_OBJECTIVES))
def test_mean_of_per_sample_gradients_is_batch_gradient(model_name, objective):
    model, data = MODELS[model_name](), make_data(n=20)
    x, y, a = data.inputs, data.labels.double(), data.groups
    loss = MORE_OBJECTIVES[objective]
    per_sample = per_sample_gradients(model, x, y, a, loss)
    model.eval()
    params = dict(model.named_parameters())
    batch = torch.autograd.grad(loss(logits(model, x), y, a), list(params.values()))
    for name, g in zip(params, batch, strict=True):
        assert per_sample[name].shape == (20, *g.shape)
        torch.testing.assert_close(per_sample[name].mean(0), g, rtol=1e-9, atol=1e-12)


def test_modes_agree_on_batches_of_one():
    model, data = mlp(), make_data(n=12)
    one = fisher_diagonal(model, data, MORE_OBJECTIVES, mode="batch", batch_size=1)
    other = fisher_diagonal(model, data, MORE_OBJECTIVES, mode="per_sample", batch_size=1)
    assert_same(one, other)


@pytest.mark.parametrize("mode", FISHER_MODES)
@pytest.mark.parametrize("training", [True, False])
def test_model_unchanged(mode, training):
    model = bn_model().train(training)
    model[2].train(not training)  # submodules in mixed modes come back as they were
    modes = [m.training for m in model.modules()]
    model[0].bias.requires_grad_(False)  # a frozen parameter is still measured
    before = copy.deepcopy(model.state_dict())
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    result = fisher_diagonal(model, make_data(), OBJECTIVES, mode=mode, batch_size=16)
    assert [m.training for m in model.modules()] == modes
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for n, p in model.named_parameters():
        assert p.grad is None and p.requires_grad is flags[n]
    assert result["bias"]["0.bias"].abs().sum() > 0


@pytest.mark.parametrize("mode", FISHER_MODES)
def test_params_subset(mode):
    model, data = mlp(), make_data()
    subset = ["body.0.weight", "head.bias"]
    part = fisher_diagonal(model, data, OBJECTIVES, params=subset, mode=mode, batch_size=16)
    full = fisher_diagonal(model, data, OBJECTIVES, mode=mode, batch_size=16)
    for k in OBJECTIVES:
        assert list(part[k]) == subset
        for n in subset:
            assert part[k][n].shape == dict(model.named_parameters())[n].shape
            torch.testing.assert_close(part[k][n], full[k][n], rtol=1e-6, atol=0)


@pytest.mark.parametrize("mode", FISHER_MODES)
def test_deterministic_float32_and_progress(mode):
    model = MLP(in_features=5, hidden=(4,))  # float32 model and data
    data = make_data(dtype=torch.float32)
    first = fisher_diagonal(model, data, OBJECTIVES, mode=mode, batch_size=16)
    second = fisher_diagonal(model, data, OBJECTIVES, mode=mode, batch_size=16, progress=True)
    for k in OBJECTIVES:
        for n, t in first[k].items():
            assert t.dtype == torch.float32 and torch.equal(t, second[k][n])
            assert torch.isfinite(t).all() and (t >= 0).all()


def test_bad_input_raises():
    model, data = mlp(), make_data()
    with pytest.raises(FairtuneError, match="Fisher mode"):
        fisher_diagonal(model, data, OBJECTIVES, mode="exact")
    with pytest.raises(FairtuneError, match="no parameter"):
        fisher_diagonal(model, data, OBJECTIVES, params=["nope"])
    with pytest.raises(FairtuneError, match="no objectives"):
        fisher_diagonal(model, data, {})
    with pytest.raises(FairtuneError, match="no data"):
        fisher_diagonal(model, data.subset([]), OBJECTIVES)
