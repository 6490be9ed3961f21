"""Training: the masked fine-tuning loop keeps frozen weights, masked entries and
BatchNorm statistics exactly, keeps its learning rate, is seeded, and its head-only
fast path agrees with the full loop."""

import copy
import dataclasses
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from _helpers import masked_entries_held, random_data, snapshot
from torch import nn

from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.finetune.masks import Mask, random_mask
from fairtune.finetune.training import Phase, run_phase
from fairtune.models import MLP, ModelSplit


def bce(z, y, a):
    return F.binary_cross_entropy_with_logits(z, y)


# drawn from the global generator: the tests' later unseeded draws continue from it
make_data = partial(random_data, n=64, seed=0, global_rng=True)


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(5, hidden=(8, 4))


def bn_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Dropout(0.3), nn.Linear(8, 1))


def all_names(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_parameters()]


def phase(**kw) -> Phase:
    settings = {"objective": bce, "epochs": 3, "lr": 0.05, "batch_size": 16}
    return Phase(**{**settings, **kw})


def test_every_phase_field_has_help():
    assert all(f.metadata.get("help") for f in dataclasses.fields(Phase))


def test_untrainable_parameters_end_bit_identical():
    model, data = mlp(), make_data()
    before = snapshot(model)
    trainable = ["body.0.weight", "head.bias"]
    history = run_phase(model, data, phase(trainable=trainable, weight_decay=0.1), seed=0)
    after = snapshot(model)
    for name in before:
        if name in trainable:
            assert not torch.equal(before[name], after[name]), name
        else:
            assert torch.equal(before[name], after[name]), name
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {"phase", "epoch", "loss", "lr", "rows", "seconds"}
    assert [h["rows"] for h in history] == [len(data)] * 3
    assert all(p.requires_grad for p in model.parameters())
    assert model.training


def test_trainable_name_missing_from_the_mask_is_frozen():
    model, data = mlp(), make_data()
    before = snapshot(model)
    mask = Mask({"body.0.weight": torch.ones(8, 5)}, "ones")
    run_phase(model, data, phase(trainable=["body.0.weight", "body.0.bias"], mask=mask))
    after = snapshot(model)
    assert not torch.equal(before["body.0.weight"], after["body.0.weight"])
    assert torch.equal(before["body.0.bias"], after["body.0.bias"])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_masked_entries_end_bit_identical(optimizer, kind):
    model, data = bn_model(), make_data()
    shapes = {n: p.shape for n, p in model.named_parameters()}
    mask = random_mask(shapes, density=0.5, seed=7)
    if kind == "soft":
        mask = Mask({n: v * torch.rand(v.shape) for n, v in mask.values.items()}, "soft")
    before = snapshot(model)
    run_phase(
        model,
        data,
        phase(
            trainable=list(shapes),
            mask=mask,
            optimizer=optimizer,
            momentum=0.9,
            weight_decay=0.1,
            epochs=4,
        ),
    )
    after = snapshot(model)
    moved, unmasked = masked_entries_held(before, after, mask)
    assert moved > 0.9 * unmasked


def test_batchnorm_statistics_frozen_by_default_with_dropout_active():
    model, data = bn_model(), make_data()
    seen: dict[str, set[bool]] = {"bn": set(), "dropout": set()}
    model[1].register_forward_pre_hook(lambda m, _: seen["bn"].add(m.training))
    model[2].register_forward_pre_hook(lambda m, _: seen["dropout"].add(m.training))
    model.eval()
    before = snapshot(model)
    run_phase(model, data, phase(trainable=all_names(model)))
    after = snapshot(model)
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert torch.equal(before[name], after[name]), name
    assert seen == {"bn": {False}, "dropout": {True}}
    assert not model.training and not model[1].training


