"""Images end to end: synthetic set, CNN, debiasing and the CLI on image CSVs."""

import json

import pytest
import torch

from fairtune.architectures import build_model
from fairtune.augment import Augment
from fairtune.cli import main
from fairtune.columns import Columns
from fairtune.datasets import SyntheticSpec, make_skin_tone_images
from fairtune.errors import FairtuneError
from fairtune.image_csv import ImageOptions, ImageReading, read_image_csv
from fairtune.images import Decoding, in_memory
from fairtune.methods import REGISTRY, get_method
from fairtune.modelio import load_model
from fairtune.models import MLP

SMALL = {"name": "cnn", "width": 4, "blocks": 2}


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("images") / "set"
    make_skin_tone_images(root, SyntheticSpec(64, 48, 32, image_size=16), seed=1)
    return root


def _train_argv(root, out, epochs):
    """``fairtune train`` on the set's training CSV with the small CNN."""
    return [
        "train",
        "--data",
        str(root / "synthetic_train.csv"),
        "--image-col",
        "image",
        "--label",
        "malignant",
        "--sensitive",
        "skin_tone",
        "--image-size",
        "16",
        "--out",
        str(out),
        "--epochs",
        str(epochs),
    ]


def _read(root, part, augment=None):
    return read_image_csv(
        root / f"synthetic_{part}.csv",
        ImageOptions("image", Decoding(16)),
        Columns("malignant", "skin_tone"),
        group_names=("dark", "light"),
        reading=ImageReading(augment=augment),
    )[0]


def test_in_memory_holds_exactly_the_lazy_tensors(image_set):
    lazy = _read(image_set, "external")
    held = in_memory(lazy)
    assert isinstance(held.inputs, torch.Tensor) and held.inputs.shape == (48, 3, 16, 16)
    assert all(torch.equal(held.inputs[i], lazy.inputs[i]) for i in range(len(lazy)))
    assert torch.equal(held.labels, lazy.labels) and torch.equal(held.groups, lazy.groups)
    with pytest.raises(FairtuneError, match="augmented"):
        in_memory(_read(image_set, "external", augment=Augment(seed=0)))


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_method_debiases_a_cnn_with_batchnorm(image_set, method):
    torch.manual_seed(0)
    model = build_model(SMALL)
    external = in_memory(_read(image_set, "external"))
    short = {
        "bmft": {"impair_epochs": 1, "repair_epochs": 1},
        "random_mask": {"impair_epochs": 1, "repair_epochs": 1},
        "swift": {"step1_epochs": 1, "step2_epochs": 1},
        "fairprune": {"max_rounds": 1},
    }.get(method, {"epochs": 1})
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = get_method(method, batch_size=16, **short).fit(model, external)
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())
    after = result.model.state_dict()
    for name, value in after.items():
        if "running" in name or "num_batches" in name:
            assert torch.equal(value, start[name]), name  # BatchNorm statistics frozen
    out = result.model(external.inputs[:4])
    assert out.shape == (4, 1) and torch.isfinite(out).all()


