"""The achievable front: recomputed from the rows' own held-out records and from fairlearn,
and stated beside the comparison table."""

import numpy as np
import pytest
from _helpers import biased_data
from fairlearn.postprocessing import ThresholdOptimizer

from fairtune.data import holdout_split
from fairtune.evaluation.postprocess import _ScoreColumn
from fairtune.models import predict_proba
from fairtune.reporting.notes import notes
from fairtune.selection.comparison import CompareSettings, compare
from fairtune.selection.results import SELECTED

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_front_is_the_best_held_out_candidate_in_reach(start_model):
    external, test = biased_data(400, seed=0), biased_data(400, seed=7)
    settings = CompareSettings(
        methods=["fullft", "constrained"],
        grid=True,
        grids={"fullft": {"lr": [1e-3, 1e-2], "beta": [0.5]}, "constrained": {"lr": [1e-2]}},
        overrides={"fullft": {"epochs": 3}, "constrained": {"epochs": 3}},
        n_boot=0,
    )
    rows = compare(start_model, external, test, settings)
    selected = next(r for r in rows if r.method == SELECTED)
    front = selected.selection.to_dict()["front"]  # as results.json holds it

    base = next(r for r in rows if r.method == "baseline").selection.to_dict()
    floor = base["held_out_auc"] - settings.auc_tolerance
    tried = [
        t
        for r in rows
        if r.method in settings.methods
        for t in r.selection.to_dict()["tried"]
        if t["held_out_auc"] >= floor
    ]
    in_reach = [base["held_out_eodds_mean"]] + [t["held_out_eodds_mean"] for t in tried]
    assert front["one_threshold"]["eodds_mean"] == pytest.approx(min(in_reach))
    assert front["auc_floor"] == pytest.approx(floor)

    # the group thresholds on the held-out part, by fairlearn directly
    fit, held = holdout_split(external, settings.holdout, 0)
    names = np.asarray(external.group_names)
    optimizer = ThresholdOptimizer(
        estimator=_ScoreColumn(), constraints="equalized_odds", prefit=True,
        predict_method="predict_proba",
    )  # fmt: skip
    s_fit = predict_proba(start_model, fit).numpy()[:, None]
    optimizer.fit(s_fit, fit.labels.numpy().astype(int), sensitive_features=names[fit.groups])
    decided = optimizer.predict(
        predict_proba(start_model, held).numpy()[:, None],
        sensitive_features=names[held.groups],
        random_state=0,
    )
    y, g = held.labels.numpy(), held.groups.numpy()
    rates = [
        (decided[(g == k) & (y == 1)].mean(), decided[(g == k) & (y == 0)].mean()) for k in (0, 1)
    ]
    expected = 0.5 * (abs(rates[0][0] - rates[1][0]) + abs(rates[0][1] - rates[1][1]))
    assert front["group_thresholds_eodds_mean"] == pytest.approx(expected)

    assert front["eodds_mean"] == min(expected, front["one_threshold"]["eodds_mean"])
    assert front["distance"] == pytest.approx(front["selected_eodds_mean"] - front["eodds_mean"])
    assert front["distance"] >= 0 and front["distance_one_threshold"] >= -1e-12
    said = notes(rows)
    assert any(line.startswith("achievable front (seed 0") for line in said)
    met = next(r for r in rows if r.method == "constrained").selection.info["constraint_met"]
    verdict = "met" if met else "NOT met"
    said_first = "constrained (seed 0) checked its constraint (gap at t <= "
    assert any(line.startswith(said_first) for line in said)
    assert any(f"): {verdict} on the part of the external set kept out" in line for line in said)
