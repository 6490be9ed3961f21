"""Honest verdicts of a comparison: the cross-method choice (which may keep the original),
selection regret, the ThresholdOptimizer reference row, and grids that survive a diverged
setting."""

import math
import warnings

import numpy as np
import pytest
import torch
from _helpers import biased_data
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin

from fairtune.data import holdout_split
from fairtune.errors import FairtuneError
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.metrics import METRIC_KEYS, binary_metrics
from fairtune.evaluation.paired import ScoredModel, regret_from_noise
from fairtune.finetune.training import TrainingDiverged
from fairtune.methods.base import MIN_STEPS
from fairtune.models import predict_proba
from fairtune.reporting.notes import notes
from fairtune.selection.auto import run_seed
from fairtune.selection.comparison import NOISE_POOL, compare
from fairtune.selection.results import selection_summary
from fairtune.selection.rules import (
    Contender,
    CrossMethodRule,
    HeldOutRows,
    HeldOutScore,
    ScoreOnTest,
    kept_text,
    selection_regret,
)
from fairtune.selection.search import CompareSettings

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ the cross-method rule

NAMES = ("a", "b")


def held_rows(n: int = 2000, seed: int = 0):
    """Labels, groups and an unbiased score: the same signal in both groups."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = rng.integers(0, 2, n)
    s = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.15, n), 0.001, 0.999)
    return y, g, s


def contender(method: str, y, g, s, threshold: float = 0.5) -> Contender:
    """A contender scored as the search scores one: AUC, EOdds and degeneracy at threshold."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = binary_metrics(y, s, g, NAMES, threshold)
    rates = [v["positive_rate"] for v in m["by_group"].values()]
    flagged = any(r < 0.01 or r > 0.99 for r in rates)
    values = {key: m[key] for key in METRIC_KEYS}
    held = HeldOutScore(threshold, m["auc"], values, flagged)
    return Contender(method, {"lr": 0.1}, ScoredModel(s, threshold), held)


RULE = CrossMethodRule(Criterion(tolerance=0.01), holdout=0.3, n_boot=300)
KEPT = kept_text(Criterion())


def test_original_is_kept_when_no_candidate_helps():
    y, g, s = held_rows()
    rows = HeldOutRows(y, g, NAMES)
    original = contender("original", y, g, s)
    rng = np.random.default_rng(5)
    noisy = np.clip(s + rng.normal(0, 0.01, len(s)), 0.001, 0.999)  # same fairness, jitter
    choice = RULE.choose(rows, original, [contender("llft", y, g, noisy)], seed=0)
    assert choice.index is None and choice.method == "original" and choice.setting == {}
    assert choice.reason.startswith(KEPT)
    assert KEPT == "kept the original: no candidate improved EOdds on held-out data"
    assert choice.best == 0 and not choice.improvement.improves
    assert choice.to_dict()["kept_original"] is True


def biased(y, g, s):
    """Group b's scores pushed up: a clear equalized-odds gap."""
    return np.clip(s + 0.25 * g, 0.001, 0.999)


def test_a_candidate_that_clearly_helps_is_chosen():
    y, g, s = held_rows()
    rows = HeldOutRows(y, g, NAMES)
    original = contender("original", y, g, biased(y, g, s))
    worse = contender("bmft", y, g, np.clip(biased(y, g, s) + 0.1 * g, 0.001, 0.999))
    fair = contender("fullft", y, g, s)
    choice = RULE.choose(rows, original, [worse, fair], seed=0)
    assert choice.index == 1 and choice.method == "fullft" and choice.setting == {"lr": 0.1}
    assert choice.improvement.improves and choice.improvement.low > 0
    assert choice.reason.startswith("chose fullft {'lr': 0.1}")
    assert choice.counts["tried"] == 2 and choice.counts["degenerate"] == 0


