"""Backbone features computed once per backbone state and data, shared by the head-only
phases of the settings a search tries, with the same results as without sharing."""

from __future__ import annotations

import copy

import pytest
import torch
from _helpers import biased_data, calls_counted

import fairtune.finetune.training as training
from fairtune.data import FairData, holdout_split
from fairtune.finetune.feature_cache import FeatureCache, data_key
from fairtune.finetune.precision import Precision
from fairtune.images import Decoding, ImageSource
from fairtune.models import MLP, ModelSplit
from fairtune.selection.comparison import CompareSettings
from fairtune.selection.search import Candidate, SearchContext, search

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = {
    "methods": ["llft", "bmft"],
    "grid": True,
    "grids": {
        "llft": {"lr": [1e-3, 1e-2], "beta": [0.1, 0.5]},
        "bmft": {"impair_lr": [1e-3], "keep": [0.25, 0.5]},
    },
    "overrides": {"llft": {"epochs": 2}, "bmft": {"impair_epochs": 1, "repair_epochs": 1}},
    "n_boot": 0,
}


def run(features: FeatureCache | None, monkeypatch) -> tuple[dict[str, list[Candidate]], int]:
    """Every grid point of LLFT and BMFT on one seed, and how many feature passes ran."""
    passes = calls_counted(monkeypatch, training, "_head_inputs")
    torch.manual_seed(0)
    model = MLP(6, (8,))
    fit, held = holdout_split(biased_data(240, seed=1), 0.3, seed=0)
    settings = CompareSettings(**SETTINGS)
    context = SearchContext(model, fit, held, settings, 0, 0.5, None, False, {}, features)
    found = {m: search(m, context, 0.5).candidates for m in settings.methods}
    return found, len(passes)


def test_features_are_computed_once_per_backbone_state_with_the_same_results(monkeypatch):
    shared, shared_passes = run(FeatureCache(), monkeypatch)
    alone, alone_passes = run(None, monkeypatch)
    assert {m: len(c) for m, c in alone.items()} == {"llft": 4, "bmft": 2}
    assert alone_passes == 4 + 2  # every head-only phase: LLFT's, BMFT's repair
    # LLFT's points train a head on the starting model's backbone; BMFT's repairs each
    # follow their own impairment, so each needs its own features
    assert shared_passes == 1 + 2
    for method, candidates in alone.items():
        for a, s in zip(candidates, shared[method], strict=True):
            assert a.point == s.point
            assert torch.equal(a.scores, s.scores)
            for name, value in a.result.model.state_dict().items():
                assert torch.equal(value, s.result.model.state_dict()[name]), name


def test_the_key_follows_the_backbone_and_the_rows_not_the_head():
    torch.manual_seed(0)
    split = ModelSplit.of(
        torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)),
        "2",
    )
    data = biased_data(50, seed=1)
    cache, calls = FeatureCache(), []
    cpu = Precision(torch.device("cpu"))

    def features(which: ModelSplit, rows: FairData, precision: Precision = cpu) -> None:
        cache.head_inputs(which, rows, precision, lambda: calls.append(1))

    features(split, data)
    features(split, data.subset(range(len(data))))  # the same rows in another object
    with torch.no_grad():
        split.head_module.weight.add_(1.0)  # the head: the features it is fed stay
    features(split, data)
    assert len(calls) == 1
    for change in ("weight", "buffer"):
        other = ModelSplit.of(copy.deepcopy(split.model), "2")
        with torch.no_grad():
            if change == "weight":
                other.model[0].weight[0, 0] += 1e-6
            else:
                other.model[1].running_mean[0] += 1e-6
        before = len(calls)
        features(other, data)
        assert len(calls) == before + 1, change
    features(split, data.subset(range(1, len(data))))
    features(split, data, Precision(torch.device("cpu"), channels_last=True))
    assert len(calls) == 5


def test_lazy_images_are_keyed_by_what_they_read():
    source = ImageSource([f"img{i}.png" for i in range(4)], Decoding(8))
    labels, groups = torch.tensor([0.0, 1.0, 0.0, 1.0]), torch.tensor([0, 0, 1, 1])
    data = FairData(source, labels, groups, ["a", "b"])
    assert data_key(data.subset([0, 1, 2])) == data_key(data.subset([0, 1, 2]))
    assert data_key(data.subset([0, 1, 2])) != data_key(data.subset([0, 1, 3]))
    resized = FairData(ImageSource(source.paths, Decoding(16)), labels, groups, ["a", "b"])
    assert data_key(resized) != data_key(data)
