"""Methods: every registered method runs, is seeded, leaves its input alone and saves;
each keeps the promises of METHODS.md (masks that really hold, frozen parts frozen,
the head resets, SWiFT's group choice, FairPrune's zeros, bias_gd's floor)."""

import copy
import json
from dataclasses import asdict, fields

import numpy as np
import pytest
import torch
from _helpers import FAST, biased_data, masked_entries_held, snapshot
from sklearn.metrics import roc_auc_score
from torch import nn

from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.evaluation.evaluate import evaluate_model
from fairtune.finetune.losses import Objective
from fairtune.finetune.masks import Mask
from fairtune.finetune.training import Phase, run_phase
from fairtune.io import MARKER
from fairtune.methods import REGISTRY, DebiasResult, get_method, register
from fairtune.modelio import ModelConfig, load_model
from fairtune.models import MLP, ModelSplit, predict_proba

BN_BUFFERS = ("1.running_mean", "1.running_var", "1.num_batches_tracked")


pytestmark = pytest.mark.usefixtures("one_thread")


def pretrain(model: nn.Module, data: FairData, epochs: int = 30) -> nn.Module:
    names = [n for n, _ in model.named_parameters()]
    phase = Phase(
        objective=Objective.pred(kind="bce"),
        trainable=names,
        epochs=epochs,
        lr=1e-2,
        optimizer="adam",
        weight_decay=0.0,
        bn_stats="update",
    )
    run_phase(model, data, phase, seed=0)
    return model


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def external() -> FairData:
    return biased_data(300, seed=0)


@pytest.fixture(scope="module")
def start_model() -> nn.Module:
    """A tiny MLP trained on data with few positives in group 1: biased against it."""
    torch.manual_seed(0)
    return pretrain(MLP(6, (8,)), biased_data(1000, seed=1, skew=0.1))


