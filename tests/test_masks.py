"""Masks: relative importance, the three builders, statistics, save/load, overlap."""

import numpy as np
import pytest
import torch

from fairtune.errors import FairtuneError
from fairtune.finetune.masks import (
    Mask,
    hard_mask,
    random_mask,
    relative_importance,
    soft_mask,
)


def random_r(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a.weight": torch.rand(4, 3, generator=g),
        "a.bias": torch.rand(4, generator=g),
        "b.weight": torch.rand(1, 4, generator=g) * 3,
    }


def test_relative_importance_by_hand():
    i_bias = {"w": torch.tensor([1.0, 3.0, 5.0]), "c": torch.tensor([2.0, 2.0])}
    i_pred = {"w": torch.tensor([0.0, 2.0, 4.0]), "c": torch.tensor([4.0, 4.0])}
    r = relative_importance(i_bias, i_pred)
    # w: bias -> [0, .5, 1], pred -> [0, .5, 1]; c: both constant, kept raw
    assert torch.allclose(r["w"], torch.tensor([0.0, 1.0, 1.0]), atol=1e-6)
    assert torch.allclose(r["c"], torch.tensor([0.5, 0.5]))


def test_relative_importance_rejects_mismatch():
    with pytest.raises(FairtuneError, match="different parameters"):
        relative_importance({"a": torch.ones(2)}, {"b": torch.ones(2)})
    with pytest.raises(FairtuneError, match="shape"):
        relative_importance({"a": torch.ones(2)}, {"a": torch.ones(3)})


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.75, 1.0])
def test_hard_mask_keeps_the_global_top(keep):
    r = random_r()
    params = list(r)
    mask = hard_mask(r, params, keep=keep)
    flat_r = np.concatenate([r[p].numpy().ravel() for p in params])
    flat_m = np.concatenate([mask.values[p].numpy().ravel() for p in params])
    k = round(keep * flat_r.size)
    top = np.argsort(-flat_r, kind="stable")[:k]
    assert set(np.flatnonzero(flat_m)) == set(top)
    assert mask.density() == pytest.approx(k / flat_r.size)
    assert mask.kind == "hard"
    assert all(mask.values[p].shape == r[p].shape for p in params)
    assert all(mask.values[p].dtype == torch.float32 for p in params)


def test_hard_mask_is_one_percentile_not_per_tensor():
    r = {"low": torch.full((10,), 0.1) + torch.arange(10) * 1e-3, "high": torch.arange(10.0) + 1}
    mask = hard_mask(r, ["low", "high"], keep=0.5)
    assert mask.values["high"].sum() == 10
    assert mask.values["low"].sum() == 0


def test_hard_mask_leaves_out_ties_at_the_threshold():
    r = {"w": torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0])}
    mask = hard_mask(r, ["w"], keep=0.5)
    # threshold is the 4th smallest value, 1.0: every 1.0 is out, density 3/8 < 0.5
    assert mask.values["w"].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert mask.density() <= 0.5


def test_hard_mask_only_names_the_given_params():
    r = random_r()
    mask = hard_mask(r, ["a.weight"], keep=0.5)
    assert set(mask.values) == {"a.weight"}


@pytest.mark.parametrize("keep", [0.0, -0.1, 1.5])
def test_fractions_outside_0_1_fail(keep):
    with pytest.raises(FairtuneError, match=r"\(0, 1\]"):
        hard_mask(random_r(), ["a.bias"], keep=keep)
    with pytest.raises(FairtuneError, match=r"\(0, 1\]"):
        random_mask({"w": torch.Size([3])}, density=keep, seed=0)


def test_builders_reject_missing_or_nonfinite_r():
    with pytest.raises(FairtuneError, match="nope"):
        hard_mask(random_r(), ["nope"])
    with pytest.raises(FairtuneError, match="NaN"):
        soft_mask({"w": torch.tensor([1.0, float("nan")])}, ["w"])


def test_hard_mask_refuses_to_keep_nothing():
    r = {"a": torch.rand(10)}
    with pytest.raises(FairtuneError, match="rounds to none"):
        hard_mask(r, ["a"], keep=0.04)
    assert hard_mask(r, ["a"], keep=0.1).density() == 0.1  # one weight


