"""Typed metrics: their fields are the declared metrics, their JSON form is the one
results.json has always had, and a JSON round trip (NaN written as null) gives them back."""

import json
import math
import warnings
from dataclasses import fields

import numpy as np
import pytest
import torch

from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.evaluation.evaluate import evaluate_scores
from fairtune.evaluation.measurement import VALUE_KEYS, GroupMetrics, Intervals, Metrics
from fairtune.evaluation.metrics import METRIC_KEYS, METRICS, FairnessWarning, binary_metrics
from fairtune.evaluation.operating import abroca, degenerate, operating_points
from fairtune.io import clean

STRUCTURE = {"threshold", "n", "by_group", "operating_points", "degenerate", "degenerate_groups"}


def scored(n_groups: int, one_class_group: bool = False):
    """Labels, scores and groups; the last group all negative when ``one_class_group``."""
    rng = np.random.default_rng(3)
    g = rng.integers(n_groups, size=600)
    y = (rng.random(600) < 0.3 + 0.1 * g).astype(np.float32)
    if one_class_group:
        y[g == n_groups - 1] = 0
    s = np.clip(0.5 * y + 0.3 * rng.random(600) + 0.05 * g, 0, 1).astype(np.float32)
    names = [f"g{k}" for k in range(n_groups)]
    data = FairData(torch.tensor(s)[:, None], torch.tensor(y), torch.tensor(g), names)
    return data, y, s, g, names


def test_the_fields_are_the_declared_metrics():
    scalars = {f.name for f in fields(Metrics)} - STRUCTURE
    assert scalars == set(VALUE_KEYS) == {m.key for m in METRICS if m.overall or m.curve}
    assert [f.name for f in fields(GroupMetrics)] == [m.key for m in METRICS if m.per_group]


@pytest.mark.parametrize("one_class_group", [False, True])
def test_json_form_is_binary_metrics_with_the_verdicts(one_class_group):
    data, y, s, g, names = scored(3, one_class_group)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FairnessWarning)
        metrics = evaluate_scores(data, torch.tensor(s), 0.45).metrics
        # the form results.json held before the metrics were typed, built independently
        expected = binary_metrics(y, s, g, names, 0.45)
        points = operating_points(y, s, g, names, low=0.01, high=0.99)
        flag = degenerate(s, g, names, 0.45, low=0.01, high=0.99)
        expected.update(
            operating_points={p.key: p.to_dict() for p in points},
            abroca=abroca(y, s, g, names),
            degenerate=flag.flagged,
            degenerate_groups=list(flag.groups),
        )
    saved = metrics.to_dict()
    assert json.dumps(clean(saved)) == json.dumps(clean(expected))  # same keys, order, values
    if one_class_group:
        assert math.isnan(metrics.by_group["g2"].tpr)
    read = Metrics.from_dict(json.loads(json.dumps(clean(saved))))  # NaN as null and back
    assert json.dumps(clean(read.to_dict())) == json.dumps(clean(saved))
    assert isinstance(read.by_group["g0"], GroupMetrics) and read.by_group["g0"].n > 0


def test_a_metric_is_read_by_its_declared_key_only():
    data, _, s, *_ = scored(2)
    found = evaluate_scores(data, torch.tensor(s), 0.5, n_boot=10)
    assert found.metrics.value("eopp") == found.metrics.eopp
    low, high = found.intervals.of("eodds_mean")
    assert low <= high
    assert found.intervals.of("abroca") is None  # the bootstrap does not draw it
    for read in (found.metrics.value, found.intervals.of):
        with pytest.raises(FairtuneError, match=r"unknown metric 'eodds'.*eodds_mean"):
            read("eodds")


def test_undefined_metrics_are_nan_and_read_back():
    none = Metrics.undefined()
    assert all(math.isnan(none.value(key)) for key in VALUE_KEYS)
    assert none.n == 0 and not none.by_group and not none.degenerate
    read = Metrics.from_dict(json.loads(json.dumps(clean(none.to_dict()))))
    assert all(math.isnan(read.value(key)) for key in VALUE_KEYS)
    assert Intervals.from_dict(None) is None
    assert set(Intervals.from_dict({"auc": [0.1, None]}).to_dict()) == {"auc"}
    assert set(METRIC_KEYS) < set(VALUE_KEYS)


def test_results_written_before_a_metric_or_the_verdicts_existed_still_read():
    data, _, s, *_ = scored(2)
    saved = json.loads(json.dumps(clean(evaluate_scores(data, torch.tensor(s)).metrics.to_dict())))
    for point in saved["operating_points"].values():
        del point["eopp"], point["dp"]  # operating points before they listed every gap
    read = Metrics.from_dict(saved)
    point = read.operating_points["specificity_0.8"]
    assert math.isnan(point.gaps["eopp"]) and point.gaps["eodds_mean"] == point.eodds_mean
    for key in ("operating_points", "abroca", "degenerate", "degenerate_groups", "eopp"):
        del saved[key]  # metrics before the verdicts, and before EOpp
    read = Metrics.from_dict(saved)
    assert math.isnan(read.abroca) and math.isnan(read.eopp) and not read.operating_points
    assert read.auc == saved["auc"] and not read.degenerate
