"""Models: head finding, feature capture, the model directory, safe checkpoint loading,
the architecture registry."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from fairtune import architectures
from fairtune.architectures import (
    Architecture,
    build_model,
    image_arch,
    register_architecture,
    resolve_architecture,
)
from fairtune.backbones import SmallCNN
from fairtune.checkpoints import load_state_dict_file
from fairtune.errors import FairtuneError
from fairtune.modelio import ModelConfig, load_model, save_model
from fairtune.models import MLP, ModelSplit, find_head, logits


class TorchvisionLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.proj = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc(self.proj(self.conv(x).mean((2, 3))))


class ClassifierSeq(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Linear(3, 4)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(4, 1))

    def forward(self, x):
        return self.classifier(self.features(x))


class TimmLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(3, 4)
        self.last = nn.Linear(4, 1)
        self.extra = nn.Linear(1, 1)  # after the head in module order

    def get_classifier(self):
        return self.last

    def forward(self, x):
        return self.last(self.stem(x))


def test_find_head_conventions():
    assert find_head(MLP(5)) == "head"
    assert find_head(TorchvisionLike()) == "fc"
    assert find_head(ClassifierSeq()) == "classifier.1"
    assert find_head(TimmLike()) == "last"
    assert find_head(nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))) == "2"
    assert find_head(MLP(5), "body.0") == "body.0"


def test_missing_head_names_the_option():
    with pytest.raises(FairtuneError, match="--head"):
        find_head(nn.Sequential(nn.Conv1d(1, 1, 1)))
    with pytest.raises(FairtuneError, match="no module named"):
        find_head(MLP(5), "nope")


def test_split_partitions_parameters_and_captures_features():
    model = MLP(5, hidden=(4, 3))
    split = ModelSplit.of(model)
    assert split.head_params() == ["head.weight", "head.bias"]
    assert set(split.backbone_params()) | set(split.head_params()) == set(split.all_params())
    x = torch.randn(7, 5)
    feats, out = split.features_and_output(x)
    assert torch.allclose(feats, model.body(x))
    assert torch.equal(out, model(x))
    assert torch.allclose(model.head(feats)[:, 0], logits(model, x))


def test_reset_head():
    split = ModelSplit.of(MLP(5))
    split.reset_head("zeros")
    assert all((p == 0).all() for p in split.head_module.parameters())
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    split.reset_head("default", seed=4)
    first = split.head_module.weight.detach().clone()
    assert torch.equal(torch.rand(3), expected_next)  # the global random stream is untouched
    split.reset_head("default", seed=4)
    assert torch.equal(split.head_module.weight, first) and (first != 0).any()
    with pytest.raises(FairtuneError, match="'zeros' or 'default'"):
        split.reset_head("ones")


def test_a_head_that_forward_never_calls_is_named():
    split = ModelSplit.of(TimmLike(), head="extra")
    with pytest.raises(FairtuneError, match="'extra' is not called by the model's forward"):
        split.features_and_output(torch.randn(2, 3))


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ({"name": "mlp", "in_features": 3, "hiden": [4]}, "architecture 'mlp' cannot take"),
        ({"name": "mlp"}, "architecture 'mlp' cannot take"),
        ("mlp", "a dict with a 'name'"),
    ],
)
def test_bad_architecture_options_get_one_line(arch, message):
    with pytest.raises(FairtuneError, match=message):
        build_model(arch)


def test_evaluating_restores_every_submodules_mode():
    from fairtune.models import evaluating

    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5)).train()
    model[1].eval()  # a user's frozen BatchNorm inside a training model
    with evaluating(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, False, True]


def test_image_arch_takes_the_normalisation_from_the_registry_entry():
    lite = image_arch("efficientnet_lite0")
    assert lite.arch == {"name": "efficientnet_lite0", "pretrained": True, "in_channels": 3}
    entry = architectures.ARCHITECTURES["efficientnet_lite0"]
    assert (lite.mean, lite.std) == (entry.mean, entry.std)
    assert lite.mean == (127.0 / 255.0,) * 3 and lite.std == (128.0 / 255.0,) * 3
    gray = image_arch("efficientnet_lite0", channels=1)
    assert gray.arch["in_channels"] == 1
    assert (gray.mean, gray.std) == ((127.0 / 255.0,), (128.0 / 255.0,))
    assert image_arch("cnn", 1) == ({"name": "cnn", "in_channels": 1}, None, None)
    assert image_arch("torchvision:resnet18") == ({"name": "torchvision:resnet18"}, None, None)
    sized = image_arch("torchvision:resnet18", 3, 32)  # the builder decides whether it needs it
    assert sized == ({"name": "torchvision:resnet18", "image_size": 32}, None, None)
    with pytest.raises(FairtuneError, match="unknown architecture 'vgg'"):
        image_arch("vgg")


def test_a_registered_architecture_is_built_and_normalised_by_its_entry(monkeypatch):
    monkeypatch.setattr(architectures, "ARCHITECTURES", dict(architectures.ARCHITECTURES))
    entry = Architecture("tiny", SmallCNN, mean=(0.1, 0.2), std=(0.3, 0.4), in_channels=True)
    register_architecture(entry)
    assert resolve_architecture("tiny") is entry
    spec = image_arch("tiny", channels=2)
    assert spec == ({"name": "tiny", "in_channels": 2}, (0.1, 0.2), (0.3, 0.4))
    model = build_model({**spec.arch, "width": 2, "blocks": 1})
    assert isinstance(model, SmallCNN) and model.body[0].in_channels == 2


def test_prefix_entries_serve_library_models_and_unknown_names_list_the_registry():
    entry = resolve_architecture("torchvision:resnet18")
    assert entry.name == "torchvision:resnet18" and not entry.prefix
    assert entry.builder.args == ("resnet18",)
    message = (
        "unknown architecture 'torchvision'; known: ['cnn', 'efficientnet_lite0', 'mlp', 'vit'], "
        "or torchvision:<name>, timm:<name>"
    )
    with pytest.raises(FairtuneError) as err:
        resolve_architecture("torchvision")  # a prefix entry is no architecture by itself
    assert str(err.value) == message


def test_the_model_layer_imports_no_backbones():
    """fairtune.models sits below the backbones, the registry and the model directory: it
    loads none of them."""
    code = """
