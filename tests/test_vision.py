"""The real torchvision and timm models through the CLI (``make test-vision``).

Random initial weights (nothing is downloaded); a few 32x32 images, batches of 8
and one epoch per phase, so each architecture's train -> debias (SWiFT) -> predict
round trip takes seconds on an idle CPU (tens of seconds on a loaded one, ViT-B/16 more).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from fairtune.architectures import image_arch
from fairtune.cli import main
from fairtune.datasets import SyntheticSpec, make_skin_tone_images
from fairtune.modelio import load_model
from fairtune.models import ModelSplit

pytestmark = [pytest.mark.vision, pytest.mark.usefixtures("one_thread")]

ARCHS = [
    "torchvision:resnet18",
    "torchvision:resnet50",
    "torchvision:densenet121",
    "torchvision:efficientnet_b0",
    "torchvision:vit_b_16",
    "timm:resnet18",
    "timm:densenet121",
    "timm:efficientnet_b0",
    "timm:vit_small_patch16_224",
    "timm:convnext_atto",
]
HEADS = {  # the classifier each library names (fc, classifier, head, get_classifier())
    "torchvision:resnet18": "fc",
    "torchvision:resnet50": "fc",
    "torchvision:densenet121": "classifier",
    "torchvision:efficientnet_b0": "classifier.1",
    "torchvision:vit_b_16": "heads.head",
    "timm:resnet18": "fc",
    "timm:densenet121": "classifier",
    "timm:efficientnet_b0": "classifier",
    "timm:vit_small_patch16_224": "head",
    "timm:convnext_atto": "head.fc",
}
SIZE = 32
CONSTANT = {"torchvision:efficientnet_b0"}
"""Randomly initialised and trained for 3 steps, this model's output in eval mode is the
same for every 32x32 image (its features vanish through the BatchNorm layers' running
statistics): a degenerate starting model, which SWiFT leaves as it is."""


@pytest.fixture(autouse=True)
def _libraries():
    """The vision extra; under ``make test-vision`` a skip here is a failure."""
    pytest.importorskip("torchvision")
    pytest.importorskip("timm")


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    """24 training, 24 external and 16 test images of 32x32 pixels."""
    root = tmp_path_factory.mktemp("vision") / "set"
    make_skin_tone_images(root, SyntheticSpec(24, 24, 16, image_size=SIZE), seed=2)
    return root


def _train(root, arch: str, out, *extra: str) -> int:
    return main(
        [
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
            str(SIZE),
            "--arch",
            arch,
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_train_debias_predict_round_trip(image_set, tmp_path, arch):
    """train -> debias --method swift -> predict: the library's head is found and made one
    logit, SWiFT's mask covers every backbone weight and moves the backbone, and predict
    scores every test image."""
    trained, debiased = tmp_path / "trained", tmp_path / "debiased"
    assert _train(image_set, arch, trained) == 0
    model, config = load_model(trained)
    assert config.head == HEADS[arch]
    assert model.get_submodule(config.head).out_features == 1
    assert config.images["image_size"] == SIZE
    mean, std = image_arch(arch).mean, image_arch(arch).std
    assert config.images["mean"] == (None if mean is None else list(mean))
    assert config.images["std"] == (None if std is None else list(std))
    argv = ["debias", "--model", str(trained), "--data", str(image_set / "synthetic_external.csv")]
    argv += ["--out", str(debiased), "--method", "swift", "--set", "batch_size=8"]
    argv += ["--set", "step1_epochs=1", "--set", "step2_epochs=1", "--set", "step1_lr=1e-2"]
    assert main(argv) == 0

    split = ModelSplit.of(model, config.head)
    mask = load_file(str(debiased / "mask.safetensors"))
    backbone = split.backbone_params()
    assert backbone and set(backbone) <= set(mask)  # the soft mask reaches every backbone weight
    params = dict(model.named_parameters())
    assert all(mask[n].shape == params[n].shape for n in backbone)
    after, _ = load_model(debiased)
    moved = [n for n in backbone if not torch.equal(after.get_parameter(n), params[n])]
    if arch in CONSTANT:  # no bias to find: importance 0, mask tanh(0) = 0, backbone kept
        assert not moved and all(not mask[n].any() for n in backbone)
    else:
        assert len(moved) > len(backbone) // 2  # step 1 trained the backbone under the mask

    scores = tmp_path / "scores.csv"
    test_csv = image_set / "synthetic_test.csv"
    argv = ["predict", "--model", str(debiased), "--data", str(test_csv), "--out", str(scores)]
    assert main(argv) == 0
    out = pd.read_csv(scores)
    assert len(out) == len(pd.read_csv(test_csv))
    assert out["score"].between(0, 1).all()


def test_a_vit_is_built_for_the_image_size():
    """Fixed-size models (ViTs) get the image side; others take any size unchanged."""
    assert image_arch("torchvision:vit_b_16", 3, SIZE).arch == {
        "name": "torchvision:vit_b_16",
        "image_size": SIZE,
    }
    from fairtune.architectures import build_model

    vit = build_model(image_arch("timm:vit_small_patch16_224", 3, SIZE).arch).eval()
    with torch.no_grad():
        assert vit(torch.zeros(2, 3, SIZE, SIZE)).shape == (2, 1)
    assert image_arch("timm:vit_small_patch16_224").mean == (0.5, 0.5, 0.5)
    assert image_arch("torchvision:resnet18").mean is None  # ImageNet's, the reader's default


def test_compare_on_a_timm_model(image_set, tmp_path):
    """compare on a timm model from the CLI: the baseline, SWiFT, the reference and the
    selection, each measured on the test images."""
    trained, out = tmp_path / "trained", tmp_path / "cmp"
    assert _train(image_set, "timm:convnext_atto", trained) == 0
    argv = ["compare", "--model", str(trained), "--out", str(out), "--methods", "swift"]
    argv += ["--external", str(image_set / "synthetic_external.csv")]
    argv += ["--test", str(image_set / "synthetic_test.csv"), "--n-boot", "0"]
    argv += ["--set", "swift.batch_size=8", "--set", "swift.step1_epochs=1"]
    argv += ["--set", "swift.step2_epochs=1"]
    assert main(argv) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in rows] == ["baseline", "swift", "threshold_optimizer", "selected"]
    assert all(r["metrics"]["auc"] is None or 0 <= r["metrics"]["auc"] <= 1 for r in rows)
