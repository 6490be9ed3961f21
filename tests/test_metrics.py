"""Metrics against fairlearn and scikit-learn, a hand-computed case, and input checks."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    roc_auc_score,
    roc_curve,
)

from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.evaluation.evaluate import VerdictSettings, evaluate_model, evaluate_scores
from fairtune.evaluation.measurement import Metrics
from fairtune.evaluation.metrics import (
    METRIC_KEYS,
    Bootstrap,
    FairnessWarning,
    binary_metrics,
    bootstrap_ci,
)
from fairtune.evaluation.operating import abroca, degenerate, operating_points
from fairtune.evaluation.thresholds import THRESHOLD_RULES, choose_threshold

GROUP_KEYS = {"n", "positives", "auc", "accuracy", "tpr", "fpr", "positive_rate", "ece"}


def make_data(n: int, n_groups: int, seed: int = 0, decimals: int | None = None):
    """Labels, scores and groups whose base rates and score shifts differ by group."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    y = (rng.random(n) < 0.25 + 0.1 * g).astype(int)
    s = np.clip(0.3 * y + 0.08 * g + 0.6 * rng.random(n), 0.0, 1.0)
    if decimals is not None:  # coarse scores: many ties, some exactly at thresholds
        s = np.round(s, decimals)
    names = [f"g{k}" for k in range(n_groups)]
    return y, s, g, names


@pytest.mark.parametrize("n_groups", [2, 4])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.65])
@pytest.mark.parametrize("decimals", [None, 1])
def test_matches_fairlearn_and_sklearn(n_groups, threshold, decimals):
    y, s, g, names = make_data(3000, n_groups, seed=n_groups, decimals=decimals)
    m = binary_metrics(y, s, g, names, threshold=threshold)
    pred = (s >= threshold).astype(int)

    assert m["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)
    assert m["f1"] == pytest.approx(f1_score(y, pred), abs=1e-12)
    assert m["positive_rate"] == pytest.approx(selection_rate(y, pred), abs=1e-12)

    kw = {"sensitive_features": g, "method": "between_groups"}
    assert m["eodds_worst"] == pytest.approx(
        equalized_odds_difference(y, pred, agg="worst_case", **kw), abs=1e-12
    )
    assert m["eodds_mean"] == pytest.approx(
        equalized_odds_difference(y, pred, agg="mean", **kw), abs=1e-12
    )
    assert m["dp"] == pytest.approx(demographic_parity_difference(y, pred, **kw), abs=1e-12)

    frame = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate, "acc": accuracy_score},
        y_true=y,
        y_pred=pred,
        sensitive_features=g,
    )
    diff = frame.difference(method="between_groups")
    assert m["eopp"] == pytest.approx(diff["tpr"], abs=1e-12)
    assert m["eodds_mean"] == pytest.approx(0.5 * (diff["tpr"] + diff["fpr"]), abs=1e-12)
    assert m["eodds_worst"] == pytest.approx(max(diff["tpr"], diff["fpr"]), abs=1e-12)

    auc_frame = MetricFrame(metrics=roc_auc_score, y_true=y, y_pred=s, sensitive_features=g)
    assert m["worst_group_auc"] == pytest.approx(auc_frame.group_min(), abs=1e-12)
    assert m["auc_gap"] == pytest.approx(auc_frame.difference(), abs=1e-12)

    assert list(m["by_group"]) == names
    for k, name in enumerate(names):
        row = m["by_group"][name]
        assert set(row) == GROUP_KEYS
        assert row["n"] == int((g == k).sum())
        assert row["positives"] == int(y[g == k].sum())
        assert row["tpr"] == pytest.approx(frame.by_group["tpr"][k], abs=1e-12)
        assert row["fpr"] == pytest.approx(frame.by_group["fpr"][k], abs=1e-12)
        assert row["accuracy"] == pytest.approx(frame.by_group["acc"][k], abs=1e-12)
        assert row["auc"] == pytest.approx(auc_frame.by_group[k], abs=1e-12)
        assert row["positive_rate"] == pytest.approx(pred[g == k].mean(), abs=1e-12)


def test_keys_and_json_ready():
    y, s, g, names = make_data(500, 3)
    m = binary_metrics(y, s, g, names)
    assert set(m) == {*METRIC_KEYS, "threshold", "n", "by_group"}
    assert m["n"] == 500 and m["threshold"] == 0.5
    for key in METRIC_KEYS:
        assert type(m[key]) is float
    for row in m["by_group"].values():
        assert type(row["n"]) is int and type(row["positives"]) is int
        assert all(type(row[k]) is float for k in GROUP_KEYS - {"n", "positives"})
    assert json.loads(json.dumps(m)) == m


