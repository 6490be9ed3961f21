"""Operating points, the degeneracy flag and ABROCA against direct computations."""

import itertools
import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from fairtune.errors import FairtuneError
from fairtune.evaluation.metrics import FairnessWarning
from fairtune.evaluation.operating import abroca, degenerate, operating_points


def make_data(n: int, n_groups: int, seed: int = 0, decimals: int | None = None):
    """Labels, scores and groups whose base rates and score shapes differ by group."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    y = (rng.random(n) < 0.3 + 0.1 * g).astype(int)
    spread = 0.4 + 0.1 * g  # group-dependent separation, so the ROC curves differ
    s = np.clip(spread * y + 0.08 * g + 0.5 * rng.random(n), 0.0, 1.0)
    if decimals is not None:  # coarse scores: many ties
        s = np.round(s, decimals)
    return y, s, g, [f"g{k}" for k in range(n_groups)]


# ------------------------------------------------------------ operating points


@pytest.mark.parametrize("decimals", [None, 2])
def test_threshold_is_the_step_where_the_level_is_first_reached(decimals):
    y, s, g, names = make_data(2000, 3, seed=1, decimals=decimals)
    levels = (("specificity", 0.8), ("sensitivity", 0.7))
    spec, sens = operating_points(y, s, g, names, levels=levels)
    neg, pos = s[y == 0], s[y == 1]

    t = spec.threshold
    assert spec.achieved == np.mean(neg < t) >= 0.8
    below = s[s < t].max()  # one split more positive: that row's score turns positive
    assert np.mean(neg < below) < 0.8
    assert s[s > t].min() > t > below

    t = sens.threshold
    assert sens.achieved == np.mean(pos >= t) >= 0.7
    above = s[s >= t].min()  # one split less positive: rows at that score turn negative
    assert np.mean(pos > above) < 0.7
    assert (spec.key, sens.key) == ("specificity_0.8", "sensitivity_0.7")


@pytest.mark.parametrize("n_groups", [2, 4])
def test_per_group_rates_and_gaps_at_the_threshold(n_groups):
    y, s, g, names = make_data(3000, n_groups, seed=2)
    for point in operating_points(y, s, g, names):
        pred = s >= point.threshold
        tpr = {n: pred[(g == k) & (y == 1)].mean() for k, n in enumerate(names)}
        fpr = {n: pred[(g == k) & (y == 0)].mean() for k, n in enumerate(names)}
        assert point.tpr == pytest.approx(tpr, abs=1e-12)
        assert point.fpr == pytest.approx(fpr, abs=1e-12)
        d_tpr = max(tpr.values()) - min(tpr.values())
        d_fpr = max(fpr.values()) - min(fpr.values())
        assert point.eodds_mean == pytest.approx(0.5 * (d_tpr + d_fpr), abs=1e-12)
        assert point.eodds_worst == pytest.approx(max(d_tpr, d_fpr), abs=1e-12)
        assert point.accuracy == pytest.approx(np.mean(pred == y), abs=1e-12)
        assert not point.degenerate.flagged


def test_to_dict_is_plain_json():
    y, s, g, names = make_data(500, 2, seed=3)
    (point,) = operating_points(y, s, g, names, levels=(("specificity", 0.9),))
    d = json.loads(json.dumps(point.to_dict()))
    assert d["criterion"] == "specificity" and d["level"] == 0.9
    assert d["threshold"] == point.threshold
    assert set(d["tpr"]) == set(d["fpr"]) == set(names)
    assert d["degenerate"] == {"flagged": False, "groups": [], "rates": {}}


def test_operating_point_flags_a_group_with_no_positive_decisions():
    y, s, g, names = make_data(2000, 2, seed=4)
    s = np.where(g == 1, s * 0.05, s)  # group g1 always scored far below any useful threshold
    (point,) = operating_points(y, s, g, names, levels=(("specificity", 0.9),))
    assert point.degenerate.flagged
    assert point.degenerate.groups == ("g1",)
    assert point.degenerate.rates == {"g1": 0.0}


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ((("recall", 0.8),), "unknown criterion"),
        ((("specificity", 1.0),), "strictly between 0 and 1"),
        ((("sensitivity", 0.0),), "strictly between 0 and 1"),
    ],
)
def test_operating_point_refuses_bad_levels(levels, message):
    y, s, g, names = make_data(200, 2)
    with pytest.raises(FairtuneError, match=message):
        operating_points(y, s, g, names, levels=levels)


def test_operating_point_needs_the_label_it_is_pinned_to():
    _, s, g, names = make_data(200, 2)
    with pytest.raises(FairtuneError, match="rows with label 0"):
        operating_points(np.ones(200), s, g, names, levels=(("specificity", 0.8),))


def test_unreachable_specificity_is_refused():
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([1.0, 1.0, 0.2, 0.9, 1.0])  # two of three negatives score exactly 1
    with pytest.raises(FairtuneError, match="no threshold"):
        operating_points(y, s, [0, 1, 0, 1, 0], ["a", "b"], levels=(("specificity", 0.5),))


# ------------------------------------------------------------------ degenerate


def test_degenerate_names_the_all_negative_group_and_its_rate():
    rng = np.random.default_rng(5)
    g = np.repeat([0, 1, 2], 100)
    s = rng.random(300)
    s[g == 2] = 0.3 * s[g == 2]  # group c: every score below the threshold
    flag = degenerate(s, g, ["a", "b", "c"], threshold=0.5)
    assert flag.flagged and flag.groups == ("c",)
    assert flag.rates == {"c": 0.0}
    assert flag.to_dict() == {"flagged": True, "groups": ["c"], "rates": {"c": 0.0}}


def test_degenerate_bounds_are_strict_and_cover_the_all_positive_side():
    g = np.repeat([0, 1], 100)
    s = np.full(200, 0.2)
    s[0] = 0.9  # group a: 1 positive in 100, exactly at the lower bound
    s[100:] = 0.8  # group b: all positive
    flag = degenerate(s, g, ["a", "b"], threshold=0.5)
    assert flag.groups == ("b",) and flag.rates == {"b": 1.0}
    assert not degenerate(s, g, ["a", "b"], threshold=0.5, high=1.0).flagged
    assert degenerate(s, g, ["a", "b"], threshold=0.5, low=0.02, high=1.0).groups == ("a",)


def test_degenerate_checks_its_inputs():
    with pytest.raises(FairtuneError, match="threshold"):
        degenerate([0.2, 0.7], [0, 1], ["a", "b"], threshold=1.0)
    with pytest.raises(FairtuneError, match="low < high"):
        degenerate([0.2, 0.7], [0, 1], ["a", "b"], threshold=0.5, low=0.5, high=0.4)


# ---------------------------------------------------------------------- ABROCA


def dense_abroca(y, s, g, n_groups, grid=200_001):
    """Independent ABROCA: sklearn ROC curves on a dense FPR grid, trapezoid rule."""
    f = np.linspace(0.0, 1.0, grid)
    curves = []
    for k in range(n_groups):
        fpr, tpr, _ = roc_curve(y[g == k], s[g == k], drop_intermediate=False)
        curves.append(np.interp(f, fpr, tpr))
    return max(np.trapezoid(np.abs(a - b), f) for a, b in itertools.combinations(curves, 2))


@pytest.mark.parametrize("n_groups", [2, 4])
@pytest.mark.parametrize("decimals", [None, 1])
def test_abroca_matches_a_dense_grid_integration(n_groups, decimals):
    y, s, g, names = make_data(1500, n_groups, seed=n_groups, decimals=decimals)
    expected = dense_abroca(y, s, g, n_groups)
    assert expected > 0.01  # the groups' curves really differ
    assert abroca(y, s, g, names) == pytest.approx(expected, abs=1e-6)


def test_abroca_of_identical_groups_is_zero():
    y, s, _, _ = make_data(400, 1, seed=6)
    twice_y, twice_s = np.r_[y, y], np.r_[s, s]
    g = np.repeat([0, 1], 400)
    assert abroca(twice_y, twice_s, g, ["a", "b"]) == pytest.approx(0.0, abs=1e-12)


def test_abroca_of_a_perfect_group_against_another_is_one_minus_its_auc():
    rng = np.random.default_rng(7)
    y_a = np.repeat([0, 1], 50)
    s_a = np.where(y_a == 1, 0.6 + 0.4 * rng.random(100), 0.4 * rng.random(100))
    y_b = rng.integers(0, 2, 300)
    s_b = rng.random(300)
    y, s, g = np.r_[y_a, y_b], np.r_[s_a, s_b], np.repeat([0, 1], [100, 300])
    assert abroca(y, s, g, ["a", "b"]) == pytest.approx(1.0 - roc_auc_score(y_b, s_b), abs=1e-12)

    s_tied = np.r_[s_a, np.full(300, 0.5)]  # one tie: b's ROC is the diagonal
    assert abroca(y, s_tied, g, ["a", "b"]) == pytest.approx(0.5, abs=1e-12)
    assert abroca(y, s_tied, 1 - g, ["b", "a"]) == pytest.approx(0.5, abs=1e-12)


def test_abroca_leaves_out_a_single_class_group_with_a_warning():
    y, s, g, names = make_data(1000, 2, seed=8)
    y3, s3, g3 = np.r_[y, np.zeros(50)], np.r_[s, np.full(50, 0.3)], np.r_[g, np.full(50, 2)]
    with pytest.warns(FairnessWarning, match="'g2' has only label 0"):
        value = abroca(y3, s3, g3, [*names, "g2"])
    assert value == pytest.approx(abroca(y, s, g, names), abs=1e-15)

    with pytest.warns(FairnessWarning) as caught:
        assert math.isnan(abroca(y3, s3, np.where(g3 == 2, 2, 0), [*names, "g2"]))
    messages = [str(w.message) for w in caught]
    assert any("'g2' has only label 0" in m for m in messages)
    assert any("undefined (NaN)" in m for m in messages)