def test_degenerate_and_low_auc_candidates_are_never_chosen():
    y, g, s = held_rows()
    rows = HeldOutRows(y, g, NAMES)
    original = contender("original", y, g, biased(y, g, s))
    # everyone positive at its threshold: EOdds 0, but degenerate
    constant = contender("random_mask", y, g, np.full(len(s), 0.9))
    assert constant.held.degenerate and constant.held.of(Criterion()) == 0.0
    # fair but with a ranking far worse than the original's
    rng = np.random.default_rng(1)
    blurred = np.clip(0.5 + 0.4 * (s - 0.5) + rng.normal(0, 0.2, len(s)), 0, 1)
    weak = contender("swift", y, g, blurred)
    assert weak.held.auc < original.held.auc - 0.01
    choice = RULE.choose(rows, original, [constant, weak], seed=0)
    assert choice.index is None and choice.best is None
    assert choice.reason.startswith(KEPT)
    assert choice.counts == {
        "tried": 2,
        "degenerate": 1,
        "auc_below_tolerance": 1,
        "eodds_undefined": 0,
    }
    # with a sound candidate beside it, the sound one is chosen, never the degenerate one
    choice = RULE.choose(rows, original, [constant, contender("llft", y, g, s)], seed=0)
    assert choice.index == 1


def test_regret_is_the_gap_to_the_best_candidate_within_tolerance_on_test():
    original = ScoreOnTest(0.80, 0.30)
    candidates = [ScoreOnTest(0.81, 0.10), ScoreOnTest(0.70, 0.01), ScoreOnTest(0.795, 0.05)]
    assert selection_regret(candidates[0], original, candidates, 0.01) == (
        pytest.approx(0.05),
        2,
    )
    assert selection_regret(original, original, candidates, 0.01)[0] == pytest.approx(0.25)
    assert selection_regret(candidates[2], original, candidates, 0.2) == (
        pytest.approx(0.04),
        1,
    )
    lone = ScoreOnTest(0.80, 0.0)
    assert selection_regret(lone, lone, [ScoreOnTest(0.9, math.nan)], 0.01) == (0.0, None)
    # a degenerate model's zero gap is no benchmark for the regret
    degenerate = ScoreOnTest(0.85, 0.0, degenerate=True)
    assert selection_regret(candidates[0], original, [*candidates, degenerate], 0.01) == (
        pytest.approx(0.05),
        2,
    )


# ------------------------------------------------------------------ compare's new rows

SETTINGS = {
    "methods": ["llft", "fullft"],
    "seeds": [0],
    "grid": True,
    "n_boot": 10,
    "overrides": {"llft": {"epochs": 2}, "fullft": {"epochs": 2}},
    "grids": {"llft": {"lr": [1e-3, 1e-2], "beta": [0.5]}, "fullft": {"lr": [1e-3], "beta": [0.5]}},
}


@pytest.fixture(scope="module")
def compared(start_model):
    external, test = biased_data(400, seed=2), biased_data(300, seed=3)
    settings = CompareSettings(**SETTINGS)
    return external, test, settings, compare(start_model, external, test, settings)