def test_hand_computed_case():
    # group A: labels 1 1 0 0, scores .9 .4 .6 .2 -> preds 1 0 1 0
    # group B: labels 1 0 0 1, scores .8 .3 .1 .7 -> preds 1 0 0 1
    y = [1, 1, 0, 0, 1, 0, 0, 1]
    s = [0.92, 0.43, 0.61, 0.24, 0.85, 0.33, 0.15, 0.75]
    g = [0, 0, 0, 0, 1, 1, 1, 1]
    m = binary_metrics(y, s, g, ["A", "B"])
    a, b = m["by_group"]["A"], m["by_group"]["B"]
    assert (a["tpr"], a["fpr"], a["positive_rate"], a["accuracy"]) == (0.5, 0.5, 0.5, 0.5)
    assert (b["tpr"], b["fpr"], b["positive_rate"], b["accuracy"]) == (1.0, 0.0, 0.5, 1.0)
    assert a["auc"] == 0.75 and b["auc"] == 1.0
    assert m["eopp"] == 0.5
    assert m["dp"] == 0.0
    assert m["eodds_mean"] == pytest.approx(0.5 * (0.5 + 0.5))
    assert m["eodds_worst"] == pytest.approx(0.5)
    assert m["worst_group_auc"] == 0.75 and m["auc_gap"] == 0.25
    # ECE, 10 equal-width bins, bin_weight * |mean score - positive fraction|.
    # A: bins 9 {.92:1}, 4 {.43:1}, 6 {.61:0}, 2 {.24:0}, one row each:
    ece_a = (0.08 + 0.57 + 0.61 + 0.24) / 4
    # B: bins 8 {.85:1}, 3 {.33:0}, 1 {.15:0}, 7 {.75:1}:
    ece_b = (0.15 + 0.33 + 0.15 + 0.25) / 4
    assert a["ece"] == pytest.approx(ece_a)
    assert b["ece"] == pytest.approx(ece_b)
    # Overall: bin 2 {.24:0}, bin 3 {.33:0}, bin 1 {.15:0}, bin 4 {.43:1}, bin 6 {.61:0},
    # bin 7 {.75:1}, bin 8 {.85:1}, bin 9 {.92:1}: all bins single rows.
    assert m["ece"] == pytest.approx((0.08 + 0.57 + 0.61 + 0.24 + 0.15 + 0.33 + 0.15 + 0.25) / 8)


def test_ece_shared_bin():
    # Two rows in bin 7 (.72, .78) with one positive: |0.75 - 0.5| * 2/4; bin 1 {.1:0}, bin 9 {.9:1}
    m = binary_metrics([1, 0, 0, 1], [0.72, 0.78, 0.12, 0.92], [0, 1, 0, 1], ["A", "B"])
    assert m["ece"] == pytest.approx(0.25 * 2 / 4 + 0.12 / 4 + 0.08 / 4)
    # Per group each bin holds one row.
    assert m["by_group"]["A"]["ece"] == pytest.approx((0.28 + 0.12) / 2)
    assert m["by_group"]["B"]["ece"] == pytest.approx((0.78 + 0.08) / 2)


def test_group_without_positives_is_nan_and_skipped():
    y, s, g, _ = make_data(2000, 3, seed=5)
    y = y.copy()
    y[g == 1] = 0
    names = ["a", "b", "c"]
    with pytest.warns(FairnessWarning, match="'b'"):
        m = binary_metrics(y, s, g, names)
    b = m["by_group"]["b"]
    assert math.isnan(b["tpr"]) and math.isnan(b["auc"])
    assert not math.isnan(b["fpr"])
    tpr_a, tpr_c = m["by_group"]["a"]["tpr"], m["by_group"]["c"]["tpr"]
    assert m["eopp"] == pytest.approx(abs(tpr_a - tpr_c))
    fprs = [m["by_group"][k]["fpr"] for k in names]
    assert m["eodds_mean"] == pytest.approx(0.5 * (abs(tpr_a - tpr_c) + max(fprs) - min(fprs)))
    aucs = [m["by_group"][k]["auc"] for k in ("a", "c")]
    assert m["auc_gap"] == pytest.approx(max(aucs) - min(aucs))
    assert m["worst_group_auc"] == pytest.approx(min(aucs))