def test_cli_on_image_csvs(image_set, tmp_path, capsys):
    model_dir, debiased = tmp_path / "cnn", tmp_path / "cnn-swift"
    code = main([*_train_argv(image_set, model_dir, 1), "--batch-size", "32"])
    assert code == 0
    _, config = load_model(model_dir)
    assert config.images["image_size"] == 16 and config.arch["name"] == "cnn"
    assert (
        main(
            [
                "debias",
                "--model",
                str(model_dir),
                "--data",
                str(image_set / "synthetic_external.csv"),
                "--out",
                str(debiased),
                "--set",
                "step1_epochs=1",
                "--set",
                "step2_epochs=1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(debiased),
                "--data",
                str(image_set / "synthetic_test.csv"),
                "--json",
                str(tmp_path / "m.json"),
                "--n-boot",
                "10",
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert set(metrics["by_group"]) == {"dark", "light"}
    auto = tmp_path / "cnn-auto"
    argv = ["debias", "--model", str(model_dir), "--method", "auto", "--out", str(auto)]
    argv += ["--data", str(image_set / "synthetic_external.csv"), "--methods", "llft", "fullft"]
    argv += ["--set", "llft.epochs=1", "--set", "fullft.epochs=1"]
    argv += ["--search", "grid"]  # each method's defaults: a 64-row training cannot pay a grid
    assert main(argv) == 0
    saved = json.loads((auto / "debias.json").read_text())
    assert set(saved["info"]["tried"]) == {"llft", "fullft"}
    assert saved["config"]["selected"] in ("original", "llft", "fullft")
    reason = " ".join(saved["info"]["selection"]["reason"].split())
    assert reason in " ".join(capsys.readouterr().out.split())  # undo the terminal's wrapping


def test_cli_names_a_corrupt_image_or_skips_it(image_set, tmp_path, capsys):
    bad = image_set / "images" / "synthetic_test_00003.png"
    original = bad.read_bytes()
    main([*_train_argv(image_set, tmp_path / "m", 0)])
    try:
        bad.write_bytes(b"not a png")
        evaluate = [
            "evaluate",
            "--model",
            str(tmp_path / "m"),
            "--data",
            str(image_set / "synthetic_test.csv"),
            "--n-boot",
            "0",
        ]
        code = main(evaluate)
        err = capsys.readouterr().err
        assert code == 2 and "synthetic_test_00003.png" in err and "row 4" in err
        code = main([*evaluate, "--skip-bad-images"])
        printed = " ".join(capsys.readouterr().out.split())  # the table may wrap long titles
        assert code == 0 and "31 of 32 images" in printed
    finally:
        bad.write_bytes(original)


def test_unknown_architecture_is_named_and_mlp_still_builds():
    with pytest.raises(FairtuneError, match="unknown architecture"):
        build_model({"name": "resnet-nonexistent"})
    assert isinstance(build_model({"name": "mlp", "in_features": 3}), MLP)


def test_image_demo_rows_on_a_tiny_set():
    from fairtune.demo import ImageDemoSettings, image_demo_rows
    from fairtune.selection.comparison import CompareSettings

    settings = ImageDemoSettings(
        n_train=48, n_external=40, n_test=32, image_size=16, arch="cnn", train_epochs=1
    )
    rows = image_demo_rows(settings, CompareSettings(methods=["llft"], n_boot=5))
    assert [r.method for r in rows] == ["baseline", "llft", "threshold_optimizer", "selected"]
    assert all(r.arch == "cnn" and r.to_dict()["arch"] == "cnn" for r in rows)
    assert set(rows[0].metrics.by_group) == {"dark", "light"}


def test_learning_rate_grids_search_two_learning_rates_and_defaults_elsewhere():
    from fairtune.demo import how_chosen, learning_rate_grids
    from fairtune.selection.comparison import CompareSettings
    from fairtune.selection.search import grid_points

    backbone_tuners = {
        *("bias_gd", "bmft", "constrained", "distill", "fullft", "random_mask", "swift"),
    }
    assert {n for n, cls in REGISTRY.items() if cls.tunes_backbone} == backbone_tuners
    grids = learning_rate_grids()
    assert set(grids) == backbone_tuners
    settings = CompareSettings(grid=True, grids=grids)
    for name in backbone_tuners:
        config = REGISTRY[name].config_class()
        assert set(grids[name]) == set(REGISTRY[name].grid)  # every grid key is pinned
        points = grid_points(settings.grid_of(name))
        lr_keys = [k for k in grids[name] if k.endswith("lr")]
        assert len(lr_keys) == 1 and len(points) == 2
        key = lr_keys[0]
        assert sorted(p[key] for p in points) == [getattr(config, key), 10 * getattr(config, key)]
        for point in points:
            others = {k: v for k, v in point.items() if k != key}
            assert all(getattr(config, k) == v for k, v in others.items())
    for name in ("llft", "fairprune"):  # cheap on any backbone: their whole grid
        assert settings.grid_of(name) == REGISTRY[name].grid
    text = how_chosen(settings)
    assert "swift searches {" in text and "'step1_lr': [0.0001, 0.001]" in text