@pytest.fixture(scope="module")
def bn_model() -> nn.Module:
    """Linear, BatchNorm1d, ReLU, Linear: the head is the last Linear, '3'."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    return pretrain(model, biased_data(1000, seed=1, skew=0.1), epochs=5)


def eodds(model: nn.Module, data: FairData) -> float:
    return evaluate_model(model, data).metrics.eodds_mean


# ------------------------------------------------------------------ every method


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_runs_is_seeded_keeps_its_input_and_saves(
    name, start_model, external, tmp_path
):
    before = snapshot(start_model)
    overrides = FAST.get(name, {})
    result = get_method(name, **overrides).fit(start_model, external)

    assert isinstance(result, DebiasResult)
    assert result.method == name
    assert isinstance(result.config, dict)
    assert result.config == asdict(REGISTRY[name].config_class(**overrides))
    assert all(result.config[k] == v for k, v in overrides.items())
    assert isinstance(result.history, list) and result.history
    assert all(isinstance(h, dict) for h in result.history)
    assert result.wall_time_s > 0
    assert all(torch.isfinite(v.float()).all() for v in result.model.state_dict().values())
    scores = predict_proba(result.model, external)
    assert scores.shape == (len(external),)
    assert torch.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()

    # the model it was given is untouched
    assert result.model is not start_model
    assert_same_state(snapshot(start_model), before)

    # same seed, same bits
    again = get_method(name, **overrides).fit(start_model, external)
    assert_same_state(result.model.state_dict(), again.model.state_dict())
    assert (result.mask is None) == (again.mask is None)
    if result.mask is not None:
        assert result.mask.values.keys() == again.mask.values.keys()
        assert all(torch.equal(v, again.mask.values[k]) for k, v in result.mask.values.items())

    # saved, and loaded back alike
    config = ModelConfig(
        arch={"name": "mlp", "in_features": 6, "hidden": [8]},
        label="y",
        sensitive=["a"],
        group_names=list(external.group_names),
    )
    out = result.save(tmp_path / "debiased", config)
    expected = {"config.json", "model.safetensors", "debias.json", MARKER}
    if result.mask is not None:
        expected.add("mask.safetensors")
    assert {p.name for p in out.iterdir()} == expected
    loaded, _ = load_model(out)
    assert_same_state(loaded.state_dict(), result.model.state_dict())
    assert torch.equal(predict_proba(loaded, external), scores)
    meta = json.loads((out / "debias.json").read_text())
    assert meta["method"] == name
    assert meta["config"] == result.config
    assert len(meta["history"]) == len(result.history)
    if result.mask is None:
        assert meta["mask"] is None
    else:
        mask = Mask.load(out / "mask.safetensors")
        assert mask.kind == result.mask.kind
        assert mask.values.keys() == result.mask.values.keys()
        assert all(torch.equal(v, result.mask.values[k]) for k, v in mask.values.items())
        assert meta["mask"]["density"] == pytest.approx(result.mask.density())


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_unknown_setting_is_refused(name):
    with pytest.raises(FairtuneError, match="no_such_setting"):
        get_method(name, no_such_setting=1)


def test_unknown_method_is_refused():
    with pytest.raises(FairtuneError, match="unknown method"):
        get_method("no_such_method")


@pytest.mark.parametrize(
    ("name", "key", "value", "words"),
    [
        ("bmft", "impair_lr", 0.0, "> 0"),
        ("bmft", "keep", 1.5, r"in \(0, 1\]"),
        ("swift", "beta", -0.1, r"in \[0, 1\]"),
        ("fullft", "batch_size", 0, ">= 1"),
        ("llft", "epochs", -1, ">= 0"),
        ("bias_gd", "max_drop", 2.0, r"in \[0, 1\]"),
        ("fairprune", "step", 0.0, r"in \(0, 1\]"),
        ("random_mask", "seed", -1, ">= 0"),
        ("swift", "step1_optimizer", "rmsprop", "one of sgd, adam"),
    ],
)
def test_out_of_range_setting_is_refused_in_one_line(name, key, value, words):
    with pytest.raises(FairtuneError, match=f"{name} setting '{key}' must be {words}") as caught:
        get_method(name, **{key: value})
    assert "\n" not in str(caught.value)


def test_every_method_default_is_within_its_declared_range():
    for name, cls in REGISTRY.items():
        get_method(name)  # the constructor checks every setting
        assert all("help" in f.metadata for f in fields(cls.config_class)), name


def test_a_second_method_of_a_registered_name_is_refused():
    class Impostor(REGISTRY["bmft"]):
        name = "bmft"

    with pytest.raises(FairtuneError, match="'bmft' is already registered"):
        register(Impostor)
    assert REGISTRY["bmft"].__name__ == "BMFT"


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("names", [["g0", "g1"], ["only"]])
def test_a_single_group_is_refused(name, names, start_model):
    data = biased_data(100)
    one = FairData(data.inputs, data.labels, torch.zeros(len(data), dtype=torch.long), names)
    with pytest.raises(FairtuneError, match="only one group"):
        get_method(name, **FAST.get(name, {})).fit(start_model, one)


# ------------------------------------------------------------------ BMFT and its ablation


@pytest.mark.parametrize("name", ["bmft", "random_mask"])
def test_masked_backbone_weights_and_batchnorm_statistics_end_bit_identical(
    name, bn_model, external
):
    start = snapshot(bn_model)
    assert not torch.equal(start["1.running_mean"], torch.zeros(8))  # trained statistics
    result = get_method(name, impair_epochs=3, impair_lr=0.05, repair_epochs=2).fit(
        bn_model, external
    )
    split = ModelSplit.of(bn_model)
    assert split.head == "3"
    assert set(result.mask.values) == set(split.backbone_params())
    assert set(split.backbone_params()) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    end = result.model.state_dict()
    for m in result.mask.values.values():
        assert set(m.unique().tolist()) <= {0.0, 1.0}
    moved, kept = masked_entries_held(start, end, result.mask)
    assert 0 < kept < sum(m.numel() for m in result.mask.values.values())
    assert moved >= 0.9 * kept  # the impair step really ran on the kept weights
    for buffer in BN_BUFFERS:
        assert torch.equal(end[buffer], start[buffer]), buffer


@pytest.mark.parametrize("keep", [0.25, 0.5])
def test_bmft_mask_is_the_top_keep_share_of_relative_importance(keep, start_model, external):
    method = get_method("bmft", keep=keep, impair_epochs=1, repair_epochs=1)
    result = method.fit(start_model, external)
    split = ModelSplit.of(copy.deepcopy(start_model))
    backbone = split.backbone_params()
    assert list(result.mask.values) == backbone  # head excluded
    r = method.relative_importance(split, external)
    flat_r = torch.cat([r[p].flatten() for p in backbone])
    flat_m = torch.cat([result.mask.values[p].flatten() for p in backbone])
    n, n_kept = flat_r.numel(), int(flat_m.sum())
    # every kept weight ranks above every dropped one
    assert flat_r[flat_m == 1].min() > flat_r[flat_m == 0].max()
    # density is keep, less only the entries tied at the threshold
    ties = int((flat_r == flat_r[flat_m == 0].max()).sum())
    assert round(keep * n) - ties < n_kept <= round(keep * n)
    if ties == 1:
        assert n_kept == round(keep * n)
    assert result.mask.density() == pytest.approx(n_kept / n)
    assert result.info["mask_density"] == pytest.approx(n_kept / n)


def test_bmft_repair_starts_from_a_zero_head_on_the_frozen_backbone(start_model, external):
    settings = {"impair_epochs": 2, "impair_lr": 0.05}
    no_repair = get_method("bmft", repair_epochs=0, **settings).fit(start_model, external)
    split = ModelSplit.of(no_repair.model)
    head = dict(no_repair.model.named_parameters())
    for p in split.head_params():
        assert torch.count_nonzero(head[p]) == 0, p
    assert any(torch.count_nonzero(start_model.state_dict()[p]) for p in split.head_params())

    repaired = get_method("bmft", repair_epochs=3, **settings).fit(start_model, external)
    a, b = no_repair.model.state_dict(), repaired.model.state_dict()
    for p in split.backbone_params():
        assert torch.equal(a[p], b[p]), p  # the repair step leaves the backbone alone
    assert any(not torch.equal(a[p], b[p]) for p in split.head_params())


def test_random_mask_has_density_keep_and_is_not_bmfts_mask(start_model, external):
    settings = {"keep": 0.25, "impair_epochs": 1, "repair_epochs": 0}
    rand = get_method("random_mask", **settings).fit(start_model, external)
    bmft = get_method("bmft", **settings).fit(start_model, external)
    backbone = ModelSplit.of(start_model).backbone_params()
    assert list(rand.mask.values) == backbone
    values = torch.cat([v.flatten() for v in rand.mask.values.values()])
    assert set(values.unique().tolist()) == {0.0, 1.0}
    assert int(values.sum()) == round(0.25 * values.numel())
    assert rand.mask.kind == "random" and bmft.mask.kind == "hard"
    assert rand.mask.jaccard(bmft.mask) < 1.0
    other_seed = get_method("random_mask", seed=1, **settings).fit(start_model, external)
    assert other_seed.mask.jaccard(rand.mask) < 1.0


# ------------------------------------------------------------------ SWiFT


def test_swift_mask_is_tanh_of_relative_importance_over_every_parameter(start_model, external):
    method = get_method("swift", step1_epochs=1, step2_epochs=1)
    result = method.fit(start_model, external)
    names = [n for n, _ in start_model.named_parameters()]
    assert list(result.mask.values) == names  # head included
    assert result.mask.kind == "soft"
    # R on the balanced external set, as SWiFT computes it
    r = method.relative_importance(
        ModelSplit.of(copy.deepcopy(start_model)), method.balanced(external)
    )
    for name, v in result.mask.values.items():
        assert v.shape == dict(start_model.named_parameters())[name].shape
        assert ((v >= 0) & (v <= 1)).all(), name
        assert torch.equal(v, torch.tanh(r[name].float()).clamp(max=1 - 2**-24)), name
    values = torch.cat([v.flatten() for v in result.mask.values.values()])
    assert (values > 0).any() and len(values.unique()) > 2  # soft, not a 0/1 mask


def test_swift_mask_stays_below_one(start_model, external):
    result = get_method("swift", step1_epochs=1, step2_epochs=1).fit(start_model, external)
    for name, v in result.mask.values.items():
        assert (v < 1).all(), name


def test_swift_step1_moves_the_backbone_only_then_resets_the_head_partially(start_model, external):
    start = snapshot(start_model)
    result = get_method("swift", step1_epochs=3, step1_lr=1e-2, step2_epochs=0).fit(
        start_model, external
    )
    split = ModelSplit.of(start_model)
    end, mask = result.model.state_dict(), result.mask.values
    zeroed = 0
    for p in split.head_params():
        above = mask[p] > mask[p].mean()
        expected = start[p].clone()
        expected[above] = 0.0
        assert torch.equal(end[p], expected), p
        zeroed += int(above.sum())
    assert zeroed > 0
    assert result.info["head_weights_reset"] == zeroed
    moved = 0
    for p in split.backbone_params():
        zero = mask[p] == 0
        assert torch.equal(end[p][zero], start[p][zero]), p  # a 0 multiplier holds exactly
        moved += int((end[p] != start[p]).sum())
    assert moved > 0


def test_swift_keeps_the_best_and_worst_auc_groups(external):
    noise = (3.0, 0.1, 1.0)  # g1 easiest, g0 hardest: not the index order
    torch.manual_seed(0)
    model = pretrain(MLP(6, (8,)), biased_data(1000, seed=1, noise=noise), epochs=10)
    data = biased_data(600, seed=2, noise=noise)
    model.eval()
    with torch.no_grad():
        scores = torch.sigmoid(model(data.inputs)).squeeze(1).numpy()
    y, a = data.labels.numpy(), data.groups.numpy()
    auc = [roc_auc_score(y[a == g], scores[a == g]) for g in range(3)]
    order = np.argsort(auc)
    assert auc[order[-1]] - auc[order[1]] > 0.02 and auc[order[1]] - auc[order[0]] > 0.02
    with pytest.warns(UserWarning, match="works on two groups: of the 3 groups") as said:
        result = get_method("swift", step1_epochs=1, step2_epochs=1).fit(model, data)
    assert result.info["groups"] == [f"g{order[-1]}", f"g{order[0]}"]
    assert len([w for w in said if "two groups" in str(w.message)]) == 1


# ------------------------------------------------------------------ baselines


def test_llft_leaves_the_backbone_and_its_batchnorm_bit_identical(bn_model, external):
    start = snapshot(bn_model)
    result = get_method("llft", epochs=3).fit(bn_model, external)
    split = ModelSplit.of(bn_model)
    end = result.model.state_dict()
    for p in (*split.backbone_params(), *BN_BUFFERS):
        assert torch.equal(end[p], start[p]), p
    for p in split.head_params():
        assert not torch.equal(end[p], start[p]), p


@pytest.mark.parametrize("bn_stats", ["frozen", "update"])
def test_fullft_moves_every_weight(bn_stats, bn_model, external):
    start = snapshot(bn_model)
    result = get_method("fullft", epochs=2, lr=1e-2, bn_stats=bn_stats).fit(bn_model, external)
    end = result.model.state_dict()
    for p, _ in bn_model.named_parameters():
        assert not torch.equal(end[p], start[p]), p
    stats_same = all(torch.equal(end[b], start[b]) for b in BN_BUFFERS)
    assert stats_same == (bn_stats == "frozen")


def test_fairprune_zeros_exactly_the_masked_weights_and_lowers_eodds(start_model, external):
    start = snapshot(start_model)
    config = get_method("fairprune").config
    result = get_method("fairprune").fit(start_model, external)
    assert result.info["rounds_kept"] >= 1  # it did prune, so the checks below bite
    weights = [n for n, p in start_model.named_parameters() if p.dim() >= 2]
    assert list(result.mask.values) == weights
    end = result.model.state_dict()
    pruned = 0
    for p, m in result.mask.values.items():
        assert set(m.unique().tolist()) <= {0.0, 1.0}
        assert (end[p][m == 0] == 0).all(), p
        assert torch.equal(end[p][m == 1], start[p][m == 1]), p
        pruned += int((m == 0).sum())
    assert pruned > 0
    assert result.info["pruned"] == pruned and not result.info["pruned_nothing"]
    for p, _ in start_model.named_parameters():
        if p not in result.mask.values:
            assert torch.equal(end[p], start[p]), p
    before, after = (
        evaluate_model(start_model, external).metrics,
        evaluate_model(result.model, external).metrics,
    )
    assert after.eodds_mean < before.eodds_mean
    assert after.balanced_accuracy >= before.balanced_accuracy - config.max_drop


@pytest.mark.parametrize("lr", [1e-2, 1e-1])
def test_bias_gd_keeps_balanced_accuracy_above_its_floor(lr, start_model, external):
    max_drop = 0.02
    start = evaluate_model(start_model, external).metrics
    result = get_method("bias_gd", lr=lr, epochs=5, max_drop=max_drop).fit(start_model, external)
    after = evaluate_model(result.model, external).metrics
    assert after.balanced_accuracy >= start.balanced_accuracy - max_drop
    assert result.info["floor"] == pytest.approx(start.balanced_accuracy - max_drop)
    if lr == 1e-1:  # too fast: the floor stops it after the first epoch, on the start model
        assert result.info["stopped_at_epoch"] == 1
        assert_same_state(result.model.state_dict(), start_model.state_dict())
    else:  # gentle: runs all epochs and lowers the bias
        assert result.info["stopped_at_epoch"] is None
        assert len(result.history) == 5
        assert after.eodds_mean < 0.5 * start.eodds_mean


def test_python_debias_refuses_an_external_set_of_one_class():
    import fairtune

    data = biased_data(40, seed=0)
    one_class = FairData(data.inputs, torch.zeros(len(data)), data.groups, data.group_names)
    model = MLP(data.inputs.shape[1], (4,))
    with pytest.raises(FairtuneError, match="external labels are all one class"):
        fairtune.debias(model, one_class, method="llft")
