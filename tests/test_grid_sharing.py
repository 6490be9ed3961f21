"""A grid that does not repeat work: relative importance computed once per data and
Fisher settings, shared by every grid point, with the same results as without sharing."""

import pytest
import torch
from _helpers import biased_data, calls_counted

import fairtune.methods.base as base
from fairtune.data import holdout_split
from fairtune.models import MLP
from fairtune.selection.search import Candidate, CompareSettings, SearchContext, search

GRIDS = {
    "bmft": {"impair_lr": [1e-3, 1e-2], "keep": [0.25, 0.5], "min_steps": [0]},
    "swift": {"beta": [0.1, 0.3], "step1_optimizer": ["sgd"], "min_steps": [0]},
}
SHORT = {
    "bmft": {"impair_epochs": 1, "repair_epochs": 1},
    "swift": {"step1_epochs": 1, "step2_epochs": 1},
}


def run(importances, monkeypatch) -> tuple[dict[str, list[Candidate]], int]:
    """Every grid point of BMFT and SWiFT on one seed, and how many Fisher passes ran."""
    passes = calls_counted(monkeypatch, base, "fisher_diagonal")
    torch.manual_seed(0)
    model = MLP(6, (8,))
    fit, held = holdout_split(biased_data(240, seed=1), 0.3, seed=0)
    settings = CompareSettings(
        methods=["bmft", "swift"], grid=True, grids=GRIDS, overrides=SHORT, n_boot=0
    )
    context = SearchContext(model, fit, held, settings, 0, 0.5, None, False, importances)
    found = {m: search(m, context, 0.5).candidates for m in settings.methods}
    return found, len(passes)


@pytest.mark.usefixtures("one_thread")
def test_importance_is_computed_once_per_key_with_the_same_results(monkeypatch):
    shared, shared_passes = run({}, monkeypatch)
    alone, alone_passes = run(None, monkeypatch)
    points = {m: len(c) for m, c in alone.items()}
    assert points == {"bmft": 4, "swift": 6}  # SWiFT's step1_lr grid stays: 3 x 2
    assert alone_passes == 4 + 6  # one per grid point without sharing
    assert shared_passes == 2  # one per method: their data differ (SWiFT balances)
    for method, candidates in alone.items():
        assert len(candidates) == len(shared[method])
        for a, s in zip(candidates, shared[method], strict=True):
            assert a.point == s.point
            assert torch.equal(a.scores, s.scores)
            for name, value in a.result.model.state_dict().items():
                assert torch.equal(value, s.result.model.state_dict()[name]), name
            if a.result.mask is not None:
                for name, value in a.result.mask.values.items():
                    assert torch.equal(value, s.result.mask.values[name]), name