def test_reference_row_equals_fairlearn_called_directly(start_model, compared):
    external, test, settings, rows = compared
    row = next(r for r in rows if r.method == "threshold_optimizer")
    assert row.to_dict()["needs_sensitive_attribute_at_prediction"] is True
    others = [r.to_dict() for r in rows if r is not row]
    assert all("needs_sensitive_attribute_at_prediction" not in r for r in others)
    assert row.config["needs_attribute_at_prediction"] is True

    class Scores(ClassifierMixin, BaseEstimator):
        def fit(self, X, y=None):
            return self

        def __sklearn_is_fitted__(self):
            return True

        def predict_proba(self, X):
            return np.column_stack([1 - X[:, 0], X[:, 0]])

    fit, _ = holdout_split(external, settings.holdout, row.seed)
    names = np.array(test.group_names, dtype=object)
    direct = ThresholdOptimizer(
        estimator=Scores(),
        constraints="equalized_odds",
        prefit=True,
        predict_method="predict_proba",
    ).fit(
        predict_proba(start_model, fit).numpy()[:, None].astype(np.float64),
        fit.labels.numpy().astype(int),
        sensitive_features=names[fit.groups.numpy()],
    )
    decisions = direct.predict(
        predict_proba(start_model, test).numpy()[:, None].astype(np.float64),
        sensitive_features=names[test.groups.numpy()],
        random_state=row.seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = binary_metrics(test.labels.numpy(), decisions, test.groups.numpy(), names, 0.5)
    assert row.metrics.positive_rate == pytest.approx(decisions.mean())
    for key in ("accuracy", "balanced_accuracy", "eodds_mean", "eodds_worst", "dp", "f1"):
        assert row.metrics.value(key) == pytest.approx(expected[key]), key
        assert row.metrics_tuned.value(key) == row.metrics.value(key)
    for group, values in expected["by_group"].items():
        assert row.metrics.by_group[group].tpr == pytest.approx(values["tpr"])
    for key in ("auc", "worst_group_auc", "auc_gap", "ece"):  # no ranking score: n/a
        assert math.isnan(row.metrics.value(key)) and all(math.isnan(v) for v in row.ci.of(key))


def test_the_reference_note_gives_its_own_positive_rate_beside_the_start_at_t(
    start_model, compared
):
    _, test, _, rows = compared
    row = next(r for r in rows if r.method == "threshold_optimizer")
    baseline = next(r for r in rows if r.method == "baseline")
    start = (predict_proba(start_model, test).numpy() >= baseline.threshold).mean()
    note = next(line for line in notes(rows) if line.startswith("threshold_optimizer:"))
    own = row.metrics_tuned.positive_rate  # equals fairlearn's decisions (the test above)
    said = f"its own positive rate ({own:.3f} on test, the starting model's at t {start:.3f})"
    assert said in note


def test_selected_row_and_regret_against_an_independent_recomputation(start_model, compared):
    external, test, settings, rows = compared
    selected = next(r for r in rows if r.method == "selected")
    record = selected.to_dict()["selection"]  # as results.json holds it
    assert record["reason"] and record["rule"].startswith("across methods")
    assert selected.config["selected"] == record["method"]
    # the same search again (deterministic), every candidate measured on test here
    run = run_seed(start_model, external, settings, 0)
    pool = [("original", run.start), *run.pool()]
    assert len(pool) == 4  # the original, two llft settings, one fullft setting

    def on_test(candidate):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = predict_proba(candidate.result.model, test).numpy()
            args = (test.labels.numpy(), scores, test.groups.numpy(), test.group_names)
            return binary_metrics(*args, candidate.held.threshold)

    measured = [on_test(c) for _, c in pool]
    floor = measured[0]["auc"] - settings.auc_tolerance

    def sound(m):  # no group decided almost all one way
        return all(0.01 <= g["positive_rate"] <= 0.99 for g in m["by_group"].values())

    comparable = [i for i, m in enumerate(measured) if m["auc"] >= floor and sound(m)]
    best = min(measured[i]["eodds_mean"] for i in comparable)
    assert record["regret"] == pytest.approx(selected.metrics_tuned.eodds_mean - best)
    chosen = 0 if record["kept_original"] else 1 + run.choice.index
    assert selected.metrics_tuned.eodds_mean == pytest.approx(measured[chosen]["eodds_mean"])
    summary = selection_summary(rows)
    assert summary["per_seed"][0]["regret"] == record["regret"]
    assert summary["regret_mean"] == pytest.approx(record["regret"])
    # the noise: the comparable models (at most NOISE_POOL), the best on test first
    ranked = sorted(comparable, key=lambda i: measured[i]["eodds_mean"])[:NOISE_POOL]
    models = [
        ScoredModel(predict_proba(pool[i][1].result.model, test).numpy(), pool[i][1].held.threshold)
        for i in ranked
    ]
    y, g = test.labels.numpy(), test.groups.numpy()
    noise = regret_from_noise(y, g, test.group_names, models)
    assert record["best_on_test"]["regret_from_noise"] == pytest.approx(noise, abs=1e-12)
    assert summary["per_seed"][0]["regret_from_noise"] == pytest.approx(noise, abs=1e-12)
    said = next(line for line in notes(rows) if line.startswith("selected (seed 0)"))
    assert f"noise alone would show about {noise:.3f} even for the best model" in said


# ------------------------------------------------------------------ diverged settings


def diverging(grids: dict, methods: list[str]) -> CompareSettings:
    """Settings where full fine-tuning at learning rate 1e4 diverges on the tiny data."""
    epochs = {"fullft": {"epochs": 3}, "llft": {"epochs": 2}}
    overrides = {m: epochs[m] for m in methods}
    return CompareSettings(
        methods=methods, grid=True, n_boot=5, overrides=overrides, grids=grids
    )


def test_a_grid_survives_a_diverged_setting(start_model):
    external, test = biased_data(300, seed=2), biased_data(200, seed=3)
    settings = diverging({"fullft": {"lr": [1e-3, 1e4], "beta": [0.0]}}, ["fullft"])
    rows = compare(start_model, external, test, settings)
    assert [r.method for r in rows] == ["baseline", "fullft", "threshold_optimizer", "selected"]
    fullft = rows[1]
    assert fullft.failed is None and "failed" not in fullft.to_dict()
    assert fullft.selection.chosen == {"lr": 1e-3, "beta": 0.0, "min_steps": MIN_STEPS}
    tried = fullft.to_dict()["selection"]["tried"]
    assert [t["setting"]["lr"] for t in tried] == [1e-3, 1e4]
    assert "loss became" in tried[1]["failed"] and "held_out_auc" not in tried[1]
    assert fullft.to_dict()["selection"]["failed"] == [
        {"setting": {"lr": 1e4, "beta": 0.0, "min_steps": MIN_STEPS}, "reason": tried[1]["failed"]}
    ]
    assert not math.isnan(fullft.metrics.auc)
    # the failed setting is no candidate
    assert rows[-1].selection.choice["candidates"]["tried"] == 1


def test_a_method_whose_every_setting_diverges_is_a_failed_row(start_model, tmp_path):
    external, test = biased_data(300, seed=2), biased_data(200, seed=3)
    grids = {"fullft": {"lr": [1e4], "beta": [0.0, 0.5]}, "llft": {"lr": [1e-3], "beta": [0.5]}}
    rows = compare(start_model, external, test, diverging(grids, ["fullft", "llft"]))
    methods = ["baseline", "fullft", "llft", "threshold_optimizer", "selected"]
    assert [r.method for r in rows] == methods
    fullft, llft = rows[1], rows[2]
    assert fullft.to_dict()["failed"].startswith("every setting tried failed; the first: ")
    assert "loss became" in fullft.failed
    assert math.isnan(fullft.metrics.auc) and math.isnan(fullft.metrics_tuned.eodds_mean)
    assert fullft.ci is None and fullft.selection.chosen is None
    assert len(fullft.selection.failed) == 2
    assert llft.failed is None and not math.isnan(llft.metrics.auc)  # the others still ran
    # the report still renders and writes a failed row
    from fairtune.reporting.report import compare_table, write_comparison

    assert compare_table(rows, "t").row_count == len(methods)
    settings = diverging(grids, ["fullft", "llft"])
    write_comparison(tmp_path / "out", rows, "t", settings, {})
    assert (tmp_path / "out" / "results.json").exists()


def test_only_divergence_is_recorded_other_errors_stop_the_run(start_model, monkeypatch):
    import fairtune.selection.search

    class Raises:
        def __init__(self, error):
            self.error = error

        def fit(self, *args, **kwargs):
            raise self.error

    external, test = biased_data(300, seed=2), biased_data(200, seed=3)
    settings = CompareSettings(methods=["llft"])
    diverged = TrainingDiverged("phase 'x': the loss became nan in epoch 1")
    raising = lambda name, **config: Raises(diverged)  # noqa: E731
    monkeypatch.setattr(fairtune.selection.search, "get_method", raising)
    rows = compare(start_model, external, test, settings)
    assert rows[1].failed == f"every setting tried failed; the first: {diverged}"
    assert [r.method for r in rows] == ["baseline", "llft", "threshold_optimizer"]  # none to select
    for error in (FairtuneError("bad input"), RuntimeError("shape mismatch")):
        raising = lambda name, e=error, **c: Raises(e)  # noqa: E731
        monkeypatch.setattr(fairtune.selection.search, "get_method", raising)
        with pytest.raises(type(error), match=str(error)):
            compare(start_model, external, test, settings)


# ------------------------------------------------------------------ debias --method auto


def test_debias_auto_keeps_an_unchanged_copy_or_names_the_winner(start_model):
    from fairtune import debias

    external = biased_data(400, seed=2)
    result = debias(
        start_model,
        external,
        method="auto",
        methods=["llft"],
        grid=True,
        overrides={"llft": {"epochs": 2}},
        grids={"llft": {"lr": [1e-3, 1e-2], "beta": [0.5]}},
    )
    selection = result.info["selection"]
    assert result.method == "auto" and result.config["selected"] == selection["method"]
    assert set(result.info["tried"]) == {"llft"} and len(result.info["tried"]["llft"]) == 2
    run = run_seed(start_model, external, CompareSettings(**result.info["compare"]), 0)
    assert selection["reason"] == run.choice.reason  # the same choice as compare's
    params = dict(result.model.named_parameters())
    same = all(torch.equal(p, params[n]) for n, p in start_model.named_parameters())
    assert result.model is not start_model
    if selection["kept_original"]:
        assert same and selection["reason"].startswith(KEPT)
        assert result.config["selected"] == "original" and result.config["setting"] == {}
    else:
        grid = [{"lr": lr, "beta": 0.5, "min_steps": MIN_STEPS} for lr in (1e-3, 1e-2)]
        assert not same and result.config["setting"] in grid
    with pytest.raises(FairtuneError, match="unknown method"):
        debias(start_model, external, method="auto", methods=["nope"])


@pytest.mark.parametrize(("objective", "chosen"), [("eodds", "fullft"), ("eopp", "bmft")])
def test_the_cross_method_rule_chooses_by_the_declared_objective(objective, chosen):
    """bmft's scores lift only group b's negatives: equal TPRs (EOpp near 0) but a wide FPR
    gap; fullft's lift all of group b a little: both gaps small. EOdds prefers fullft,
    equal opportunity bmft."""
    y, g, s = held_rows()
    rows = HeldOutRows(y, g, NAMES)
    criterion = Criterion(objective, tolerance=0.2)
    original = contender("original", y, g, biased(y, g, s))
    equal_tpr = contender("bmft", y, g, np.clip(s + 0.25 * g * (1 - y), 0.001, 0.999))
    small_gaps = contender("fullft", y, g, np.clip(s + 0.08 * g, 0.001, 0.999))
    assert equal_tpr.held.values["eopp"] < small_gaps.held.values["eopp"]
    assert equal_tpr.held.values["eodds_mean"] > small_gaps.held.values["eodds_mean"]
    rule = CrossMethodRule(criterion, holdout=0.3, n_boot=300)
    choice = rule.choose(rows, original, [equal_tpr, small_gaps], seed=0)
    assert choice.method == chosen and choice.improvement.improves
    assert criterion.word in choice.reason and criterion.label in rule.text()
    # the paired bootstrap measured the declared metric
    gaps = {c.method: c.held.values[criterion.key] for c in (original, equal_tpr, small_gaps)}
    assert choice.improvement.estimate == pytest.approx(gaps["original"] - gaps[chosen])