def test_gap_nan_when_fewer_than_two_groups_defined():
    y = [1, 0, 0, 0, 0, 0]
    s = [0.9, 0.2, 0.6, 0.1, 0.3, 0.7]
    g = [0, 0, 0, 1, 1, 1]
    with pytest.warns(FairnessWarning) as record:
        m = binary_metrics(y, s, g, ["A", "B"])
    assert any("'B'" in str(w.message) for w in record)
    assert math.isnan(m["eopp"]) and math.isnan(m["auc_gap"])
    assert math.isnan(m["eodds_mean"]) and math.isnan(m["eodds_worst"])
    assert m["worst_group_auc"] == m["by_group"]["A"]["auc"] == 1.0
    assert m["dp"] == pytest.approx(2 / 3 - 1 / 3)


def test_single_class_auc_nan_with_warning():
    with pytest.warns(FairnessWarning) as record:
        m = binary_metrics([0, 0, 0, 0], [0.1, 0.6, 0.3, 0.8], [0, 0, 1, 1], ["A", "B"])
    assert any("only label 0" in str(w.message) for w in record)
    assert math.isnan(m["auc"]) and math.isnan(m["balanced_accuracy"])
    assert m["accuracy"] == 0.5
    assert m["dp"] == 0.0


def test_empty_group_left_out():
    y, s, g, _ = make_data(800, 2, seed=3)
    g = np.where(g == 1, 2, g)  # group "mid" has no rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = binary_metrics(y, s, g, ["low", "mid", "high"])
    assert list(m["by_group"]) == ["low", "high"]
    assert m["eopp"] == pytest.approx(
        abs(m["by_group"]["low"]["tpr"] - m["by_group"]["high"]["tpr"])
    )


def test_inputs_not_modified():
    y, s, g, names = make_data(300, 2)
    copies = (y.copy(), s.copy(), g.copy())
    binary_metrics(y, s, g, names)
    bootstrap_ci(y, s, g, names, bootstrap=Bootstrap(n_boot=5))
    for before, after in zip(copies, (y, s, g), strict=True):
        np.testing.assert_array_equal(before, after)


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_reproducible_and_covers_point():
    y, s, g, names = make_data(4000, 3, seed=7)
    point = binary_metrics(y, s, g, names)
    ci = bootstrap_ci(y, s, g, names, bootstrap=Bootstrap(n_boot=200, seed=11))
    again = bootstrap_ci(y, s, g, names, bootstrap=Bootstrap(n_boot=200, seed=11))
    other = bootstrap_ci(y, s, g, names, bootstrap=Bootstrap(n_boot=200, seed=12))
    assert ci == again
    assert ci != other
    assert list(ci) == list(METRIC_KEYS)
    for key in METRIC_KEYS:
        lo, hi = ci[key]
        assert lo <= hi, key
        assert lo <= point[key] <= hi, key
        assert hi - lo < 0.2, key


def test_bootstrap_weights_equal_repeated_rows():
    from fairtune.evaluation.metrics import _sort_by_score, weighted_metrics

    y, s, g, names = make_data(200, 3, seed=9, decimals=2)
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, size=len(y)).astype(float)
    counts[:3] = 1.0
    rows = np.repeat(np.arange(len(y)), counts.astype(int))
    direct = binary_metrics(y[rows], s[rows], g[rows], names, threshold=0.45)
    ys, ss, gs = _sort_by_score(y.astype(float), s, g)
    order = np.argsort(s, kind="stable")
    _, m = weighted_metrics(counts[order][None, :], ys, ss, gs, 3, 0.45)
    for key in METRIC_KEYS:
        assert m[key][0] == pytest.approx(direct[key], abs=1e-12), key


def test_bootstrap_quiet_with_a_rare_class():
    y, s, g, names = make_data(15000, 2, seed=1)
    y = y.copy()
    y[(g == 1) & (np.arange(len(y)) % 50 != 0)] = 0  # a group with few positives
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ci = bootstrap_ci(y, s, g, names, bootstrap=Bootstrap(n_boot=200))
    assert all(not math.isnan(v) for lo_hi in ci.values() for v in lo_hi)


