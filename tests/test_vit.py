"""The small vision transformer: masks reach its attention and MLP weights; every method
runs on it; the studies run on it."""

from __future__ import annotations

import pytest
import torch

from fairtune.architectures import build_model
from fairtune.backbones import SmallViT
from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.methods import REGISTRY, get_method
from fairtune.selection.comparison import CompareSettings, compare
from fairtune.studies import StudySettings, run_study

TINY = {"name": "vit", "in_channels": 3, "patch": 4, "dim": 16, "depth": 2, "heads": 2}
SHORT = {
    "bmft": {"impair_epochs": 1, "repair_epochs": 1},
    "random_mask": {"impair_epochs": 1, "repair_epochs": 1},
    "swift": {"step1_epochs": 1, "step2_epochs": 1},
    "fairprune": {"max_rounds": 1},
}


def _images(n: int, seed: int) -> FairData:
    """Tiny 8x8 images whose label follows the mean of the red channel and the group."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    groups = torch.randint(0, 2, (n,), generator=g)
    x[:, 1] += groups[:, None, None].float()  # the group is visible in the green channel
    labels = (x[:, 0].mean(dim=(1, 2)) + 0.1 * groups > 0.05).float()
    return FairData(x, labels, groups, ["a", "b"])


@pytest.fixture(scope="module")
def vit(one_thread):
    torch.manual_seed(0)
    return build_model(TINY)


def test_vit_has_no_batchnorm_and_a_linear_head(vit):
    assert isinstance(vit, SmallViT)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in vit.modules())
    assert any(isinstance(m, torch.nn.LayerNorm) for m in vit.modules())
    assert vit(torch.zeros(2, 3, 12, 12)).shape == (2, 1)  # any size
    cls = build_model({**TINY, "pool": "cls"})
    assert cls(torch.zeros(2, 3, 8, 8)).shape == (2, 1) and cls.cls_token is not None
    with pytest.raises(FairtuneError, match="vit needs"):
        SmallViT(dim=10, heads=4)


@pytest.mark.parametrize("method", ["bmft", "swift"])
def test_masks_cover_attention_and_mlp_weights(vit, method):
    result = get_method(method, batch_size=16, **SHORT[method]).fit(vit, _images(64, 1))
    names = set(result.mask.values)
    for layer in range(2):
        prefix = f"encoder.layers.{layer}."
        for part in ("self_attn.in_proj_weight", "self_attn.out_proj.weight"):
            assert prefix + part in names
        assert prefix + "linear1.weight" in names and prefix + "linear2.weight" in names
    attention = result.mask.values["encoder.layers.0.self_attn.in_proj_weight"]
    assert 0 < float((attention != 0).float().mean()) <= 1  # some, not none, of it is updated
    if method == "bmft":
        assert not any(n.startswith("head.") for n in names)  # BMFT masks the backbone only
    else:
        assert "head.weight" in names


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_method_runs_on_the_vit(vit, method):
    start = {k: v.clone() for k, v in vit.state_dict().items()}
    result = get_method(method, batch_size=16, **SHORT.get(method, {"epochs": 1})).fit(
        vit, _images(64, 1)
    )
    assert all(torch.equal(start[k], v) for k, v in vit.state_dict().items())
    out = result.model(_images(4, 2).inputs)
    assert out.shape == (4, 1) and torch.isfinite(out).all()


def test_a_study_runs_on_the_vit(vit):
    overrides = {m: SHORT[m] for m in ("bmft", "random_mask")}
    settings = StudySettings(seeds=[0], keeps=[0.5], overrides=overrides)
    study = run_study("keep", vit, _images(80, 3), _images(48, 4), settings)
    assert [(r["series"], r["failed"]) for r in study.records[1:]] == [
        ("bmft", None),
        ("random_mask", None),
    ]


def test_compare_runs_on_the_vit_with_two_test_sets(vit):
    """compare on the ViT, measured on an in- and an out-of-distribution set (brighter
    images): every row is measured on each, and the fit is shared by both."""
    shifted = _images(48, 6)
    shifted.inputs[:, 0] += 0.5
    short = {"bmft": {**SHORT["bmft"], "batch_size": 16}, "llft": {"epochs": 1, "batch_size": 16}}
    settings = CompareSettings(methods=["bmft", "llft"], n_boot=0, overrides=short)
    rows = compare(vit, _images(80, 3), {"in": _images(48, 4), "out": shifted}, settings)
    methods = ["baseline", "bmft", "llft", "threshold_optimizer", "selected"]
    expected = [(t, m) for t in ("in", "out") for m in methods]
    assert [(r.test_set, r.method) for r in rows] == expected
    by = {(r.test_set, r.method): r for r in rows}
    for method in ("bmft", "llft"):
        assert by["in", method].config == by["out", method].config  # one fit, two measures
        assert not by["in", method].failed
        assert by["in", method].metrics.auc != by["out", method].metrics.auc
