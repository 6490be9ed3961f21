"""Device, precision and augmentation in the training loop.

A GPU cannot be faked on the CPU, so the CUDA recipe (float16 autocast, gradient
scaler, channels_last) is tested here through its parts: the helper that decides
it, and a phase run on the CPU with the same recipe forced (a CPU gradient
scaler, CPU autocast). Tests marked for CUDA run only where a GPU is present.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import CUDA, masked_entries_held, snapshot
from PIL import Image
from torch import nn

from fairtune.augment import Augment
from fairtune.backbones import SmallCNN
from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.finetune.importance import fisher_diagonal
from fairtune.finetune.losses import Objective
from fairtune.finetune.masks import random_mask
from fairtune.finetune.precision import Precision
from fairtune.finetune.training import Phase, run_phase
from fairtune.images import Decoding, ImageSource
from fairtune.models import MLP, ModelSplit, channels_last, model_device, predict_proba

DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
N_IMAGES, SIZE = 16, 8


def bce(z, y, a):
    return F.binary_cross_entropy_with_logits(z, y)


def cnn(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(in_channels=3, width=4, blocks=2)


@pytest.fixture
def image_paths(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N_IMAGES):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8)).save(path)
        paths.append(path)
    return paths


def image_data(paths: list[Path], augment: Augment | None = None) -> FairData:
    labels = torch.tensor([i % 2 for i in range(len(paths))], dtype=torch.float32)
    groups = torch.tensor([(i // 2) % 2 for i in range(len(paths))])
    return FairData(ImageSource(paths, Decoding(SIZE), augment=augment), labels, groups, ["a", "b"])


def count_calls(module: nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


# ---------------------------------------------------------------- helpers


def test_model_device_is_the_first_parameters_device():
    assert model_device(MLP(3)) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")  # no parameters
    assert model_device(nn.Linear(2, 1, device="meta")) == torch.device("meta")


def test_precision_on_cpu_is_float32_in_channels_last():
    precision = Precision.choose(torch.device("cpu"), amp=True)
    assert precision.autocast_dtype is None and precision.scaler is None
    assert precision.channels_last and precision.rng_devices() == []
    x = torch.randn(2, 3, 5, 5)
    moved = precision.inputs(x)
    assert moved.is_contiguous(memory_format=torch.channels_last) and torch.equal(moved, x)
    flat = torch.randn(2, 5)
    assert precision.inputs(flat).is_contiguous()  # only 4-D batches change layout
    model = MLP(4).double()
    z = precision.logits(model, torch.randn(3, 4, dtype=torch.float64))
    assert z.dtype == torch.float64  # no autocast, no cast


def test_precision_on_cuda_decides_amp_and_channels_last():
    """The decision table for CUDA, checked without a GPU (nothing runs on it)."""
    cuda = torch.device("cuda", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "GradScaler is enabled, but CUDA is not available"
        amp = Precision.choose(cuda, amp=True)
    assert amp.autocast_dtype == torch.float16
    assert isinstance(amp.scaler, torch.amp.GradScaler)
    assert amp.channels_last and amp.rng_devices() == [0]
    plain = Precision.choose(cuda, amp=False)
    assert plain.autocast_dtype is None and plain.scaler is None and plain.channels_last


def test_phase_amp_and_workers_fields():
    phase = Phase(objective=bce, trainable=["head.bias"], epochs=1, lr=0.1)
    assert phase.amp is True and phase.num_workers == 0
    with pytest.raises(FairtuneError, match="num_workers"):
        Phase(objective=bce, trainable=["head.bias"], epochs=1, lr=0.1, num_workers=-1)


def test_channels_last_swaps_layout_only_and_restores_it():
    model = cnn()
    conv = model.body[0].weight
    before, param = conv.detach().clone(), conv
    with channels_last(model):
        assert conv.is_contiguous(memory_format=torch.channels_last)
        assert not conv.is_contiguous()
        assert torch.equal(conv, before)
    assert conv.is_contiguous() and torch.equal(conv, before)
    assert next(iter(model.body[0].parameters())) is param  # same Parameter object
    with channels_last(model, enabled=False):
        assert conv.is_contiguous()


class LayoutSpy:
    """Records, per call of a convolution, whether its input and weight were channels_last."""

    def __init__(self, conv: nn.Conv2d) -> None:
        self.seen: list[tuple[bool, bool]] = []
        conv.register_forward_pre_hook(self)

    def __call__(self, conv: nn.Module, args: tuple) -> None:
        fmt = torch.channels_last
        x = args[0]
        if x.dim() == 4:  # vmap hides the batch dimension: skip per-sample calls
            self.seen.append(
                (x.is_contiguous(memory_format=fmt), conv.weight.is_contiguous(memory_format=fmt))
            )


def test_predictions_run_in_channels_last_and_match_the_plain_layout():
    model, x = cnn().eval(), torch.randn(N_IMAGES, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = torch.sigmoid(model(x)).squeeze(1)  # contiguous layout, by hand
    spy = LayoutSpy(model.body[0])
    data = FairData(x, torch.zeros(N_IMAGES), torch.tensor([0, 1] * (N_IMAGES // 2)), ["a", "b"])
    got = predict_proba(model, data, batch_size=5)
    torch.testing.assert_close(got.reshape(-1), expected, rtol=1e-5, atol=1e-6)
    assert spy.seen and all(x_cl and w_cl for x_cl, w_cl in spy.seen)
    assert model.body[0].weight.is_contiguous()  # layout restored


@pytest.mark.parametrize("mode", ["batch", "per_sample"])
def test_fisher_in_channels_last_matches_the_plain_layout(mode):
    """Importance runs in channels_last, equals a plain-layout loop, returns plain tensors."""
    model = cnn()
    x = torch.randn(N_IMAGES, 3, SIZE, SIZE)
    y = torch.tensor([i % 2 for i in range(N_IMAGES)], dtype=torch.float32)
    data = FairData(x, y, torch.tensor([(i // 2) % 2 for i in range(N_IMAGES)]), ["a", "b"])
    spy = LayoutSpy(model.body[0])
    fisher = fisher_diagonal(model, data, {"pred": bce}, mode=mode, batch_size=4)["pred"]
    assert spy.seen and all(x_cl and w_cl for x_cl, w_cl in spy.seen)
    size = 1 if mode == "per_sample" else 4
    rows = [slice(i, i + size) for i in range(0, N_IMAGES, size)]
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    model.eval()  # as fisher_diagonal runs it
    for r in rows:
        loss = bce(model(x[r]).squeeze(1), y[r], None)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        for (n, _), g in zip(model.named_parameters(), grads, strict=True):
            expected[n] += g.square() / len(rows)
    for n, value in fisher.items():
        assert value.is_contiguous(), n
        torch.testing.assert_close(value, expected[n], rtol=1e-4, atol=1e-7)
    assert model.body[0].weight.is_contiguous()


@pytest.mark.parametrize("layout", [True, False])
def test_training_runs_in_the_phases_layout_on_the_cpu(image_paths, layout):
    model, data = cnn(), image_data(image_paths)
    spy = LayoutSpy(model.body[0])
    phase = Phase(
        objective=bce,
        trainable=["body.0.weight"],
        epochs=1,
        lr=0.1,
        batch_size=4,
        channels_last=layout,
    )
    run_phase(model, data, phase, seed=0)
    assert spy.seen == [(layout, layout)] * (N_IMAGES // 4)
    assert model.body[0].weight.is_contiguous()


def test_both_layouts_train_to_the_same_weights(image_paths):
    """The layout changes how convolutions are computed, not what the phase learns."""
    weights = []
    for layout in (True, False):
        model = cnn()
        phase = Phase(
            objective=bce,
            trainable=[n for n, _ in model.named_parameters()],
            epochs=2,
            lr=0.05,
            batch_size=4,
            channels_last=layout,
        )
        run_phase(model, image_data(image_paths), phase, seed=0)
        weights.append(snapshot(model))
    for k in weights[0]:
        torch.testing.assert_close(weights[0][k], weights[1][k], rtol=1e-4, atol=1e-5)


def test_scaler_skips_an_overflowing_step_whole():
    model = cnn().eval()  # BatchNorm statistics stay put
    before = snapshot(model)
    precision = Precision(torch.device("cpu"), scaler=torch.amp.GradScaler("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    adjusted = []
    x = torch.randn(4, 3, SIZE, SIZE)
    loss = model(x).sum() * 1e35  # finite, but its scaled gradients overflow
    assert torch.isfinite(loss)
    precision.step(loss, optimizer, lambda: adjusted.append(True))
    after = snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert optimizer.state_dict()["state"] == {}  # no momentum buffer either
    assert adjusted == [True]
    assert precision.scaler.get_scale() < 65536.0  # lowered for the next batch


def test_scaler_adjusts_true_gradients():
    """With a scaler, the mask and weight decay see unscaled gradients."""
    model = nn.Linear(3, 1)
    x = torch.randn(8, 3)
    expected = torch.autograd.grad(model(x).sum(), model.weight)[0]
    precision = Precision(torch.device("cpu"), scaler=torch.amp.GradScaler("cpu"))
    seen = []
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    precision.step(model(x).sum(), optimizer, lambda: seen.append(model.weight.grad.clone()))
    torch.testing.assert_close(seen[0], expected)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cuda_recipe_on_cpu_keeps_masked_entries(monkeypatch, image_paths, optimizer):
    """Scaler + autocast + channels_last, forced on the CPU: mask 0 stays bit-identical."""
    recipe = Precision(
        torch.device("cpu"),
        autocast_dtype=torch.bfloat16,
        scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10),
        channels_last=True,
    )
    monkeypatch.setattr(
        Precision, "choose", classmethod(lambda cls, device, amp, channels_last: recipe)
    )
    scaler_steps = []
    scaler_step = recipe.scaler.step
    monkeypatch.setattr(recipe.scaler, "step", lambda opt: scaler_steps.append(scaler_step(opt)))
    model, data = cnn(), image_data(image_paths)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    mask = random_mask(shapes, density=0.5, seed=3)
    before = snapshot(model)
    phase = Phase(
        objective=bce,
        trainable=list(shapes),
        mask=mask,
        epochs=3,
        lr=0.05,
        batch_size=4,
        optimizer=optimizer,
        weight_decay=0.1,
    )
    run_phase(model, data, phase, seed=1)
    after = snapshot(model)
    moved, unmasked = masked_entries_held(before, after, mask)
    assert moved > 0.5 * unmasked
    for k in ("body.1.running_mean", "body.1.running_var", "body.1.num_batches_tracked"):
        assert torch.equal(before[k], after[k]), k  # bn_stats frozen
    assert model.body[0].weight.is_contiguous()  # layout restored
    assert len(scaler_steps) == 3 * (N_IMAGES // 4)  # every step went through the scaler


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["batch", "per_sample"])
def test_fisher_and_predictions_on_the_models_device(device, mode):
    torch.manual_seed(0)
    model = MLP(5, hidden=(4,)).to(device)
    data = FairData(
        torch.randn(12, 5), torch.tensor([0.0, 1.0] * 6), torch.tensor([0, 0, 1, 1] * 3), ["a", "b"]
    )
    fisher = fisher_diagonal(model, data, {"pred": Objective.pred()}, mode=mode, batch_size=4)
    assert all(t.device == model_device(model) for t in fisher["pred"].values())
    scores = predict_proba(model, data, batch_size=5)
    assert scores.device == torch.device("cpu") and scores.shape == (12,)
    features, _ = ModelSplit.of(model).features_and_output(data.inputs)
    assert features.device == model_device(model)


# ---------------------------------------------------------------- augmentation


@pytest.mark.parametrize("augmented", [True, False])
def test_head_only_cache_only_without_augmentation(monkeypatch, image_paths, augmented):
    augment = Augment(seed=1) if augmented else None
    data = image_data(image_paths, augment)
    epochs_seen: list[int] = []
    original = data.inputs.set_epoch

    def spy(epoch: int) -> None:
        epochs_seen.append(epoch)
        original(epoch)

    monkeypatch.setattr(data.inputs, "set_epoch", spy)
    model = cnn()
    split = ModelSplit.of(model)
    backbone_calls = count_calls(model.body)
    phase = Phase(objective=bce, trainable=split.head_params(), epochs=3, lr=0.05, batch_size=4)
    run_phase(model, data, phase, seed=0, split=split)
    if augmented:
        assert epochs_seen == [1, 2, 3]
        assert augment.epoch == 3
        assert backbone_calls[0] == 3 * (N_IMAGES // 4)  # every batch, no cache
    else:
        # one pass caches (and checks) the features; then the head alone
        assert backbone_calls[0] == 1


def test_set_epoch_called_each_epoch_in_a_full_phase(monkeypatch, image_paths):
    data = image_data(image_paths, Augment(seed=2))
    calls: list[int] = []
    monkeypatch.setattr(data.inputs, "set_epoch", calls.append)
    model = cnn()
    names = [n for n, _ in model.named_parameters()]
    run_phase(model, data, Phase(objective=bce, trainable=names, epochs=4, lr=0.01, batch_size=8))
    assert calls == [1, 2, 3, 4]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cached_equals_uncached_head_on_small_cnn(image_paths, optimizer):
    data = image_data(image_paths)
    original = cnn(seed=4)
    with torch.no_grad():  # BatchNorm statistics away from their initial values
        original(torch.randn(8, 3, SIZE, SIZE) * 2 + 1)
    heads, calls = [], []
    for cache in (True, False):
        model = copy.deepcopy(original)
        split = ModelSplit.of(model)
        backbone_calls = count_calls(model.body)
        before = snapshot(model)
        phase = Phase(
            objective=bce,
            trainable=split.head_params(),
            epochs=3,
            lr=0.1,
            batch_size=4,
            optimizer=optimizer,
            cache_features=cache,
        )
        run_phase(model, data, phase, seed=2, split=split)
        after = snapshot(model)
        head = set(split.head_params())
        assert all(torch.equal(before[k], after[k]) for k in before if k not in head)
        assert not all(torch.equal(before[k], after[k]) for k in head)
        heads.append({k: after[k] for k in head})
        calls.append(backbone_calls[0])
    assert calls == [1, 3 * (N_IMAGES // 4)]  # the cache: one backbone pass in all
    for k in heads[0]:
        torch.testing.assert_close(heads[0][k], heads[1][k], rtol=0, atol=1e-6)


def _train_augmented(data: FairData, seed: int = 0, num_workers: int = 0) -> dict:
    model = cnn()
    names = [n for n, _ in model.named_parameters()]
    phase = Phase(
        objective=bce,
        trainable=names,
        epochs=3,
        lr=0.05,
        batch_size=4,
        bn_stats="update",
        num_workers=num_workers,
    )
    run_phase(model, data, phase, seed=seed)
    return snapshot(model)


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_seeded_augmented_training_is_bit_identical(image_paths):
    augment = Augment(seed=5)
    data = image_data(image_paths, augment)
    first = _train_augmented(data)
    augment.set_epoch(7)  # left anywhere: the loop sets every epoch itself
    assert same(first, _train_augmented(data))
    assert same(first, _train_augmented(image_data(image_paths, Augment(seed=5))))
    assert not same(first, _train_augmented(image_data(image_paths, Augment(seed=6))))
    assert not same(first, _train_augmented(image_data(image_paths)))  # augmentation acts


def test_augmented_training_same_with_worker_processes(image_paths):
    """set_epoch happens before each epoch's iterator, so workers see the new epoch."""
    alone = _train_augmented(image_data(image_paths, Augment(seed=5)))
    workers = _train_augmented(image_data(image_paths, Augment(seed=5)), num_workers=2)
    assert same(alone, workers)