def test_bootstrap_all_nan_metric():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.2, 0.8, 0.3, 0.6, 0.1, 0.4, 0.7])
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    ci = bootstrap_ci(y, s, g, ["A", "B"], bootstrap=Bootstrap(n_boot=20))
    assert all(math.isnan(v) for v in ci["eopp"])
    assert not any(math.isnan(v) for v in ci["dp"])


# ----------------------------------------------------------- choose_threshold


def test_threshold_rules_exported():
    assert THRESHOLD_RULES == ("0.5", "balanced_accuracy", "positive_rate")
    y, s, _, _ = make_data(100, 2)
    assert choose_threshold(y, s, "0.5") == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_accuracy_rule(seed):
    y, s, _, _ = make_data(1500, 2, seed=seed)
    s = s * 0.6  # a model whose scores sit low: 0.5 is a poor cut
    t = choose_threshold(y, s, "balanced_accuracy")
    assert 0.0 < t < 1.0
    best = balanced_accuracy_score(y, s >= t)
    assert best >= balanced_accuracy_score(y, s >= 0.5)
    assert best > balanced_accuracy_score(y, s >= 0.5) + 0.05
    # No cut point does better: the best over sklearn's full ROC curve.
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    assert best == pytest.approx(np.max(0.5 * (tpr + 1 - fpr)), abs=1e-12)


def test_balanced_accuracy_rule_anti_informative_scores():
    y = np.array([1, 1, 1, 0, 0, 0])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    t = choose_threshold(y, s, "balanced_accuracy")
    assert balanced_accuracy_score(y, s >= t) >= balanced_accuracy_score(y, s >= 0.5)


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.5, 0.87])
def test_positive_rate_rule(rate):
    y, s, _, _ = make_data(997, 2, seed=3)
    t = choose_threshold(y, s, "positive_rate", reference_rate=rate)
    assert abs((s >= t).mean() - rate) <= 1 / len(s)


def test_positive_rate_rule_needs_reference():
    y, s, _, _ = make_data(100, 2)
    with pytest.raises(FairtuneError, match="reference_rate"):
        choose_threshold(y, s, "positive_rate")
    with pytest.raises(FairtuneError, match="reference_rate"):
        choose_threshold(y, s, "positive_rate", reference_rate=1.5)


def test_threshold_rule_errors():
    y, s, _, _ = make_data(100, 2)
    with pytest.raises(FairtuneError, match="unknown threshold rule"):
        choose_threshold(y, s, "youden")
    with pytest.raises(FairtuneError, match="both labels"):
        choose_threshold(np.zeros(100), s, "balanced_accuracy")


# --------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("y", "s", "g", "threshold", "match"),
    [
        ([1, 0, 1], [0.2, 0.4], [0, 1, 1], 0.5, "length"),
        ([1, 0, 1], [0.2, 0.4, 0.3], [0, 1], 0.5, "length"),
        ([1, 0, 1], [0.2, np.nan, 0.3], [0, 1, 1], 0.5, "NaN"),
        ([1, 2, 1], [0.2, 0.4, 0.3], [0, 1, 1], 0.5, "0 and 1"),
        ([1, np.nan, 1], [0.2, 0.4, 0.3], [0, 1, 1], 0.5, "0 and 1"),
        ([1, 0, 1], [0.2, 1.4, 0.3], [0, 1, 1], 0.5, r"\[0, 1\]"),
        ([1, 0, 1], [-0.2, 0.4, 0.3], [0, 1, 1], 0.5, r"\[0, 1\]"),
        ([1, 0, 1], [0.2, 0.4, 0.3], [0, 1, 1], 0.0, "threshold"),
        ([1, 0, 1], [0.2, 0.4, 0.3], [0, 1, 1], 1.0, "threshold"),
        ([1, 0, 1], [0.2, 0.4, 0.3], [0, 1, 2], 0.5, "group ids"),
        ([1, 0, 1], [0.2, 0.4, 0.3], [0, 1.5, 1], 0.5, "integer"),
        ([], [], [], 0.5, "no rows"),
    ],
)
def test_bad_inputs_raise(y, s, g, threshold, match):
    with pytest.raises(FairtuneError, match=match):
        binary_metrics(y, s, g, ["A", "B"], threshold=threshold)
    with pytest.raises(FairtuneError, match=match):
        bootstrap_ci(y, s, g, ["A", "B"], threshold=threshold, bootstrap=Bootstrap(n_boot=3))