def test_batchnorm_update_only_where_the_layer_trains():
    data = make_data()
    model = bn_model()
    before = snapshot(model)
    run_phase(model, data, phase(trainable=all_names(model), bn_stats="update"))
    after = snapshot(model)
    assert not torch.equal(before["1.running_mean"], after["1.running_mean"])
    assert after["1.num_batches_tracked"] > before["1.num_batches_tracked"]

    model = bn_model()
    before = snapshot(model)
    run_phase(model, data, phase(trainable=["0.weight", "0.bias", "3.weight"], bn_stats="update"))
    after = snapshot(model)
    for name in ("1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert torch.equal(before[name], after[name]), name


def test_the_rate_stays_the_same():
    model, data = mlp(), make_data()
    history = run_phase(model, data, phase(trainable=all_names(model), epochs=3, lr=0.1))
    assert [h["lr"] for h in history] == [0.1, 0.1, 0.1]


def test_same_seed_same_weights_different_seed_different():
    data = make_data()
    results = []
    for seed in (3, 3, 4):
        model = bn_model()
        run_phase(model, data, phase(trainable=all_names(model), optimizer="adam"), seed=seed)
        results.append(snapshot(model))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    assert not all(torch.equal(results[0][k], results[2][k]) for k in results[0])


def test_global_random_state_untouched():
    model, data = bn_model(), make_data()
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    run_phase(model, data, phase(trainable=all_names(model)), seed=5)
    assert torch.equal(torch.rand(3), expected)


class ScaledOutput(nn.Module):
    """A model that does more after its head, so the head's output is not the logit."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.5), nn.ReLU())
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        return 2.0 * self.head(self.body(x))


@pytest.mark.parametrize("build", [mlp, bn_model, lambda: ScaledOutput()])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_head_only_cached_equals_uncached(build, optimizer):
    data = make_data(n=80)
    torch.manual_seed(0)
    original = build()
    heads, calls = [], []
    for cache in (True, False):
        model = copy.deepcopy(original)
        split = ModelSplit.of(model)
        first = next(m for m in model.modules() if isinstance(m, nn.Linear))
        count = [0]
        first.register_forward_hook(lambda *_, c=count: c.__setitem__(0, c[0] + 1))
        before = snapshot(model)
        settings = phase(
            trainable=split.head_params(), optimizer=optimizer, epochs=3, cache_features=cache
        )
        run_phase(model, data, settings, seed=2, split=split)
        after = snapshot(model)
        head = set(split.head_params())
        assert all(torch.equal(before[k], after[k]) for k in before if k not in head)
        assert not all(torch.equal(before[k], after[k]) for k in head)
        heads.append({k: after[k] for k in head})
        calls.append(count[0])
    for k in heads[0]:
        assert torch.allclose(heads[0][k], heads[1][k], atol=1e-6), k
    if not isinstance(original, ScaledOutput):
        # one pass to cache the features, one to check them; the full loop runs every batch
        assert calls == [1, 3 * 5]  # the cache: one backbone pass in all


def test_nan_loss_names_phase_and_epoch():
    model, data = mlp(), make_data()

    def broken(z, y, a):
        return (z * float("nan")).mean()

    with pytest.raises(FairtuneError, match=r"phase 'impair'.*epoch 1.*learning rate"):
        run_phase(model, data, phase(trainable=all_names(model), objective=broken, name="impair"))
    assert all(p.requires_grad for p in model.parameters())


def test_progress_bar_runs():
    model, data = mlp(), make_data()
    history = run_phase(model, data, phase(trainable=all_names(model), epochs=2), progress=True)
    assert len(history) == 2


def test_bad_settings_fail_clearly():
    with pytest.raises(FairtuneError, match="optimizer"):
        phase(trainable=["head.bias"], optimizer="rmsprop")
    with pytest.raises(FairtuneError, match="bn_stats"):
        phase(trainable=["head.bias"], bn_stats="sometimes")
    with pytest.raises(FairtuneError, match="lr > 0"):
        phase(trainable=["head.bias"], lr=0.0)
    model, data = mlp(), make_data()
    with pytest.raises(FairtuneError, match="does not have"):
        run_phase(model, data, phase(trainable=["nope.weight"]))
    wrong = Mask({"head.bias": torch.ones(3)}, "ones")
    with pytest.raises(FairtuneError, match="another model"):
        run_phase(model, data, phase(trainable=["head.bias"], mask=wrong))
    with pytest.raises(FairtuneError, match="nothing to train"):
        run_phase(model, data, phase(trainable=[]))


def test_float64_model_trains_in_float64_on_cpu():
    torch.manual_seed(0)
    model = MLP(5, hidden=(4,)).double()
    data = FairData(
        torch.randn(32, 5, dtype=torch.float64),
        torch.randint(0, 2, (32,)).float(),
        torch.randint(0, 2, (32,)),
        ["a", "b"],
    )
    seen = set()

    def objective(z, y, a):
        seen.add(z.dtype)
        return F.binary_cross_entropy_with_logits(z, y.to(z.dtype))

    run_phase(model, data, phase(trainable=all_names(model), objective=objective, epochs=1))
    assert seen == {torch.float64}
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_baseline_training_updates_batchnorm_statistics():
    """Ordinary (ERM) training moves BatchNorm statistics; only masked fine-tuning freezes them."""
    from fairtune.erm import TrainConfig, fit_erm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    x = torch.randn(32, 3) * 3 + 2
    data = FairData(x, (x[:, 0] > 2).float(), torch.arange(32) % 2, ["a", "b"])
    fit_erm(model, data, TrainConfig(epochs=2, batch_size=8))
    assert int(model[1].num_batches_tracked) == 2 * 4
    assert not torch.allclose(model[1].running_mean, torch.zeros(4))
