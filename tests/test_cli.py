"""The command line: the whole flow on a small table, and one clear line for bad input."""

import json

import pandas as pd
import pytest
import torch
from _helpers import compare_argv

from fairtune.cli import main
from fairtune.evaluation.evaluate import evaluate_model
from fairtune.evaluation.metrics import METRIC_KEYS
from fairtune.io import MARKER
from fairtune.methods import REGISTRY
from fairtune.modelio import load_model
from fairtune.tabular import TabularPreprocessor, frame_to_data


def test_split_writes_three_disjoint_parts(workdir):
    parts = {p: pd.read_csv(workdir / "parts" / f"{p}.csv") for p in ("train", "external", "test")}
    assert sum(len(p) for p in parts.values()) == 900
    assert len(parts["train"]) == 540
    joined = pd.concat(parts.values())
    assert not joined.duplicated().any()


def test_evaluate_json_matches_the_library(workdir, capsys):
    out = workdir / "eval.json"
    code = main(
        [
            "evaluate",
            "--model",
            str(workdir / "model"),
            "--data",
            str(workdir / "parts" / "test.csv"),
            "--json",
            str(out),
            "--n-boot",
            "20",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Female" in printed and "EOdds (mean)" in printed
    saved = json.loads(out.read_text())
    assert set(METRIC_KEYS) <= set(saved["metrics"])
    assert set(saved["metrics"]["by_group"]) == {"Female", "Male"}
    model, config = load_model(workdir / "model")
    test = frame_to_data(
        pd.read_csv(workdir / "parts" / "test.csv"),
        "y",
        ["sex"],
        TabularPreprocessor.from_dict(config.preprocessing),
        config.group_names,
    )
    direct = evaluate_model(model, test).metrics
    for key in METRIC_KEYS:
        assert saved["metrics"][key] == pytest.approx(direct.value(key), nan_ok=True)
    lo, hi = saved["ci"]["auc"]
    assert lo <= direct.auc <= hi


def test_debias_writes_model_mask_and_history(workdir):
    out = workdir / "swift"
    code = main(
        [
            "debias",
            "--model",
            str(workdir / "model"),
            "--data",
            str(workdir / "parts" / "external.csv"),
            "--method",
            "swift",
            "--out",
            str(out),
            "--set",
            "step1_epochs=2",
            "--set",
            "step2_epochs=2",
        ]
    )
    assert code == 0
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "model.safetensors",
        "mask.safetensors",
        "debias.json",
        MARKER,
    }
    record = json.loads((out / "debias.json").read_text())
    assert record["method"] == "swift" and record["config"]["step1_epochs"] == 2
    assert [h["phase"] for h in record["history"]] == ["step1"] * 2 + ["step2"] * 2
    load_model(out)




def test_compare_writes_json_csv_and_plot(workdir, capsys):
    out = workdir / "cmp"
    code = main(
        compare_argv(
            workdir,
            out,
            "--methods",
            "llft",
            "bmft",
            "--n-boot",
            "10",
            "--set",
            "bmft.impair_epochs=1",
            "--set",
            "bmft.repair_epochs=1",
            "--set",
            "llft.epochs=2",
        )
    )
    assert code == 0
    rows = json.loads((out / "results.json").read_text())
    methods = ["baseline", "llft", "bmft", "threshold_optimizer", "selected"]
    assert [r["method"] for r in rows] == methods
    assert rows[2]["config"]["impair_epochs"] == 1
    for row in rows:
        assert {
            "method",
            "seed",
            "config",
            "wall_time_s",
            "threshold",
            "metrics",
            "metrics_tuned",
        } <= set(row)
    assert (out / "fairness_vs_auc.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(out / "results.csv")) == len(methods)
    assert "EOdds (mean)" in capsys.readouterr().out


def _error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda df: df.drop(columns="y"), "label column(s) ['y'] not in the data"),
        (lambda df: df.assign(sex="Female"), "only one group"),
        (lambda df: df.assign(y=df.y.where(df.index != 4)), "missing values"),
        (lambda df: df.assign(x1=df.x1.where(df.index != 7)), "'x1' has 1 missing"),
        (lambda df: df.assign(y=df.y.map({0: "no", 1: "yes"})), "--positive"),
    ],
)
def test_bad_tables_get_one_line(workdir, capsys, tmp_path, mutate, expected):
    table = mutate(pd.read_csv(workdir / "table.csv"))
    table.to_csv(tmp_path / "bad.csv", index=False)
    err = _error_line(
        capsys,
        [
            "train",
            "--data",
            str(tmp_path / "bad.csv"),
            "--label",
            "y",
            "--sensitive",
            "sex",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert expected in err
    assert not (tmp_path / "m").exists()


def test_unreadable_and_missing_files(workdir, capsys, tmp_path):
    (tmp_path / "binary.csv").write_bytes(b"\x00\xff\xfe\x00garbage")
    err = _error_line(
        capsys,
        [
            "train",
            "--data",
            str(tmp_path / "binary.csv"),
            "--label",
            "y",
            "--sensitive",
            "sex",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert "cannot read" in err
    err = _error_line(
        capsys,
        ["evaluate", "--model", str(tmp_path / "none"), "--data", str(workdir / "table.csv")],
    )
    assert "not a fairtune model directory" in err


def test_mismatched_checkpoint(workdir, capsys, tmp_path):
    import shutil

    shutil.copytree(workdir / "model", tmp_path / "model")
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    cfg["arch"]["hidden"] = [5]
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    err = _error_line(
        capsys,
        ["evaluate", "--model", str(tmp_path / "model"), "--data", str(workdir / "table.csv")],
    )
    assert "does not match the architecture" in err


def test_output_never_overwrites_an_input(workdir, capsys):
    before = (workdir / "table.csv").read_bytes()
    err = _error_line(
        capsys,
        [
            "evaluate",
            "--model",
            str(workdir / "model"),
            "--data",
            str(workdir / "table.csv"),
            "--json",
            str(workdir / "table.csv"),
        ],
    )
    assert "would overwrite the input" in err
    err = _error_line(
        capsys,
        [
            "debias",
            "--model",
            str(workdir / "model"),
            "--data",
            str(workdir / "table.csv"),
            "--out",
            str(workdir / "model"),
        ],
    )
    assert "would overwrite the input" in err
    assert (workdir / "table.csv").read_bytes() == before


def test_unknown_setting(workdir, capsys, tmp_path):
    err = _error_line(
        capsys,
        [
            "debias",
            "--model",
            str(workdir / "model"),
            "--data",
            str(workdir / "table.csv"),
            "--out",
            str(tmp_path / "o"),
            "--set",
            "nonsense=1",
        ],
    )
    assert "has no setting 'nonsense'" in err


def test_help_explains_every_command(capsys):
    for name in ("split", "train", "evaluate", "methods", "debias", "compare", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "default" in text or name == "methods"


def test_builtin_data_by_name(tmp_path):
    assert main(["train", "--data", "german", "--out", str(tmp_path / "g"), "--epochs", "2"]) == 0
    _, config = load_model(tmp_path / "g")
    assert config.label == "credit_risk" and config.group_names == ["female", "male"]


def test_own_checkpoint_is_imported_and_a_wrong_one_refused(workdir, tmp_path, capsys):
    import torch

    model, _ = load_model(workdir / "model")
    torch.save(model.state_dict(), tmp_path / "own.pt")
    args = [
        "train",
        "--data",
        str(workdir / "parts" / "train.csv"),
        "--label",
        "y",
        "--sensitive",
        "sex",
        "--epochs",
        "0",
    ]
    assert (
        main([*args, "--out", str(tmp_path / "imported"), "--checkpoint", str(tmp_path / "own.pt")])
        == 0
    )
    imported, _ = load_model(tmp_path / "imported")
    assert all(
        torch.equal(a, b)
        for a, b in zip(imported.state_dict().values(), model.state_dict().values(), strict=True)
    )
    err = _error_line(
        capsys,
        [
            *args,
            "--hidden",
            "7",
            "--out",
            str(tmp_path / "bad"),
            "--checkpoint",
            str(tmp_path / "own.pt"),
        ],
    )
    assert "does not match the architecture" in err


def test_compare_grid_set_narrows_the_search(workdir):
    out = workdir / "cmp-grid"
    argv = compare_argv(
        workdir,
        out,
        "--methods",
        "llft",
        "--n-boot",
        "10",
        "--set",
        "llft.epochs=1",
        "--grid",
        "--grid-set",
        "llft.lr=0.01",
        "--grid-set",
        "llft.beta=0.1,0.5",
    )
    assert main(argv) == 0
    tried = json.loads((out / "results.json").read_text())[1]["selection"]["tried"]
    steps = REGISTRY["llft"].grid["min_steps"][0]  # not narrowed: the method's grid value
    assert [t["setting"] for t in tried] == [
        {"lr": 0.01, "beta": 0.1, "min_steps": steps},
        {"lr": 0.01, "beta": 0.5, "min_steps": steps},
    ]
    saved = json.loads((out / "settings.json").read_text())
    assert saved["compare"]["grids"] == {"llft": {"lr": [0.01], "beta": [0.1, 0.5]}}


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("llft.beta=", "must look like METHOD.KEY=V1,V2"),
        ("llft.beta=0.1,,0.5", "must look like METHOD.KEY=V1,V2"),
        ("llft.beta=0.1,high", "'0.1,high' is not a float or a comma-separated list"),
        ("beta=0.1", "name the method"),
        ("llft.nonsense=1", "llft has no setting 'nonsense'"),
        ("llft.beta=0.1 --no-grid", "--grid-set only acts with --grid"),
    ],
)
def test_bad_grid_set_gets_one_line(workdir, capsys, tmp_path, pair, expected):
    pair, *more = pair.split(" ")
    argv = compare_argv(workdir, tmp_path / "o", "--grid", "--grid-set", pair, *more)
    err = _error_line(capsys, argv)
    assert expected in err


def test_argparse_errors_are_one_line(capsys):
    for argv in (["nope"], ["debias", "--method", "nope"], ["compare", "--threshold-rule", "x"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert stop.value.code == 2 and len(err.splitlines()) == 1 and "--help" in err


def test_settings_for_another_method_are_refused(workdir, capsys, tmp_path):
    argv = ["debias", "--model", str(workdir / "model"), "--data", str(workdir / "table.csv")]
    err = _error_line(
        capsys, [*argv, "--method", "llft", "--out", str(tmp_path / "o"), "--set", "swift.beta=0.3"]
    )
    assert "--set names ['swift'], but this run debiases with llft" in err
    err = _error_line(capsys, [*argv, "--out", str(tmp_path / "o"), "--set", "nope.lr=1"])
    assert "unknown method 'nope'" in err
    err = _error_line(
        capsys,
        compare_argv(workdir, tmp_path / "c", "--methods", "llft", "--set", "swift.beta=0.3"),
    )
    assert "settings given for swift, which is not among the methods compared" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--images", "--keep", "1"], "the image demo (--images) has no --keep"),
        (["--arch", "cnn"], "add --images"),
        (["--keep", "5"], "--keep is a share in (0, 1], not 5.0"),
    ],
)
def test_demo_refuses_flags_it_would_ignore(capsys, tmp_path, argv, expected):
    err = _error_line(capsys, ["demo", *argv, "--out", str(tmp_path / "d")])
    assert expected in err and not (tmp_path / "d").exists()


def test_debias_auto_says_what_it_kept_and_why(workdir, capsys, tmp_path):
    out = tmp_path / "auto"
    argv = [
        "debias",
        "--model",
        str(workdir / "model"),
        "--data",
        str(workdir / "parts" / "external.csv"),
        "--method",
        "auto",
        "--out",
        str(out),
        "--holdout",
        "0.4",
        "--budget",
        "6",  # the model trained 3 epochs: one epoch of every setting is 3.3x that
        "--set",
        "fullft.epochs=2",
        "--set",
        "llft.epochs=2",
    ]
    assert main(argv) == 0
    printed = " ".join(capsys.readouterr().out.split())  # undo the terminal's wrapping
    saved = json.loads((out / "debias.json").read_text())
    choice = saved["info"]["selection"]
    assert saved["method"] == "auto"
    assert saved["info"]["compare"]["holdout"] == 0.4
    assert saved["info"]["compare"]["overrides"]["fullft"] == {"epochs": 2}
    assert set(saved["info"]["tried"]) == set(REGISTRY)  # every method was a candidate
    assert " ".join(choice["reason"].split()) in printed
    assert saved["config"]["selected"] == choice["method"]
    if choice["kept_original"]:
        assert saved["config"]["selected"] == "original"
    else:
        assert choice["improvement"]["low"] > 0  # chosen only on a real held-out gain
    model, _ = load_model(out)
    assert isinstance(model, torch.nn.Module)
