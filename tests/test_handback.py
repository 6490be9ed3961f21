"""The model handed back: ``debias --method auto --out`` and ``compare --save-models`` write
loadable models with their held-out evidence, which ``predict`` uses; bad budgets and
unwritable folders get one line, exit 2, and nothing written."""

import json

import pandas as pd
import pytest
import torch
from _helpers import biased_data

import fairtune
from fairtune.cli import main
from fairtune.loading import load_for_model
from fairtune.modelio import load_model
from fairtune.models import predict_proba
from fairtune.selection.handback import SavedModels

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--methods", "llft", "fullft", "--set", "llft.epochs=2", "--set", "fullft.epochs=2"]


def _auto_argv(workdir, out, *options):
    argv = ["debias", "--model", str(workdir / "model"), "--method", "auto", "--out", str(out)]
    return [*argv, "--data", str(workdir / "parts" / "external.csv"), *options]


def _predicted(workdir, model_dir, tmp_path) -> pd.Series:
    scores = tmp_path / f"{model_dir.name}-scores.csv"
    test = str(workdir / "parts" / "test.csv")
    assert main(["predict", "--model", str(model_dir), "--data", test, "--out", str(scores)]) == 0
    return pd.read_csv(scores)["score"]


def _check_uses(workdir, model_dir, tmp_path):
    """``predict`` with the written model scores test rows as the loaded model does."""
    model, config = load_model(model_dir)
    test, _ = load_for_model(str(workdir / "parts" / "test.csv"), config)
    expected = predict_proba(model, test).numpy()
    assert _predicted(workdir, model_dir, tmp_path).to_numpy() == pytest.approx(expected, abs=1e-6)


def test_debias_auto_out_writes_the_chosen_model_with_its_evidence(workdir, tmp_path, capsys):
    out = tmp_path / "auto"
    assert main(_auto_argv(workdir, out, *FAST, "--budget", "3")) == 0
    printed = " ".join(capsys.readouterr().out.split())
    saved = json.loads((out / "debias.json").read_text())
    info = saved["info"]
    assert info["compare"]["search"] == "halving" and info["budget"] == 3
    training = info["compare"]["training_rows"]
    assert training == 540 * 3  # the fixture's model: 3 epochs of 540 rows
    assert info["cost_vs_training"] == pytest.approx(info["selection"]["rows"] / training)
    assert 0 < info["cost_vs_training"] <= 3
    rungs = info["rungs"]["fullft"]
    assert [r["share"] for r in rungs] == sorted(r["share"] for r in rungs)
    assert "successive halving" in info["selection"]["rule"]
    evidence = saved["evidence"]
    assert evidence["chosen_on_rows"] and evidence["rows"] > 0
    assert evidence["auc"]["low"] <= evidence["auc"]["high"]
    assert info["kept_original"] == (saved["config"]["selected"] == "original")
    assert "held-out evidence" in printed and "x the original training's" in printed
    _check_uses(workdir, out, tmp_path)


def test_auto_hands_back_the_original_marked_as_kept(start_model, tmp_path):
    external = biased_data(400, seed=2)
    # LLFT re-initialises the head; at a learning rate of 1e-9 it cannot learn it back
    result = fairtune.debias(
        start_model,
        external,
        method="auto",
        methods=["llft"],
        grids={"llft": {"lr": [1e-9], "beta": [0.5]}},
        overrides={"llft": {"epochs": 1}},
        training_rows=10_000,
    )
    assert result.info["kept_original"] and result.config["selected"] == "original"
    assert result.evidence.auc.delta == 0 and result.evidence.objective.delta == 0
    saved = result.save(tmp_path / "kept")
    fresh = type(start_model)(6, (8,))
    loaded, _ = load_model(saved, model=fresh)
    assert torch.equal(predict_proba(loaded, external), predict_proba(start_model, external))


def test_compare_save_models_writes_each_seeds_choice(workdir, tmp_path):
    out, models = tmp_path / "c", tmp_path / "models"
    argv = ["compare", "--model", str(workdir / "model"), "--out", str(out), "--n-boot", "0"]
    argv += ["--external", str(workdir / "parts" / "external.csv")]
    argv += ["--test", str(workdir / "parts" / "test.csv"), "--seeds", "0", "1", *FAST]
    argv += ["--save-models", str(models), "--save-every-method"]
    assert main(argv) == 0
    assert {p.name for p in models.iterdir() if p.is_dir()} == {"0", "1"}
    assert {p.name for p in (models / "0").iterdir()} == {"selected", "llft", "fullft"}
    results = json.loads((out / "results.json").read_text())
    selected = next(r for r in results if r["method"] == "selected" and r["seed"] == 1)
    record = json.loads((models / "1" / "selected" / "debias.json").read_text())
    assert record["config"]["selected"] == selected["config"]["selected"]
    _check_uses(workdir, models / "1" / "selected", tmp_path)
    _check_uses(workdir, models / "0" / "llft", tmp_path)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--budget", "0"], "setting 'budget'"),
        (["--budget", "-1"], "setting 'budget'"),
        (["--budget", "0.01"], "below the first rung of the search"),
    ],
)
def test_bad_budgets_get_one_line(workdir, tmp_path, capsys, options, expected):
    out = tmp_path / "o"
    assert main(_auto_argv(workdir, out, *FAST, *options)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err
    assert not out.exists()


def test_an_unwritable_models_folder_gets_one_line(workdir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = tmp_path / "c"
    argv = ["compare", "--model", str(workdir / "model"), "--out", str(out)]
    argv += ["--external", str(workdir / "parts" / "external.csv")]
    argv += ["--test", str(workdir / "parts" / "test.csv"), *FAST]
    assert main([*argv, "--save-models", str(blocker / "models")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write output" in err
    assert not out.exists() and blocker.read_text() == "not a folder"
    with pytest.raises(fairtune.errors.FairtuneError, match="cannot write"):
        SavedModels(blocker / "models")