# ---------------------------------------------------------------- CUDA only


@CUDA
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cuda_amp_keeps_masked_entries_and_frozen_parts(image_paths, optimizer):
    model, data = cnn().cuda(), image_data(image_paths)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    backbone = [n for n in shapes if not n.startswith("head.")]
    mask = random_mask({n: shapes[n] for n in backbone}, density=0.5, seed=3)
    before = snapshot(model)
    phase = Phase(
        objective=bce,
        trainable=backbone,
        mask=mask,
        epochs=4,
        lr=0.05,
        batch_size=4,
        optimizer=optimizer,
        weight_decay=0.1,
        amp=True,
    )
    run_phase(model, data, phase, seed=1)
    after = snapshot(model)
    moved, _ = masked_entries_held(before, after, mask)
    assert moved > 0
    for k in before:
        if k.startswith("head.") or "running" in k or "num_batches" in k:
            assert torch.equal(before[k], after[k]), k
    assert model.body[0].weight.is_contiguous()
    assert model_device(model).type == "cuda"


@CUDA
def test_cuda_overflowing_step_changes_nothing():
    model = cnn().cuda().eval()
    before = snapshot(model)
    precision = Precision.choose(model_device(model), amp=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = precision.inputs(torch.randn(4, 3, SIZE, SIZE))
    loss = precision.logits(model, x).sum() * 1e35
    precision.step(loss, optimizer, lambda: None)
    after = snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert optimizer.state_dict()["state"] == {}
