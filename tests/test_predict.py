"""``predict``, the image split round trip and the command line's smaller promises
(--positive, --json -, --version, several KEY=VALUE after one --set)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from fairtune.cli import main
from fairtune.datasets import SyntheticSpec, make_skin_tone_images
from fairtune.image_csv import ImageReading
from fairtune.loading import data_for_model, load_for_model, read_table
from fairtune.modelio import current_versions, load_model
from fairtune.models import predict_proba


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A table with an identifier, a yes/no label, and a model trained on it."""
    path = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {"id": [f"p{i:03d}" for i in range(n)], "x1": rng.normal(size=n), "x2": rng.normal(size=n)}
    )
    frame["sex"] = rng.choice(["F", "M"], n)
    frame["y"] = np.where(frame.x1 + 0.5 * (frame.sex == "M") > 0.2, "yes", "no")
    frame["y01"] = (frame["y"] == "yes").astype(int)
    frame.to_csv(path / "table.csv", index=False)
    argv = ["train", "--data", str(path / "table.csv"), "--sensitive", "sex", "--epochs", "2"]
    argv += ["--features", "x1", "x2"]
    assert main([*argv, "--label", "y", "--positive", "yes", "--out", str(path / "model")]) == 0
    assert main([*argv, "--label", "y01", "--out", str(path / "model01")]) == 0
    return path


def test_predict_a_table_keeps_ids_and_matches_the_model(table):
    out = table / "scores.csv"
    argv = ["predict", "--model", str(table / "model"), "--data", str(table / "table.csv")]
    assert main([*argv, "--out", str(out), "--keep-columns", "id"]) == 0
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["id", "score", "decision"]
    frame = pd.read_csv(table / "table.csv")
    assert scores["id"].tolist() == frame["id"].tolist()
    model, config = load_model(table / "model")
    data = data_for_model(read_table(str(table / "table.csv")), config)
    expected = predict_proba(model, data).numpy()
    assert np.allclose(scores["score"].to_numpy(), expected, atol=1e-6)
    assert scores["decision"].tolist() == (expected >= config.threshold).astype(int).tolist()


