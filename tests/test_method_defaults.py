"""Method settings: the minimum number of optimiser steps per phase, whose each default is
(``fairtune methods NAME``), the grids, and FairPrune's record of what it pruned."""

import math
from dataclasses import fields

import pytest
import torch
from _helpers import biased_data, snapshot

from fairtune.cli import main
from fairtune.console import console
from fairtune.data import FairData, balance
from fairtune.methods import REGISTRY, get_method
from fairtune.models import MLP
from fairtune.reporting.notes import notes
from fairtune.selection.comparison import CompareSettings, compare
from fairtune.settings import origin_of

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def sgd_steps(monkeypatch) -> list[int]:
    """Counts every SGD step taken while the test runs (one list entry per step)."""
    steps: list[int] = []
    step = torch.optim.SGD.step

    def counted(self, *args, **kwargs):
        steps.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", counted)
    return steps


def fullft_steps(data: FairData, steps: list[int], **config) -> tuple[int, dict]:
    """Full fine-tuning of a fresh MLP on ``data``: the SGD steps it took, its weights."""
    torch.manual_seed(0)
    steps.clear()
    result = get_method("fullft", **config).fit(MLP(6, (8,)), data)
    return len(steps), snapshot(result.model)


def test_a_small_set_gets_at_least_min_steps_a_large_one_its_epochs(sgd_steps):
    small, large = biased_data(60, seed=2), biased_data(2000, seed=3)
    batches = math.ceil(len(balance(small, seed=0)) / 64)
    taken, _ = fullft_steps(small, sgd_steps, epochs=2)
    assert taken == 2 * batches < 20, "the authors' epochs alone take few steps here"
    taken, _ = fullft_steps(small, sgd_steps, epochs=2, min_steps=20)
    assert 20 <= taken < 20 + batches, "epochs raised just far enough"

    per_epoch = math.ceil(len(balance(large, seed=0)) / 64)
    assert 2 * per_epoch >= 20
    as_given, weights = fullft_steps(large, sgd_steps, epochs=2)
    floored, floored_weights = fullft_steps(large, sgd_steps, epochs=2, min_steps=20)
    assert as_given == floored == 2 * per_epoch
    assert all(torch.equal(weights[k], floored_weights[k]) for k in weights)


def test_a_phase_of_zero_epochs_stays_skipped_under_min_steps(sgd_steps):
    data = biased_data(60, seed=2)
    torch.manual_seed(0)
    result = get_method("swift", step1_epochs=1, step2_epochs=0, min_steps=9).fit(
        MLP(6, (8,)), data
    )
    phases = [h["phase"] for h in result.history]
    assert "step2" not in phases
    assert len(sgd_steps) >= 9 and phases.count("step1") * math.ceil(
        len(balance(data, seed=0)) / 64
    ) == len(sgd_steps)


def test_every_method_setting_says_whose_its_default_is():
    for name, cls in REGISTRY.items():
        for f in fields(cls.config_class):
            origin = origin_of(f)
            assert origin, f"{name}.{f.name} declares no origin"
            ours = origin.startswith("ours: ") and len(origin) > len("ours: ")
            assert ours or any(w in origin for w in ("paper", "code")), (name, f.name, origin)


@pytest.mark.parametrize("name", ["swift", "fairprune"])
def test_methods_command_shows_each_default_with_its_origin(name, capsys, monkeypatch):
    monkeypatch.setattr(console, "width", 1000)  # one table row per line
    assert main(["methods", name]) == 0
    out = capsys.readouterr().out
    assert "default from" in out and "The grids are ours" in " ".join(out.split())
    lines = out.splitlines()
    for f in fields(REGISTRY[name].config_class):
        row = [line for line in lines if line.startswith(f"│ {f.name} ")]
        assert len(row) == 1 and origin_of(f) in row[0], f.name


def test_every_grid_names_real_settings_with_values_in_range():
    for name, cls in REGISTRY.items():
        for key, values in cls.grid.items():
            for value in values:  # refused in one line if not a setting or out of range
                get_method(name, **{key: value})


def copied_groups() -> FairData:
    """Group b's rows copy group a's: any model has the same TPR and FPR in both groups."""
    half = biased_data(200, seed=4)
    rows = len(half)
    return FairData(
        torch.cat([half.inputs, half.inputs]),
        torch.cat([half.labels, half.labels]),
        torch.cat([torch.zeros(rows, dtype=torch.long), torch.ones(rows, dtype=torch.long)]),
        ["a", "b"],
    )


def test_fairprune_says_when_it_pruned_nothing():
    """With copied groups EOdds is 0 from the start and no round can lower it."""
    data = copied_groups()
    torch.manual_seed(0)
    model = MLP(6, (8,))
    start = snapshot(model)
    result = get_method("fairprune").fit(model, data)
    assert result.info["pruned"] == 0 and result.info["pruned_nothing"]
    assert result.info["rounds_kept"] == 0
    assert all(torch.equal(v, start[k]) for k, v in snapshot(result.model).items())


def test_compare_notes_a_pruning_that_pruned_nothing():
    """The same copied groups through compare: the row carries FairPrune's facts and the
    report says in words that it pruned nothing."""
    data = copied_groups()
    torch.manual_seed(0)
    found = compare(MLP(6, (8,)), data, data, CompareSettings(methods=["fairprune"], n_boot=0))
    row = next(r for r in found if r.method == "fairprune")
    assert row.selection.info["pruned_nothing"] and row.selection.info["pruned"] == 0
    assert any(line.startswith("fairprune (seed 0) pruned nothing") for line in notes(found))
    assert not any("pruned nothing" in line for line in notes([r for r in found if r is not row]))