def test_bad_inputs_choose_threshold_and_names():
    with pytest.raises(FairtuneError, match="NaN"):
        choose_threshold([1, 0], [0.3, np.nan], "balanced_accuracy")
    with pytest.raises(FairtuneError, match="length"):
        choose_threshold([1, 0, 1], [0.3, 0.4], "positive_rate", reference_rate=0.5)
    with pytest.raises(FairtuneError, match="two groups"):
        binary_metrics([1, 0], [0.3, 0.4], [0, 0], ["only"])
    with pytest.raises(FairtuneError, match="n_boot"):
        bootstrap_ci([1, 0], [0.3, 0.4], [0, 1], ["A", "B"], bootstrap=Bootstrap(n_boot=0))
    with pytest.raises(FairtuneError, match="alpha"):
        bootstrap_ci([1, 0], [0.3, 0.4], [0, 1], ["A", "B"], bootstrap=Bootstrap(3, alpha=1.0))


# ------------------------------------------------------------------ properties (hypothesis)


@st.composite
def evaluations(draw):
    """Random labelled scores in 2 to 4 groups, every group with both classes."""
    n_groups = draw(st.integers(2, 4))
    groups, labels = [], []
    for g in range(n_groups):
        size = draw(st.integers(2, 12))
        groups += [g] * size
        labels += [0, 1, *draw(st.lists(st.integers(0, 1), min_size=size - 2, max_size=size - 2))]
    scores = draw(st.lists(st.floats(0, 1), min_size=len(labels), max_size=len(labels)))
    names = [f"g{i}" for i in range(n_groups)]
    return np.array(labels), np.array(scores), np.array(groups), names


@settings(max_examples=60, deadline=None)
@given(evaluations(), st.floats(0.05, 0.95), st.randoms(use_true_random=False))
def test_metric_properties(case, threshold, rnd):
    y, s, g, names = case
    m = binary_metrics(y, s, g, names, threshold=threshold)
    # the papers' mean of the two gaps never exceeds fairlearn's worst of them
    assert m["eodds_mean"] <= m["eodds_worst"] + 1e-12
    assert m["eopp"] <= m["eodds_worst"] + 1e-12
    for key in ("eodds_mean", "eodds_worst", "eopp", "dp", "ece", "auc_gap"):
        assert 0 <= m[key] <= 1, key
    assert m["worst_group_auc"] == min(v["auc"] for v in m["by_group"].values())
    # row order and group numbering do not matter
    order = list(range(len(y)))
    rnd.shuffle(order)
    relabel = list(range(len(names)))[::-1]
    shuffled = binary_metrics(
        y[order], s[order], np.array(relabel)[g[order]], names[::-1], threshold=threshold
    )
    for key in METRIC_KEYS:
        assert shuffled[key] == pytest.approx(m[key], abs=1e-12), key
    for name, row in m["by_group"].items():
        assert shuffled["by_group"][name] == pytest.approx(row), name


def test_metric_declarations_give_the_keys_and_the_report_columns():
    from fairtune.evaluation.metrics import GROUP_KEYS as DECLARED_GROUP_KEYS
    from fairtune.evaluation.metrics import METRICS
    from fairtune.reporting import report

    assert len({m.key for m in METRICS}) == len(METRICS)
    assert set(DECLARED_GROUP_KEYS) == GROUP_KEYS
    # the evaluation's own top-level metric (from the ROC curves) follows binary_metrics'
    assert list(report.LABELS) == [*METRIC_KEYS, "abroca"]
    assert report.LABELS["balanced_accuracy"] == "balanced acc."
    assert report.COMPARE_KEYS == (
        "auc",
        "accuracy",
        "positive_rate",
        "eodds_mean",
        "eodds_worst",
        "dp",
        "worst_group_auc",
        "abroca",
    )
    assert report.BOTH_THRESHOLDS == (
        "accuracy", "positive_rate", "eodds_mean", "eodds_worst", "dp"
    )
    # a threshold-independent metric does not move with the threshold
    y, s, g, names = make_data(300, 2, seed=4)
    low, high = binary_metrics(y, s, g, names, 0.3), binary_metrics(y, s, g, names, 0.7)
    for m in METRICS:
        if m.overall:
            assert (low[m.key] != high[m.key]) == m.threshold_dependent, m.key


# ------------------------------------------------- verdicts of every evaluation


def as_fair_data(y, s, g, names):
    """The rows as a FairData whose one input column is the score."""
    return FairData(torch.tensor(s)[:, None], torch.tensor(y), torch.tensor(g), names)


