"""The fairness objective as one declared choice: ``--objective eodds|eopp|dp`` reaches the
methods' bias loss, the choices, the table's headline, the plot and the reference row."""

import itertools
import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
from _helpers import biased_data, compare_argv
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.linear_model import LogisticRegression

from fairtune.cli import main
from fairtune.errors import FairtuneError
from fairtune.evaluation.criterion import OBJECTIVES, Criterion, gap_of
from fairtune.evaluation.measurement import VALUE_KEYS, Metrics
from fairtune.evaluation.metrics import METRIC_KEYS, METRICS, binary_metrics
from fairtune.evaluation.postprocess import LabelledScores, threshold_optimizer_reference
from fairtune.methods import method_class
from fairtune.reporting.report import compare_table
from fairtune.selection.records import SearchRecord
from fairtune.selection.results import ResultRow
from fairtune.selection.search import CompareSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_objective_declares_a_gap_metric_and_a_known_bias_loss():
    losses = method_class("swift").config_class.__dataclass_fields__["bias_kind"]
    for o in OBJECTIVES.values():
        declared = next(m for m in METRICS if m.key == o.key)
        assert o.key in METRIC_KEYS and declared.lower_is_better and declared.threshold_dependent
        assert o.bias_kind in losses.metadata["choices"]
        assert gap_of(o.bias_kind) == o.key
    assert gap_of("eodds_signed") == "eodds_mean"
    with pytest.raises(FairtuneError, match="unknown objective"):
        Criterion("eo")
    with pytest.raises(FairtuneError, match="objective"):
        CompareSettings(objective="equal_opportunity")


def test_the_default_criterion_is_todays_rule():
    criterion = CompareSettings().criterion
    assert (criterion.key, criterion.tolerance, criterion.threshold_rule) == (
        "eodds_mean",
        0.01,
        "positive_rate",
    )
    assert CompareSettings(objective="dp", auc_tolerance=0.05).criterion.key == "dp"


@pytest.mark.parametrize(
    ("objective", "constraint"),
    [("eopp", "true_positive_rate_parity"), ("dp", "demographic_parity")],
)
def test_reference_uses_the_objectives_constraint(objective, constraint):
    """Our reference's decisions equal fairlearn's ThresholdOptimizer under the objective's
    constraint, and they shrink that objective's gap."""
    rng = np.random.default_rng(0)
    n = 3000
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.4).astype(int)
    X = np.column_stack([y + 0.8 * g + rng.normal(0, 0.7, n), rng.normal(0, 1, n)])
    half, names = n // 2, ("a", "b")
    lr = LogisticRegression().fit(X[:half], y[:half])
    s = lr.predict_proba(X)[:, 1]
    fit = LabelledScores(s[:half], y[:half], g[:half])
    found = threshold_optimizer_reference(
        fit, s[half:], g[half:], names, seed=3, constraints=constraint
    )
    assert constraint == Criterion(objective).declared.constraint
    named = np.array(names, dtype=object)
    direct = ThresholdOptimizer(
        estimator=lr, constraints=constraint, prefit=True, predict_method="predict_proba"
    ).fit(X[:half], y[:half], sensitive_features=named[g[:half]])
    expected = direct.predict(X[half:], sensitive_features=named[g[half:]], random_state=3)
    np.testing.assert_array_equal(found.decisions, expected)
    key = Criterion(objective).key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = binary_metrics(y[half:], s[half:], g[half:], names)[key]
        after = binary_metrics(y[half:], found.decisions.astype(float), g[half:], names)[key]
    assert after < 0.5 * before


def objective_argv(workdir, out, *options: str) -> list[str]:
    """compare with LLFT and FairPrune, cut short."""
    fast = ["--n-boot", "10", "--set", "llft.epochs=2", "--set", "fairprune.max_rounds=2"]
    return compare_argv(workdir, out, "--methods", "llft", "fairprune", *fast, *options)


@pytest.mark.parametrize(
    ("objective", "label", "constraint"),
    [("eopp", "EOpp", "true_positive_rate_parity"), ("dp", "DP", "demographic_parity")],
)
def test_compare_leads_with_and_chooses_by_the_objective(
    workdir, capsys, objective, label, constraint
):
    out = workdir / f"objective-{objective}"
    assert main(objective_argv(workdir, out, "--objective", objective)) == 0
    printed = capsys.readouterr().out
    headers: list[list[list[str]]] = []  # per table printed, its header lines' cells
    for previous, line in itertools.pairwise(["", *printed.splitlines()]):
        if line.startswith("┃"):
            if not previous.startswith("┃"):
                headers.append([])
            headers[-1].append(line.split("┃"))
    headline, every = headers[0], headers[1]
    assert " ".join(cells[3].strip() for cells in headline).split()[:3] == [label, "at", "t"]
    first_metric = " ".join(cells[2].strip() for cells in every).split()
    assert first_metric == [label, "t", "|", "0.5"]
    assert f"Criterion: objective {objective}" in printed
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())}
    key = Criterion(objective).key
    assert f"constraints='{constraint}'" in rows["threshold_optimizer"]["selection"]["reference"]
    assert rows["llft"]["config"]["bias_kind"] == objective  # the bias loss follows
    assert f"held_out_{key}" in rows["llft"]["selection"]
    assert f"held_out_{key}" in rows["baseline"]["selection"]
    assert key in rows["selected"]["selection"]["best_on_test"]
    settings = json.loads((out / "settings.json").read_text())
    assert settings["compare"]["objective"] == objective
    assert settings["criterion"].startswith(f"objective {objective}")


def test_debias_objective_sets_the_bias_loss_unless_set(workdir, tmp_path):
    base = [
        "debias",
        "--model",
        str(workdir / "model"),
        "--data",
        str(workdir / "parts" / "external.csv"),
        "--method",
        "llft",
        "--set",
        "epochs=1",
        "--objective",
        "dp",
    ]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    record = json.loads((tmp_path / "a" / "debias.json").read_text())
    assert record["config"]["bias_kind"] == "dp"
    assert main([*base, "--out", str(tmp_path / "b"), "--set", "bias_kind=eodds"]) == 0
    record = json.loads((tmp_path / "b" / "debias.json").read_text())
    assert record["config"]["bias_kind"] == "eodds"


def test_fairprune_stops_by_the_gap_of_its_bias_loss(start_model):
    data = biased_data(400, seed=2)
    for kind in ("eopp", "dp"):
        result = method_class("fairprune")(bias_kind=kind, max_rounds=2).fit(start_model, data)
        assert all(gap_of(kind) in h for h in result.history)


def test_table_headline_follows_the_criterion():
    metrics = replace(Metrics.undefined(), **dict.fromkeys(VALUE_KEYS, 0.1), threshold=0.5)
    record = SearchRecord("defaults", {}, [], 0.0)
    row = ResultRow("m", 0, {}, 1.0, 0.5, "positive_rate", metrics, metrics, None, None, record)
    for objective, first in (("eodds", "EOdds (mean)"), ("eopp", "EOpp"), ("dp", "DP")):
        table = compare_table([row], "t", Criterion(objective))
        assert table.columns[1].header.startswith(first)
        assert objective in str(table.caption)
