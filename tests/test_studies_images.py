"""Every study from the command line on a small image CSV, with the ViT: the points asked
for, study.json with its summary, a figure; the mask study reaches attention and MLP."""

from __future__ import annotations

import json

import pytest

from fairtune.cli import main
from fairtune.datasets import SyntheticSpec, make_skin_tone_images
from fairtune.studies.runner import START

ONE_EPOCH = [
    "bmft.impair_epochs=1",
    "bmft.repair_epochs=1",
    "random_mask.impair_epochs=1",
    "random_mask.repair_epochs=1",
    "swift.step1_epochs=1",
    "swift.step2_epochs=1",
    "llft.epochs=1",
]
POINTS = {
    "keep": (["--keeps", "0.5"], {("bmft", 0.5), ("random_mask", 0.5)}),
    "steps": (
        [],
        {
            ("bmft", "impair + repair"),
            ("bmft", "impair only"),
            ("bmft", "repair only"),
            ("swift", "step 1 + 2"),
            ("swift", "step 1 only"),
            ("swift", "step 2 only"),
            ("swift", "step 2 only, no head reset"),
        },
    ),
    "external-size": (["--methods", "llft", "--sizes", "0.5", "1.0"], {("llft", 0.5), ("llft", 1)}),
    "lr": (["--methods", "llft", "--lrs", "0.001", "0.01"], {("llft lr", 1e-3), ("llft lr", 1e-2)}),
}
"""Per curve study: its options and the (series, x) points they ask for."""


@pytest.fixture(scope="module")
def vit_model(tmp_path_factory, one_thread):
    """A synthetic image set (8x8 pixels) and the ViT trained one epoch on its training CSV."""
    root = tmp_path_factory.mktemp("vit")
    make_skin_tone_images(root / "set", SyntheticSpec(48, 64, 32, image_size=8), seed=2)
    argv = ["train", "--data", str(root / "set" / "synthetic_train.csv"), "--image-col", "image"]
    argv += ["--label", "malignant", "--sensitive", "skin_tone", "--image-size", "8"]
    argv += ["--arch", "vit", "--epochs", "1", "--out", str(root / "vit")]
    assert main(argv) == 0
    return root


def _study(root, kind: str, out, extra: list[str]) -> dict:
    """Run ``fairtune study KIND`` from the ViT (one seed, few resamples); its study.json."""
    argv = ["study", kind, "--model", str(root / "vit"), "--out", str(out), "--n-boot", "10"]
    argv += ["--external", str(root / "set" / "synthetic_external.csv")]
    argv += ["--test", str(root / "set" / "synthetic_test.csv"), *extra, "--set", *ONE_EPOCH]
    assert main(argv) == 0
    assert (out / "study.png").stat().st_size > 10_000
    return json.loads((out / "study.json").read_text())


@pytest.mark.parametrize("kind", sorted(POINTS))
def test_each_curve_study_runs_on_the_vit_from_an_image_csv(vit_model, tmp_path, kind):
    options, asked = POINTS[kind]
    saved = _study(vit_model, kind, tmp_path / kind, options)
    fitted = [r for r in saved["records"] if r["series"] != START]
    assert {(r["series"], r["x"]) for r in fitted} == asked
    assert all(r["failed"] is None and r["test"]["synthetic_test"]["ci_at_t"] for r in fitted)
    summarised = {(p["series"], p["x"]) for p in saved["summary"]}
    assert summarised == asked | {(START, None)}


def test_mask_study_on_the_vit_covers_attention_and_mlp_weights(vit_model, tmp_path):
    saved = _study(vit_model, "mask", tmp_path / "mask", [])
    rows = {row["layer"]: row for row in saved["records"][0]["layers"]}
    for layer in range(4):  # the CLI's ViT has four encoder layers
        prefix = f"encoder.layers.{layer}."
        for part in ("self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight"):
            row = rows[prefix + part]
            assert 0 <= row["bmft_density_batch"] <= 1 and row["random_density"] is not None
            assert row["swift_mean_batch"] > 0
    attention = [r["bmft_density_batch"] for n, r in rows.items() if "self_attn" in n]
    assert any(d > 0 for d in attention if d is not None)  # BMFT updates some of attention
    assert rows["head.weight"]["bmft_density_batch"] is None  # BMFT masks the backbone only
    overall = saved["records"][0]["overall"]
    assert overall["bmft_density_batch"] == pytest.approx(0.5, abs=0.01)