import importlib.util, sys, types
package = types.ModuleType("fairtune")  # without its __init__, which exports the whole API
package.__path__ = list(importlib.util.find_spec("fairtune").submodule_search_locations)
sys.modules["fairtune"] = package
import fairtune.models
print(" ".join(sorted(m for m in sys.modules if m.startswith("fairtune."))))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["fairtune.errors", "fairtune.models"]


def _config() -> ModelConfig:
    return ModelConfig(
        arch={"name": "mlp", "in_features": 5, "hidden": [4]},
        label="y",
        sensitive=["sex"],
        group_names=["Female", "Male"],
    )


def test_save_load_round_trip(tmp_path):
    model = MLP(5, hidden=(4,))
    save_model(tmp_path / "m", model, _config())
    loaded, cfg = load_model(tmp_path / "m")
    x = torch.randn(3, 5)
    assert torch.equal(model(x), loaded(x))
    assert cfg.group_names == ["Female", "Male"]
    assert not [p for p in (tmp_path).iterdir() if p.name.startswith(".")]  # no temp left


def test_load_rejects_non_model_directory_and_mismatch(tmp_path):
    with pytest.raises(FairtuneError, match="not a fairtune model directory"):
        load_model(tmp_path)
    save_model(tmp_path / "m", MLP(5, hidden=(4,)), _config())
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["arch"]["hidden"] = [8]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FairtuneError, match="does not match the architecture"):
        load_model(tmp_path / "m")


def test_a_many_class_checkpoint_loads_all_but_the_head_when_told_the_head(tmp_path):
    original = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 10))  # a 10-class classifier
    torch.save(original.state_dict(), tmp_path / "orig.pt")
    binary = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    head_before = binary[1].weight.detach().clone()
    with pytest.raises(FairtuneError, match="wrong shape"):
        load_state_dict_file(binary, tmp_path / "orig.pt")  # no head named: strict
    load_state_dict_file(binary, tmp_path / "orig.pt", head="1")
    assert torch.equal(binary[0].weight, original[0].weight)
    assert torch.equal(binary[1].weight, head_before)  # the binary head stays
    with pytest.raises(FairtuneError, match="wrong shape"):  # a body mismatch still fails
        load_state_dict_file(
            nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 1)), tmp_path / "orig.pt", head="1"
        )


def test_user_state_dict_loads_safely(tmp_path):
    model = MLP(5, hidden=(4,))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    other = load_state_dict_file(MLP(5, hidden=(4,)), tmp_path / "w.pt")
    assert torch.equal(other.head.weight, model.head.weight)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "wrapped.pt")
    load_state_dict_file(MLP(5, hidden=(4,)), tmp_path / "wrapped.pt")
    torch.save(model, tmp_path / "pickled.pt")  # a whole module: refused by weights_only
    with pytest.raises(FairtuneError, match="--trust-pickle"):
        load_state_dict_file(MLP(5, hidden=(4,)), tmp_path / "pickled.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FairtuneError, match="not a readable torch file"):
        load_state_dict_file(MLP(5, hidden=(4,)), tmp_path / "bad.pt")
    with pytest.raises(FairtuneError, match="wrong shape"):
        load_state_dict_file(MLP(5, hidden=(6,)), tmp_path / "w.pt")


def test_logits_shape_check():
    with pytest.raises(FairtuneError, match="one logit per sample"):
        logits(nn.Linear(3, 5), torch.randn(4, 3))


def test_two_class_scores_become_the_softmax_probability():
    torch.manual_seed(0)
    model, x = nn.Linear(3, 2), torch.randn(6, 3)
    softmax = torch.softmax(model(x), dim=1)[:, 1]
    torch.testing.assert_close(torch.sigmoid(logits(model, x)), softmax)


def test_a_two_class_model_is_debiased_with_its_masks_holding():
    from fairtune import debias
    from fairtune.data import FairData

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    n = 200
    x, a = torch.randn(n, 4), torch.randint(0, 2, (n,))
    y = ((x[:, 0] + a) > 0.5).float()
    result = debias(
        model,
        FairData(x, y, a, ["a", "b"]),
        "bmft",
        impair_lr=0.05,
        impair_epochs=2,
        repair_epochs=2,
    )
    zero = result.mask.values["0.weight"] == 0
    assert torch.equal(result.model[0].weight[zero], model[0].weight[zero])
    assert result.model[2].weight.shape == (2, 8)