VERDICT_KEYS = ("operating_points", "abroca", "degenerate", "degenerate_groups")


@pytest.mark.parametrize("n_groups", [2, 4])
def test_evaluate_scores_adds_the_verdicts_of_the_operating_module(n_groups):
    y, s, g, names = make_data(2000, n_groups, seed=11)
    verdict = VerdictSettings(specificity=0.7, sensitivity=0.9, degenerate_rate=0.02)
    data = as_fair_data(y, s, g, names)
    found = evaluate_scores(data, torch.tensor(s), 0.4, 20, 3, verdict)
    metrics, ci = found.metrics, found.intervals

    saved = metrics.to_dict()  # results.json's keys
    assert set(saved) == {*METRIC_KEYS, "threshold", "n", "by_group", *VERDICT_KEYS}
    assert list(ci.to_dict()) == list(METRIC_KEYS)  # the intervals keep today's keys
    assert ci.to_dict() == bootstrap_ci(y, s, g, names, 0.4, Bootstrap(20, seed=3))
    levels = (("specificity", 0.7), ("sensitivity", 0.9))
    direct = operating_points(y, s, g, names, levels=levels, low=0.02, high=0.98)
    assert metrics.operating_points == {p.key: p for p in direct}
    assert saved["operating_points"] == {p.key: p.to_dict() for p in direct}
    assert list(metrics.operating_points) == ["specificity_0.7", "sensitivity_0.9"]
    assert metrics.abroca == abroca(y, s, g, names)
    assert metrics.abroca > 0.01
    flag = degenerate(s, g, names, 0.4, low=0.02, high=0.98)
    assert (metrics.degenerate, metrics.degenerate_groups) == (False, ()) == (
        flag.flagged,
        flag.groups,
    )
    # independent: the specificity point's threshold gives at least that specificity
    spec = metrics.operating_points["specificity_0.7"]
    assert np.mean(s[y == 0] < spec.threshold) >= 0.7
    assert Metrics.from_dict(json.loads(json.dumps(saved))) == metrics

    default = evaluate_scores(data, torch.tensor(s)).metrics
    assert list(default.operating_points) == ["specificity_0.8", "sensitivity_0.8"]


def test_a_model_that_rejects_a_whole_group_is_degenerate():
    rng = np.random.default_rng(12)
    n = 600
    g = np.repeat([0, 1], n // 2)
    y = (rng.random(n) < 0.4).astype(np.float32)
    z = 2 * y - 1 + rng.normal(size=n)
    x = torch.tensor(np.c_[z, g], dtype=torch.float32)
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():  # logit z for group g0, z - 20 for g1: g1 is always negative
        model.weight.copy_(torch.tensor([[1.0, -20.0]]))
        model.bias.zero_()
    data = FairData(x, torch.tensor(y), torch.tensor(g), ["g0", "g1"])

    metrics = evaluate_model(model, data, threshold=0.5).metrics
    assert metrics.by_group["g1"].positive_rate == 0.0
    assert metrics.degenerate is True
    assert metrics.degenerate_groups == ("g1",)
    # at specificity 0.8 the threshold lies among g0's scores: g1 is still all negative
    point = metrics.operating_points["specificity_0.8"]
    assert point.degenerate.flagged and point.degenerate.groups == ("g1",)
    # a looser bound (no group below 0%) clears it
    loose = evaluate_model(model, data, 0.5, verdict=VerdictSettings(degenerate_rate=0.0)).metrics
    assert loose.degenerate is False


def test_an_operating_point_no_threshold_reaches_is_null_with_a_warning():
    _, s, g, names = make_data(300, 2, seed=13)
    data = as_fair_data(np.ones(300, dtype=int), s, g, names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = evaluate_scores(data, torch.tensor(s)).metrics
    undefined = [str(w.message) for w in caught if "operating point undefined" in str(w.message)]
    assert len(undefined) == 1 and "label 0" in undefined[0]
    assert metrics.operating_points["specificity_0.8"] is None
    assert metrics.operating_points["sensitivity_0.8"].level == 0.8
    assert math.isnan(metrics.abroca)


@pytest.mark.parametrize(
    ("field", "value"),
    [("specificity", 1.0), ("sensitivity", 0.0), ("degenerate_rate", 0.5), ("specificity", "x")],
)
def test_verdict_settings_refuse_values_outside_their_range(field, value):
    with pytest.raises(FairtuneError, match=f"setting '{field}'"):
        VerdictSettings(**{field: value})
