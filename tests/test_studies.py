"""The studies: each fits exactly the points asked for, records every one, draws its figure."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _helpers import biased_data
from scipy import stats
from torch import nn

from fairtune.cli import main
from fairtune.data import holdout_split
from fairtune.evaluation.metrics import Bootstrap, bootstrap_ci
from fairtune.models import predict_proba
from fairtune.reporting.report import DEGENERATE
from fairtune.studies import StudySettings, run_study, study_points
from fairtune.studies.runner import START, stratified_share
from fairtune.studies.summary import BOOTSTRAP, NO_INTERVAL, T_OVER_SEEDS, interval
from fairtune.studies.tables import summary_tables

ONE_EPOCH = {
    "bmft": {"impair_epochs": 1, "repair_epochs": 1},
    "random_mask": {"impair_epochs": 1, "repair_epochs": 1},
    "swift": {"step1_epochs": 1, "step2_epochs": 1},
    "fullft": {"epochs": 1},
    "llft": {"epochs": 1},
}


@pytest.fixture(scope="module")
def setup(one_thread):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1))
    train = biased_data(300, 0, skew=0.3)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(
            model(train.inputs).squeeze(-1), train.labels
        )
        loss.backward()
        opt.step()
    return model, biased_data(240, 1), biased_data(200, 2)


def _settings(**given) -> StudySettings:
    return StudySettings(seeds=[0, 1], overrides=ONE_EPOCH, n_boot=20, **given)


def _fitted(study) -> list[dict]:
    return [r for r in study.records if r["series"] != START]


def test_keep_study_fits_each_k_for_bmft_and_the_random_mask(setup, tmp_path):
    model, external, test = setup
    study = run_study("keep", model, external, test, _settings(keeps=[0.1, 0.5, 1.0]))
    fitted = _fitted(study)
    for seed in (0, 1):
        points = {(r["series"], r["x"]) for r in fitted if r["seed"] == seed}
        assert points == {(m, k) for m in ("bmft", "random_mask") for k in (0.1, 0.5, 1.0)}
    assert sum(r["series"] == START for r in study.records) == 2  # the start, once per seed
    assert all(r["setting"]["keep"] == r["x"] and r["failed"] is None for r in fitted)
    # the held-out threshold is the one the test metrics at t use; at 0.5 differs from it
    for r in fitted:
        assert r["test"]["test"]["at_t"]["threshold"] == pytest.approx(r["threshold"])
        assert r["test"]["test"]["at_0.5"]["threshold"] == 0.5
    study.write(tmp_path / "keep", "keep", {})
    saved = json.loads((tmp_path / "keep" / "study.json").read_text())
    assert len(saved["records"]) == len(study.records) == 2 * (1 + 6)
    assert (tmp_path / "keep" / "study.png").stat().st_size > 10_000


def test_steps_study_runs_each_step_alone_and_together(setup, tmp_path):
    model, external, test = setup
    tests = {"in": test, "out": biased_data(150, 3, noise=(0.2, 0.8))}
    settings = StudySettings(seeds=[0], overrides=ONE_EPOCH, n_boot=20)
    study = run_study("steps", model, external, tests, settings)
    by_step = {(r["series"], r["x"]): r for r in _fitted(study)}
    assert set(by_step) == {
        ("bmft", "impair + repair"),
        ("bmft", "impair only"),
        ("bmft", "repair only"),
        ("swift", "step 1 + 2"),
        ("swift", "step 1 only"),
        ("swift", "step 2 only"),
        ("swift", "step 2 only, no head reset"),
    }
    assert all(set(r["test"]) == {"in", "out"} for r in by_step.values())
    start = next(r for r in study.records if r["series"] == START)
    # impair only keeps the starting head and one epoch at lr 1e-4 barely moves the backbone;
    # step 1 only likewise: the starting model's AUC stays (a head reset would change it)
    assert by_step[("bmft", "repair only")]["setting"] == {"impair_epochs": 0}
    assert by_step[("swift", "step 1 only")]["variant"] == "swift_no_head_reset"
    auc = {k: r["test"]["in"]["at_0.5"]["auc"] for k, r in by_step.items()}
    start_auc = start["test"]["in"]["at_0.5"]["auc"]
    assert auc[("bmft", "impair only")] == pytest.approx(start_auc, abs=0.01)
    assert auc[("swift", "step 1 only")] == pytest.approx(start_auc, abs=0.01)
    study.write(tmp_path / "steps", "steps", {})
    assert (tmp_path / "steps" / "study.png").is_file()


def test_external_size_and_lr_points_are_the_ones_asked_for():
    settings = StudySettings(methods=["bmft", "swift", "llft"], sizes=[0.1, 1.0], lrs=[1e-3, 1e-1])
    sizes = study_points("external-size", settings)
    assert [(p.series, p.size) for p in sizes] == [
        (m, s) for m in ("bmft", "swift", "llft") for s in (0.1, 1.0)
    ]
    lrs = {(p.series, p.x): p.config for p in study_points("lr", settings)}
    series = {s for s, _ in lrs}
    assert series == {
        "bmft impair_lr",
        "bmft repair_lr",
        "swift step1_lr (sgd)",
        "swift step1_lr (adam)",
        "swift step2_lr",
        "llft lr",
    }
    assert lrs[("swift step1_lr (adam)", 1e-1)] == {"step1_optimizer": "adam", "step1_lr": 1e-1}
    assert lrs[("bmft repair_lr", 1e-3)] == {"repair_lr": 1e-3}
    assert study_points("mask", settings) == []


def test_external_size_subsamples_the_fit_part(setup):
    model, external, test = setup
    settings = StudySettings(seeds=[0], methods=["llft"], sizes=[0.25, 1.0], overrides=ONE_EPOCH)
    study = run_study("external-size", model, external, test, settings)
    assert [(r["series"], r["x"]) for r in _fitted(study)] == [("llft", 0.25), ("llft", 1.0)]
    fit = holdout_split(external, settings.holdout, 0)[0]
    part = stratified_share(fit, 0.25, 0)
    assert len(part) == pytest.approx(0.25 * len(fit), abs=4)  # rounding per cell
    assert (part.cell_counts() > 0).all()


def test_lr_study_fits_each_learning_rate_asked_for(setup):
    model, external, test = setup
    settings = StudySettings(seeds=[0], methods=["llft"], lrs=[1e-3, 1e-1], overrides=ONE_EPOCH)
    study = run_study("lr", model, external, test, settings)
    fitted = _fitted(study)
    assert [(r["series"], r["x"], r["setting"]) for r in fitted] == [
        ("llft lr", 1e-3, {"lr": 1e-3}),
        ("llft lr", 1e-1, {"lr": 1e-1}),
    ]
    aucs = [r["test"]["test"]["at_0.5"]["auc"] for r in fitted]
    assert aucs[0] != aucs[1]  # the learning rate reached the fit


def test_mask_study_has_a_row_per_layer(setup, tmp_path):
    model, external, test = setup
    study = run_study("mask", model, external, test, StudySettings(seeds=[0, 1]))
    assert [r["seed"] for r in study.records] == [0, 1]
    record = study.records[0]
    names = [n for n, _ in model.named_parameters()]
    assert [row["layer"] for row in record["layers"]] == names
    backbone, head = record["layers"][:2], record["layers"][2:]
    assert all(row["bmft_density_batch"] is not None for row in backbone)
    assert all(row["bmft_density_batch"] is None for row in head)  # BMFT masks the backbone
    assert record["overall"]["bmft_density_batch"] == pytest.approx(0.5, abs=0.02)
    assert record["overall"]["random_density"] == pytest.approx(0.5, abs=0.02)
    assert sum(record["swift_histogram"]["counts"]) == sum(p.numel() for p in model.parameters())
    study.write(tmp_path / "mask", "mask", {})
    assert (tmp_path / "mask" / "study.png").stat().st_size > 10_000


def test_cli_study_on_german(tmp_path, capsys):
    model = str(tmp_path / "m")
    assert main(["train", "--data", "german", "--out", model, "--epochs", "2"]) == 0
    out = tmp_path / "study"
    argv = ["study", "keep", "--model", model, "--external", "german:external"]
    argv += ["--test", "german:test", "--test", "german:train", "--out", str(out)]
    argv += ["--keeps", "0.25", "1.0", "--n-boot", "10"]
    argv += ["--set", "bmft.impair_epochs=1", "bmft.repair_epochs=1"]
    argv += ["random_mask.impair_epochs=1", "random_mask.repair_epochs=1"]
    assert main(argv) == 0
    saved = json.loads((out / "study.json").read_text())
    assert saved["kind"] == "keep"
    assert saved["tests"] == {"german:test": "german:test", "german:train": "german:train"}
    assert {(r["series"], r["x"]) for r in saved["records"]} == {
        (START, None),
        ("bmft", 0.25),
        ("bmft", 1.0),
        ("random_mask", 0.25),
        ("random_mask", 1.0),
    }
    assert saved["settings"]["n_boot"] == 10
    assert {(p["series"], p["metric"]) for p in saved["summary"]} == {
        (s, m) for s in (START, "bmft", "random_mask") for m in ("eodds_mean", "auc")
    } and len(saved["summary"]) == 2 * 5 * 2  # two test sets
    assert (out / "study.png").is_file()
    printed = capsys.readouterr().out
    assert "study 'keep': 5 records" in printed and "test set 'german:train'" in printed


def test_interval_is_the_t_interval_over_seeds_or_one_seeds_bootstrap():
    values = [0.2, 0.35, 0.1, math.nan]  # a failed seed is left out
    found = interval(values)
    sem = stats.sem([0.2, 0.35, 0.1])
    low, high = stats.t.interval(0.95, 2, loc=(0.2 + 0.35 + 0.1) / 3, scale=sem)
    assert (found.low, found.high, found.n_seeds) == (pytest.approx(low), pytest.approx(high), 3)
    assert found.kind == T_OVER_SEEDS
    one = interval([0.3], [0.25, 0.4])
    assert (one.mean, one.low, one.high, one.kind) == (0.3, 0.25, 0.4, BOOTSTRAP)
    assert interval([0.3]).kind == NO_INTERVAL and math.isnan(interval([0.3]).low)
    assert interval([math.nan]).n_seeds == 0


def test_each_point_has_its_bootstrap_interval_and_the_summary_its_t_interval(setup):
    model, external, test = setup
    settings = _settings(keeps=[0.5])
    study = run_study("keep", model, external, test, settings)
    start = next(r for r in study.records if r["series"] == START and r["seed"] == 1)
    # the starting model's interval is the bootstrap of its test scores at its threshold
    direct = bootstrap_ci(
        test.labels.numpy(),
        predict_proba(model, test).numpy(),
        test.groups.numpy(),
        test.group_names,
        threshold=start["threshold"],
        bootstrap=Bootstrap(n_boot=20, seed=1),
    )
    assert start["test"]["test"]["ci_at_t"] == {k: direct[k] for k in ("eodds_mean", "auc")}
    bmft = [r for r in study.records if r["series"] == "bmft"]
    eodds = [r["test"]["test"]["at_t"]["eodds_mean"] for r in bmft]
    summary = {(p.series, p.x, p.metric): p.interval for p in study.summary()}
    assert len(summary) == 3 * 2  # start, bmft, random_mask; two metrics
    found = summary[("bmft", 0.5, "eodds_mean")]
    half = stats.t.ppf(0.975, 1) * stats.sem(eodds)
    assert found.mean == pytest.approx(sum(eodds) / 2)
    assert found.low == pytest.approx(found.mean - half)
    assert found.high == pytest.approx(found.mean + half)


def test_one_seed_draws_the_bootstrap_interval_and_no_resamples_none(setup, tmp_path):
    model, external, test = setup
    one = StudySettings(seeds=[3], keeps=[1.0], overrides=ONE_EPOCH, n_boot=20)
    study = run_study("keep", model, external, test, one)
    record = next(r for r in study.records if r["series"] == "bmft")
    auc = next(p.interval for p in study.summary() if p.series == "bmft" and p.metric == "auc")
    assert auc.kind == BOOTSTRAP and [auc.low, auc.high] == record["test"]["test"]["ci_at_t"]["auc"]
    assert auc.low <= auc.mean <= auc.high
    study.write(tmp_path / "one", "one seed", {})
    saved = json.loads((tmp_path / "one" / "study.json").read_text())
    assert saved["summary"][0]["interval"]["kind"] == BOOTSTRAP
    none = run_study("keep", model, external, test, StudySettings(**{**one.__dict__, "n_boot": 0}))
    assert all(r["test"]["test"]["ci_at_t"] is None for r in none.records)
    assert {p.interval.kind for p in none.summary()} == {NO_INTERVAL}
    none.write(tmp_path / "none", "no resamples", {})
    assert (tmp_path / "none" / "study.png").is_file()


def test_a_point_degenerate_at_t_is_counted_and_marked(setup, tmp_path):
    model, external, test = setup
    study = run_study("keep", model, external, test, _settings(keeps=[0.5]))
    bmft = [r for r in study.records if r["series"] == "bmft"]
    assert all(r["test"]["test"]["at_t"]["degenerate"] is False for r in bmft)  # as measured
    bmft[0]["test"]["test"]["at_t"]["degenerate"] = True  # as if one seed collapsed a group
    counted = {(p.series, p.metric): p.degenerate for p in study.summary()}
    assert counted[("bmft", "eodds_mean")] == 1 and counted[("random_mask", "eodds_mean")] == 0
    (table,) = summary_tables(study.summary())
    rows = dict(zip(table.columns[0]._cells, table.columns[3]._cells, strict=True))
    assert rows["bmft"].endswith(f"{DEGENERATE} 1/2") and DEGENERATE not in rows["random_mask"]
    assert "degenerate" in str(table.caption)
    study.write(tmp_path / "marked", "one degenerate seed", {})
    saved = json.loads((tmp_path / "marked" / "study.json").read_text())
    assert [p["degenerate"] for p in saved["summary"] if p["series"] == "bmft"] == [1, 1]