def test_predict_needs_no_label_and_refuses_to_overwrite_its_input(table, capsys):
    unlabelled = table / "new.csv"
    pd.read_csv(table / "table.csv").drop(columns=["y", "sex"]).head(7).to_csv(
        unlabelled, index=False
    )
    out = table / "new-scores.csv"
    argv = ["predict", "--model", str(table / "model"), "--data", str(unlabelled)]
    assert main([*argv, "--out", str(out), "--threshold", "1e-9"]) == 0
    assert pd.read_csv(out)["decision"].tolist() == [1] * 7
    before = unlabelled.read_text()
    assert main([*argv, "--out", str(unlabelled)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert unlabelled.read_text() == before
    assert main([*argv, "--out", str(out), "--keep-columns", "nope"]) == 2
    assert "kept (--keep-columns) column(s) ['nope'] not in the data" in capsys.readouterr().err


def test_positive_is_honoured_by_evaluate_and_debias(table, capsys):
    relabelled = table / "relabelled.csv"
    frame = pd.read_csv(table / "table.csv")
    frame["y"] = frame["y"].map({"yes": "sick", "no": "well"})
    frame.to_csv(relabelled, index=False)
    base = ["--model", str(table / "model"), "--data", str(relabelled)]
    assert main(["evaluate", *base]) == 2
    assert "positive label 'yes' does not occur" in capsys.readouterr().err
    assert main(["evaluate", *base, "--positive", "well", "--n-boot", "0"]) == 0
    capsys.readouterr()
    assert main(["evaluate", *base, "--positive", "ill", "--n-boot", "0"]) == 2
    err = capsys.readouterr().err
    assert "positive label 'ill' does not occur" in err and "name the positive" not in err
    debiased = ["debias", *base, "--method", "llft", "--out", str(table / "llft")]
    assert main([*debiased, "--positive", "sick", "--set", "epochs=1", "batch_size=32"]) == 0
    record = json.loads((table / "llft" / "debias.json").read_text())
    assert record["config"]["epochs"] == 1 and record["config"]["batch_size"] == 32


def test_labels_beyond_0_1_refused_by_evaluate_and_debias_alike(table, capsys):
    three = table / "three.csv"
    frame = pd.read_csv(table / "table.csv")
    frame["y01"] = np.arange(len(frame)) % 3
    frame.to_csv(three, index=False)
    base = ["--model", str(table / "model01"), "--data", str(three)]
    errors = []
    for argv in (["evaluate", *base], ["debias", *base, "--out", str(table / "d")]):
        assert main(argv) == 2
        errors.append(capsys.readouterr().err.split("error: ", 1)[1])
    assert errors[0] == errors[1]
    assert "label column 'y01' holds ['0', '1', '2'], not 0/1" in errors[0]
    assert not (table / "d").exists()


def test_json_to_standard_output(table, capsys):
    argv = ["evaluate", "--model", str(table / "model"), "--data", str(table / "table.csv")]
    assert main([*argv, "--json", "-", "--n-boot", "0"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert set(record) == {"model", "data", "metrics", "ci"}
    assert "auc" in record["metrics"] and "auc" in captured.err
    assert not (table / "-").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    versions = current_versions()
    assert capsys.readouterr().out.strip() == (
        f"fairtune {versions['fairtune']} (torch {versions['torch']}, "
        f"Python {versions['python']})"
    )


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("images") / "set"
    make_skin_tone_images(root, SyntheticSpec(64, 48, 32, image_size=16), seed=1)
    return root


def _train_images(data, out, *extra):
    argv = ["train", "--data", str(data), "--image-col", "image", "--label", "malignant"]
    argv += ["--sensitive", "skin_tone", "--image-size", "16", "--out", str(out)]
    return main([*argv, "--epochs", "1", "--arch", "cnn", *extra])


def test_image_split_round_trip(image_set, tmp_path, capsys, one_thread):
    parts = tmp_path / "elsewhere" / "parts"
    argv = ["split", "--data", str(image_set / "synthetic_train.csv"), "--label", "malignant"]
    argv += ["--sensitive", "skin_tone", "--out", str(parts), "--image-col", "image"]
    assert main([*argv, "--fractions", "0.5", "0.25", "0.25"]) == 0
    train = pd.read_csv(parts / "train.csv")
    assert all(not p.startswith("/") for p in train["image"])  # as written: relative
    said = " ".join(capsys.readouterr().out.split())
    assert f"read the parts with --image-root {image_set.resolve()}" in said
    assert _train_images(parts / "train.csv", tmp_path / "model") == 2  # no root: refused
    assert "do not exist" in capsys.readouterr().err
    root = ["--image-root", str(image_set)]
    assert _train_images(parts / "train.csv", tmp_path / "model", *root) == 0  # root saved
    argv = ["evaluate", "--model", str(tmp_path / "model"), "--data", str(parts / "test.csv")]
    assert main([*argv, "--n-boot", "0"]) == 0
    assert "image file(s)" not in capsys.readouterr().err


def test_image_root_saved_by_train_and_used_later(image_set, tmp_path, capsys, one_thread):
    listing = tmp_path / "lists"
    listing.mkdir()
    for part in ("train", "test"):
        shutil.copy(image_set / f"synthetic_{part}.csv", listing / f"{part}.csv")
    model = tmp_path / "model"
    assert _train_images(listing / "train.csv", model, "--image-root", str(image_set)) == 0
    config = json.loads((model / "config.json").read_text())
    assert config["images"]["image_root"] == str(image_set.resolve())
    evaluate = ["evaluate", "--model", str(model), "--data", str(listing / "test.csv")]
    assert main([*evaluate, "--n-boot", "0"]) == 0
    assert main([*evaluate, "--n-boot", "0", "--image-root", str(tmp_path)]) == 2
    assert "image file(s)" in capsys.readouterr().err

    out = tmp_path / "scores.csv"
    predict = ["predict", "--model", str(model), "--data", str(listing / "test.csv")]
    assert main([*predict, "--out", str(out), "--keep-columns", "image", "sex"]) == 0
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["image", "sex", "score", "decision"]
    assert len(scores) == 32 and scores["score"].between(0, 1).all()
    loaded, loaded_config = load_model(model)
    reading = ImageReading(image_set)
    data, _ = load_for_model(str(listing / "test.csv"), loaded_config, reading=reading)
    expected = predict_proba(loaded, data).numpy()
    assert np.allclose(scores["score"].to_numpy(), expected, atol=1e-6)

