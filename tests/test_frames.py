"""Results as a DataFrame, read back from results.json; the reprs a notebook shows."""

import math

import pandas as pd
import pytest
from _helpers import biased_data

import fairtune
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.measurement import VALUE_KEYS
from fairtune.methods import DebiasResult
from fairtune.reporting import report, tables
from fairtune.selection.comparison import CompareSettings, compare


@pytest.fixture(scope="module")
def compared(start_model, one_thread):
    external, test = biased_data(300, seed=2), biased_data(300, seed=3)
    settings = CompareSettings(
        methods=["llft"], seeds=[0, 1], n_boot=20, overrides={"llft": {"min_steps": 5}}
    )
    return compare(start_model, external, {"a": test, "b": biased_data(200, seed=4)}, settings)


def test_frame_is_tidy_with_every_metric_at_both_thresholds(compared):
    frame = fairtune.results_frame(compared)
    assert len(frame) == len(compared)
    keys = list(zip(frame.method, frame.seed, frame.test_set, strict=True))
    assert len(set(keys)) == len(keys)  # one row per method, seed and test set
    assert set(frame.test_set) == {"a", "b"}
    for key in VALUE_KEYS:
        for where in ("0.5", "t"):
            assert {f"{key}@{where}", f"{key}@{where}_low", f"{key}@{where}_high"} <= set(
                frame.columns
            )

    def same(a, b):
        return a == b or (math.isnan(a) and math.isnan(b))  # the reference row has no AUC

    for r, (_, line) in zip(compared, frame.iterrows(), strict=True):
        assert same(line["eodds_mean@t"], r.metrics_tuned.eodds_mean)
        assert same(line["auc@0.5"], r.metrics.auc)
        if r.ci_tuned:
            low, high = r.ci_tuned.of("eodds_mean")
            assert (line["eodds_mean@t_low"], line["eodds_mean@t_high"]) == (low, high)
            assert low <= line["eodds_mean@t"] <= high or math.isnan(low)
        assert line["threshold"] == r.threshold


def test_frame_round_trips_results_json(compared, tmp_path):
    out = tmp_path / "cmp"
    report.write_comparison(out, compared, "title", CompareSettings(methods=["llft"]), {})
    loaded = fairtune.load_results(out)
    assert [r.to_dict().keys() for r in loaded] == [r.to_dict().keys() for r in compared]
    pd.testing.assert_frame_equal(
        fairtune.results_frame(loaded), fairtune.results_frame(compared), check_exact=False
    )


def test_load_results_refuses_another_file(tmp_path):
    (tmp_path / "results.json").write_text('{"not": "rows"}')
    with pytest.raises(fairtune.errors.FairtuneError, match=r"not a results\.json"):
        fairtune.load_results(tmp_path)


def test_reprs_say_what_is_inside(compared, start_model):
    data = biased_data(300, seed=2)
    text = repr(data)
    assert text.startswith("FairData(300 rows, inputs (300, 6) float32")
    for g, name in enumerate(data.group_names):
        mine = data.labels[data.groups == g]
        assert f"{name}: {len(mine)} rows, {float(mine.mean()):.0%} positive" in text
    row = compared[1]
    text = repr(row)
    assert text.startswith(f"ResultRow({row.method}, seed 0, test a: AUC {row.metrics.auc:.3f}")
    assert f"eodds_mean {row.metrics_tuned.eodds_mean:.3f}" in text
    result = DebiasResult("swift", start_model, {"beta": 0.1}, [], info={"selection": {}})
    text = repr(result)
    assert text.startswith("DebiasResult(swift, settings {'beta': 0.1}, 0.0 s")
    assert "no held-out evidence" in text  # with evidence: tests/test_evidence.py


def test_report_md_reads_on_its_own(compared, tmp_path):
    out = tmp_path / "cmp"
    settings = CompareSettings(methods=["llft"], seeds=[0, 1], n_boot=20)
    report.write_comparison(out, compared, "my model", settings, {"model": "m/"})
    text = (out / "report.md").read_text()
    assert text.startswith("# my model\n")
    assert "- methods: llft; seeds: [0, 1]" in text
    assert "- threshold t: " + settings.threshold_text() in text
    for name in ("a", "b"):
        assert f"## Headline (test set {name})" in text
        plot = report.plot_files(["a", "b"])[name]
        assert f"]({plot})" in text and (out / plot).is_file()
    assert "| method | AUC | EOdds (mean) at t [95% interval] | ΔAUC | verdict |" in text
    for line in tables.headlines([r for r in compared if r.test_set == "a"], Criterion()):
        assert "| " + " | ".join(line.cells()) + " |" in text
    for r in compared:
        if r.method == "selected":
            assert r.selection.reason in text  # the selection sentence
    assert "kept {}" not in text and "## Every metric (test set b)" in text  # no search: none
