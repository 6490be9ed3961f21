"""The paired bootstrap of an equalized-odds improvement against an explicit resampling."""

import json
import warnings

import numpy as np
import pytest

from fairtune.errors import FairtuneError
from fairtune.evaluation.metrics import Bootstrap, binary_metrics
from fairtune.evaluation.paired import (
    ScoredModel,
    paired_bootstrap_improvement,
    regret_from_noise,
    resample_weights,
)

NAMES = ["a", "b"]


def make_data(n: int, seed: int = 0):
    """Labels and groups, a biased model (group b scored higher) and a fairer one."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.4).astype(int)
    noise = 0.5 * rng.random(n)
    biased = np.clip(0.35 * y + 0.25 * g + noise, 0.0, 1.0)
    fair = np.clip(0.35 * y + 0.1 + noise, 0.0, 1.0)
    return y, g, biased, fair


def eodds(y, s, g, threshold):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return binary_metrics(y, s, g, NAMES, threshold)["eodds_mean"]


def test_identical_models_differ_by_exactly_zero_in_every_draw():
    y, g, biased, _ = make_data(600)
    model = ScoredModel(biased, 0.5)
    result = paired_bootstrap_improvement(y, g, NAMES, model, model, Bootstrap(n_boot=200))
    assert (result.estimate, result.low, result.high) == (0.0, 0.0, 0.0)
    assert not result.improves


def test_a_clearly_fairer_model_improves_and_the_reverse_does_not():
    y, g, biased, fair = make_data(2000, seed=1)
    a, b = ScoredModel(biased, 0.5), ScoredModel(fair, 0.55)
    forward = paired_bootstrap_improvement(y, g, NAMES, a, b, Bootstrap(n_boot=300, seed=2))
    assert forward.estimate == pytest.approx(
        eodds(y, biased, g, 0.5) - eodds(y, fair, g, 0.55), abs=1e-12
    )
    assert 0.0 < forward.low < forward.estimate < forward.high
    assert forward.improves

    backward = paired_bootstrap_improvement(y, g, NAMES, b, a, Bootstrap(n_boot=300, seed=2))
    assert backward.estimate == pytest.approx(-forward.estimate, abs=1e-12)
    assert backward.high < 0.0 and not backward.improves
    assert json.loads(json.dumps(forward.to_dict()))["improves"] is True


def test_interval_equals_an_explicit_paired_resampling():
    """Same draws as the implementation (one chunk, strata in group x label order)."""
    y, g, biased, fair = make_data(300, seed=3)
    n_boot, seed = 40, 4
    result = paired_bootstrap_improvement(
        y, g, NAMES, ScoredModel(biased, 0.5), ScoredModel(fair, 0.45), Bootstrap(n_boot, seed=seed)
    )
    rng = np.random.default_rng(seed)
    cells = 2 * g + y
    strata = [np.flatnonzero(cells == c) for c in range(4)]
    picks = [rows[rng.integers(len(rows), size=(n_boot, len(rows)))] for rows in strata]
    diffs = []
    for i in range(n_boot):
        idx = np.concatenate([p[i] for p in picks])
        diffs.append(
            eodds(y[idx], biased[idx], g[idx], 0.5) - eodds(y[idx], fair[idx], g[idx], 0.45)
        )
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-12)
    assert result.n_boot == n_boot


def test_same_seed_same_interval():
    y, g, biased, fair = make_data(400, seed=5)
    a, b = ScoredModel(biased, 0.5), ScoredModel(fair, 0.5)
    first = paired_bootstrap_improvement(y, g, NAMES, a, b, Bootstrap(n_boot=50, seed=7))
    assert paired_bootstrap_improvement(y, g, NAMES, a, b, Bootstrap(n_boot=50, seed=7)) == first
    assert paired_bootstrap_improvement(y, g, NAMES, a, b, Bootstrap(n_boot=50, seed=8)) != first


def test_every_stratum_keeps_its_size_in_every_draw():
    strata = [np.array([0, 3, 4]), np.array([1]), np.array([2, 5])]
    w = resample_weights(strata, 6, 25, np.random.default_rng(0))
    for rows in strata:
        assert (w[:, rows].sum(axis=1) == len(rows)).all()
    assert len({tuple(r) for r in w[:, [0, 3, 4]]}) > 1  # draws differ


def test_refuses_bad_input():
    y, g, biased, _ = make_data(50)
    good = ScoredModel(biased, 0.5)
    with pytest.raises(FairtuneError, match="n_boot"):
        paired_bootstrap_improvement(y, g, NAMES, good, good, Bootstrap(n_boot=0))
    with pytest.raises(FairtuneError, match="threshold"):
        paired_bootstrap_improvement(y, g, NAMES, good, ScoredModel(biased, 0.0))
    with pytest.raises(FairtuneError, match="differ in length"):
        paired_bootstrap_improvement(y, g, NAMES, good, ScoredModel(biased[:-1], 0.5))


# ------------------------------------------------------- the regret the test's noise shows


def test_regret_from_noise_equals_an_explicit_resampling():
    """The same draws, each model's EOdds from binary_metrics on the drawn rows, the first
    model's minus the lowest, averaged."""
    y, g, biased, fair = make_data(300, seed=6)
    rng = np.random.default_rng(1)
    other = np.clip(fair + 0.05 * rng.standard_normal(len(y)), 0.0, 1.0)
    models = [(fair, 0.45), (other, 0.5), (biased, 0.5)]
    n_boot, seed = 30, 7
    result = regret_from_noise(
        y, g, NAMES, [ScoredModel(s, t) for s, t in models], Bootstrap(n_boot, seed=seed)
    )
    draw = np.random.default_rng(seed)
    strata = [np.flatnonzero(2 * g + y == c) for c in range(4)]
    picks = [rows[draw.integers(len(rows), size=(n_boot, len(rows)))] for rows in strata]
    regrets = []
    for i in range(n_boot):
        idx = np.concatenate([p[i] for p in picks])
        gaps = [eodds(y[idx], s[idx], g[idx], t) for s, t in models]
        regrets.append(gaps[0] - min(gaps))
    assert result == pytest.approx(np.mean(regrets), abs=1e-12)
    assert result > 0  # the two fair models trade places in some draws


def test_regret_from_noise_is_zero_alone_or_far_ahead():
    y, g, biased, fair = make_data(2000, seed=8)
    alone = regret_from_noise(y, g, NAMES, [ScoredModel(biased, 0.5)])
    ahead = regret_from_noise(y, g, NAMES, [ScoredModel(fair, 0.55), ScoredModel(biased, 0.5)])
    assert alone == 0.0 and ahead == 0.0
    with pytest.raises(FairtuneError, match="at least one model"):
        regret_from_noise(y, g, NAMES, [])
    one = [ScoredModel(biased, 0.5)]
    with pytest.raises(FairtuneError, match="n_boot must be at least 1"):
        regret_from_noise(y, g, NAMES, one, Bootstrap(n_boot=0))
    with pytest.raises(FairtuneError, match="unknown metric 'auroc'"):
        regret_from_noise(y, g, NAMES, one, key="auroc")
