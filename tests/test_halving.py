"""Successive halving: the rungs shrink by ETA, each trains its survivors at a larger share,
and a budget bounds the rows every rung passes together."""

import itertools
from dataclasses import replace

import pytest
import torch
from _helpers import biased_data

from fairtune.data import holdout_split
from fairtune.finetune.step_plan import ETA, StepPlan, rung_sizes, scaled
from fairtune.models import MLP
from fairtune.selection.halving import (
    FINAL_PART,
    PROMISE_SLACK,
    final_rung,
    halving_search,
    least_part,
    prepare,
)
from fairtune.selection.records import Tried
from fairtune.selection.search import CompareSettings, SearchContext

GRID = {"fullft": {"lr": [1e-4, 1e-3, 1e-2, 3e-2, 1e-1], "beta": [0.5], "min_steps": [0]}}

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rung_sizes_keep_a_third_until_fewer_than_eta_are_left():
    assert ETA == 3
    assert rung_sizes(9) == [9, 3, 1]
    assert rung_sizes(5) == [5, 2]
    assert rung_sizes(2) == [2]
    assert rung_sizes(0) == []


def test_a_share_scales_epochs_and_plans_rows():
    plan = StepPlan(1 / 3)
    assert plan.epochs(10, 100) == 4  # ceil(10 / 3), recorded with its rows
    assert plan.epochs(0, 100) == 0  # a skipped phase stays skipped
    assert plan.rows_at(1.0) == 10 * 100 and plan.rows_at(0.01) == 100
    assert scaled(10, 0.0) == 0 and scaled(1, 0.01) == 1


def context(training_rows: int, budget: float, epochs: int = 3) -> SearchContext:
    torch.manual_seed(0)
    fit, held = holdout_split(biased_data(300, seed=1), 0.3, seed=0)
    settings = CompareSettings(
        methods=["fullft"],
        grid=True,
        grids=GRID,
        overrides={"fullft": {"epochs": epochs}},
        n_boot=0,
        search="halving",
        budget=budget,
        training_rows=training_rows,
    )
    return SearchContext(MLP(6, (8,)), fit, held, settings, 0, 0.5, None, False)


def test_rungs_shrink_train_longer_and_stay_within_the_budget():
    here = context(training_rows=10_000, budget=1.0)
    ready = prepare(here)
    budget = ready.budgets["fullft"]
    found = halving_search("fullft", here, 0.5, budget, ready.plans["fullft"])
    rungs = found.rungs
    assert [len(r["settings"]) for r in rungs] == rung_sizes(5)[: len(rungs)]
    assert found.rows == sum(r["rows"] for r in rungs) <= budget
    assert [r["share"] for r in rungs] == sorted(r["share"] for r in rungs)  # more each rung
    for before, after in itertools.pairwise(rungs):
        assert all(s in before["settings"] for s in after["settings"])
    assert {tuple(sorted(c.point.items())) for c in found.candidates} <= {
        tuple(sorted(s.items())) for s in rungs[-1]["settings"]
    }


def test_no_budget_trains_the_last_rung_in_full():
    here = context(training_rows=0, budget=1.0)
    found = halving_search("fullft", here, 0.5, None)
    assert found.rungs[-1]["share"] == 1.0 and found.rungs[-1]["part"] == 1
    assert len(found.rungs) == len(rung_sizes(5))


def test_the_budget_keeps_a_part_for_the_final_rung():
    here = context(training_rows=6000, budget=1.0, epochs=9)
    ready = prepare(here)
    plan = ready.plans["fullft"]
    need = plan.first_rung() * least_part(len(here.fit))
    assert ready.budgets["fullft"] == pytest.approx(need + (6000 - need) * (1 - FINAL_PART))
    assert (6000 - need) * FINAL_PART >= plan.cheapest()
    # a part too small to train one setting in full is not kept: the methods share it
    here = context(training_rows=5000, budget=1.0, epochs=9)
    ready = prepare(here)
    assert (5000 - need) * FINAL_PART < ready.plans["fullft"].cheapest()
    assert ready.budgets["fullft"] == pytest.approx(5000)


def test_the_final_rung_trains_the_most_promising_short_setting_in_full():
    here = context(training_rows=6000, budget=1.0, epochs=9)
    ready = prepare(here)
    found = halving_search("fullft", here, 0.5, ready.budgets["fullft"], ready.plans["fullft"])
    assert found.rungs[-1]["share"] < 1  # the budget cut the last rung short
    start_auc = 0.5
    floor = start_auc - PROMISE_SLACK * here.settings.criterion.tolerance
    short = [c for c in found.candidates if not c.held.degenerate and c.held.auc >= floor]
    offer = min(short, key=lambda c: here.settings.selection_rule().score(c.held, start_auc))

    [after] = final_rung(here, ready, [found], start_auc)
    final = after.rungs[-1]
    assert final["final"] and final["share"] == 1.0 and final["part"] == 1.0
    assert final["settings"] == [offer.point]
    assert after.outcomes[: len(found.outcomes)] == found.outcomes  # the short fits stay
    [full] = after.outcomes[len(found.outcomes) :]
    assert full.point == offer.point
    assert [r["epoch"] for r in full.result.history] == list(range(1, 10))  # all 9 epochs
    assert after.rows == found.rows + final["rows"] <= 6000  # within the whole budget
    # the tried list tells the short fit from the full one
    listed = [t.to_dict() for t in after.tried(here.settings.criterion)]
    again = [t for t in listed if t["setting"] == offer.point]
    assert [t.get("cut_short", False) for t in again] == [True, False]
    assert [Tried.from_dict(t).cut_short for t in again] == [True, False]
    assert all(t.get("cut_short") for t in listed[: len(found.outcomes)])  # every short fit

    spent = replace(found, rows=6000 - final["rows"] + 1)  # one row short of paying for it
    assert final_rung(here, ready, [spent], start_auc) == [spent]