def test_soft_mask_in_unit_interval_and_monotone():
    r = random_r()
    r["big"] = torch.tensor([0.0, 1e3, 1e10])
    mask = soft_mask(r, list(r))
    assert mask.kind == "soft"
    flat_r = torch.cat([r[p].flatten() for p in r])
    flat_m = torch.cat([mask.values[p].flatten() for p in r])
    assert flat_m.min() >= 0 and flat_m.max() < 1  # [0, 1): a huge R still leaves a bit frozen
    assert mask.values["big"][0] == 0
    order = torch.argsort(flat_r)
    assert (torch.diff(flat_m[order]) >= 0).all()
    assert torch.allclose(mask.values["a.weight"], torch.tanh(r["a.weight"]))


def test_random_mask_exact_density_and_seeded():
    shapes = {"a": torch.Size([7, 3]), "b": torch.Size([5]), "c": torch.Size([2, 2, 2])}
    total = 21 + 5 + 8
    mask = random_mask(shapes, density=0.3, seed=1)
    assert mask.kind == "random"
    assert sum(int(v.sum()) for v in mask.values.values()) == round(0.3 * total)
    assert mask.density() == pytest.approx(round(0.3 * total) / total)
    assert {p: v.shape for p, v in mask.values.items()} == shapes
    same = random_mask(shapes, density=0.3, seed=1)
    other = random_mask(shapes, density=0.3, seed=2)
    assert all(torch.equal(mask.values[p], same.values[p]) for p in shapes)
    assert not all(torch.equal(mask.values[p], other.values[p]) for p in shapes)


def test_mask_stats():
    mask = Mask({"a": torch.ones(2, 3), "b": torch.ones(4)}, "ones")
    assert mask.kind == "ones" and mask.density() == 1.0 and mask.mean() == 1.0
    soft = Mask({"a": torch.tensor([0.0, 0.5]), "b": torch.tensor([1.0, 0.0, 0.0, 0.5])}, "soft")
    assert soft.stats() == [
        {"name": "a", "numel": 2, "density": 0.5, "mean": 0.25},
        {"name": "b", "numel": 4, "density": 0.5, "mean": 0.375},
    ]
    assert soft.density() == pytest.approx(3 / 6)
    assert soft.mean() == pytest.approx(2.0 / 6)


@pytest.mark.parametrize("kind", ["hard", "soft", "random"])
def test_save_load_round_trip(tmp_path, kind):
    r = random_r()
    build = {
        "hard": lambda: hard_mask(r, list(r)),
        "soft": lambda: soft_mask(r, list(r)),
        "random": lambda: random_mask({p: v.shape for p, v in r.items()}, 0.4, seed=3),
    }
    mask = build[kind]()
    path = tmp_path / "sub" / "mask.safetensors"
    mask.save(path)
    back = Mask.load(path)
    assert back.kind == kind
    assert set(back.values) == set(mask.values)
    for p, v in mask.values.items():
        assert back.values[p].dtype == torch.float32
        assert torch.equal(back.values[p], v)
    assert [f.name for f in path.parent.iterdir()] == ["mask.safetensors"]


def test_load_missing_and_corrupt(tmp_path):
    with pytest.raises(FairtuneError, match="does not exist"):
        Mask.load(tmp_path / "nothing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(FairtuneError, match="damaged") as info:
        Mask.load(bad)
    assert "\n" not in str(info.value)


def test_load_refuses_a_file_without_kind(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    with pytest.raises(FairtuneError, match="not a fairtune mask"):
        Mask.load(path)


def test_jaccard():
    a = Mask({"w": torch.tensor([1.0, 1.0, 0.0, 0.0])}, "hard")
    b = Mask({"w": torch.tensor([0.0, 0.0, 1.0, 0.5])}, "hard")
    c = Mask({"w": torch.tensor([1.0, 0.0, 1.0, 0.0])}, "hard")
    assert a.jaccard(a) == 1.0
    assert a.jaccard(b) == 0.0
    assert a.jaccard(c) == pytest.approx(1 / 3)
    d = Mask({"w": torch.tensor([1.0, 1.0, 0.0, 0.0]), "v": torch.ones(2)}, "hard")
    assert a.jaccard(d) == pytest.approx(2 / 4)
    with pytest.raises(FairtuneError, match="shape"):
        a.jaccard(Mask({"w": torch.ones(3)}, "ones"))
