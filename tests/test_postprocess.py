"""The ThresholdOptimizer reference against fairlearn called directly, and its effect."""

import json
import warnings

import numpy as np
import pytest
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.linear_model import LogisticRegression

from fairtune.evaluation.metrics import binary_metrics
from fairtune.evaluation.postprocess import LabelledScores, threshold_optimizer_reference

NAMES = ["a", "b"]


def make_data(n: int, seed: int = 0):
    """Two features, labels and groups; group b's feature is shifted, so scores are biased."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.4).astype(int)
    X = np.column_stack([y + 0.8 * g + rng.normal(0, 0.7, n), rng.normal(0, 1, n)])
    return X, y, g


def fitted(n: int = 2000, seed: int = 0):
    """A logistic regression's scores on a fit half and a test half."""
    X, y, g = make_data(n, seed)
    half = n // 2
    lr = LogisticRegression().fit(X[:half], y[:half])
    s = lr.predict_proba(X)[:, 1]
    fit = (s[:half], y[:half], g[:half])
    test = (s[half:], y[half:], g[half:])
    return lr, X, half, fit, test


def eodds(y, s, g):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return binary_metrics(y, s, g, NAMES, 0.5)["eodds_mean"]


@pytest.mark.parametrize(
    ("seed", "objective"),
    [(0, "accuracy_score"), (3, "accuracy_score"), (0, "balanced_accuracy_score")],
)
def test_decisions_equal_fairlearn_on_the_model_itself(seed, objective):
    lr, X, half, (s_fit, y_fit, g_fit), (s_test, _, g_test) = fitted(seed=seed)
    fit = LabelledScores(s_fit, y_fit, g_fit)
    result = threshold_optimizer_reference(fit, s_test, g_test, NAMES, seed, objective=objective)

    names = np.array(NAMES, dtype=object)
    direct = ThresholdOptimizer(
        estimator=lr,
        constraints="equalized_odds",
        objective=objective,
        prefit=True,
        predict_method="predict_proba",
    ).fit(X[:half], y_fit, sensitive_features=names[g_fit])
    expected = direct.predict(X[half:], sensitive_features=names[g_test], random_state=seed)
    np.testing.assert_array_equal(result.decisions, expected)
    assert set(np.unique(result.decisions)) <= {0, 1}
    assert len(result.decisions) == len(s_test)


def test_lowers_the_equalized_odds_gap_of_biased_scores():
    _, _, _, fit, (s_test, y_test, g_test) = fitted(n=4000, seed=1)
    raw = eodds(y_test, s_test, g_test)
    result = threshold_optimizer_reference(LabelledScores(*fit), s_test, g_test, NAMES, seed=0)
    post = eodds(y_test, result.decisions.astype(float), g_test)
    assert raw > 0.15  # the toy set is really biased at 0.5
    assert post < 0.5 * raw


def test_record_states_the_rules_and_that_the_attribute_is_needed():
    _, _, _, fit, (s_test, _, g_test) = fitted(seed=2)
    result = threshold_optimizer_reference(LabelledScores(*fit), s_test, g_test, NAMES, seed=0)
    assert result.needs_attribute_at_prediction is True
    record = json.loads(json.dumps(result.to_dict()))
    assert record["needs_attribute_at_prediction"] is True
    assert set(record["rules"]) == set(NAMES)
    for rule in result.rules.values():
        assert rule.p0 + rule.p1 == pytest.approx(1.0)
        assert 0.0 <= rule.p_ignore <= 1.0
        assert {rule.operator0, rule.operator1} <= {">", "<"}
    # the two groups' thresholds differ: the point of group-specific decisions
    a, b = result.rules["a"], result.rules["b"]
    assert (a.threshold0, a.threshold1) != (b.threshold0, b.threshold1)


def test_same_seed_same_decisions():
    _, _, _, fit, (s_test, _, g_test) = fitted(seed=4)
    rows = LabelledScores(*fit)
    first = threshold_optimizer_reference(rows, s_test, g_test, NAMES, seed=5).decisions
    again = threshold_optimizer_reference(rows, s_test, g_test, NAMES, seed=5).decisions
    np.testing.assert_array_equal(first, again)
