"""A user's checkpoint read in: plain, Lightning, DataParallel, several-output heads, pickles.

The forms are checked on small models here, and through the CLI on torchvision's
DenseNet-121 (marked ``vision``): each imported model must compute what the saved
one did, its chosen output turned into the one logit.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fairtune.checkpoints import Checkpoint, load_checkpoint, strip_prefixes
from fairtune.cli import main
from fairtune.datasets import SyntheticSpec, make_skin_tone_images
from fairtune.errors import FairtuneError
from fairtune.modelio import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _net(outputs: int) -> nn.Sequential:
    torch.manual_seed(outputs)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, outputs))


def _agree(ours: nn.Module, probability, x: torch.Tensor) -> None:
    """``ours`` (one logit) gives the probabilities ``probability(x)`` of the saved model."""
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(ours.eval()(x))[:, 0], probability(x), atol=1e-6)


def test_two_softmax_classes_become_the_logit_of_the_chosen_class(tmp_path):
    saved = _net(2)
    torch.save(saved.state_dict(), tmp_path / "two.pt")
    x = torch.randn(16, 4)
    for index in (0, 1):
        ours = load_checkpoint(_net(1), Checkpoint(str(tmp_path / "two.pt"), index), head="2")
        _agree(ours, lambda x, i=index: torch.softmax(saved(x), dim=1)[:, i], x)


def test_one_of_fourteen_labels_is_kept_as_the_logit(tmp_path):
    saved = _net(14)  # CheXpert-style: 14 independent sigmoid outputs
    torch.save(saved.state_dict(), tmp_path / "chexpert.pt")
    x = torch.randn(16, 4)
    ours = load_checkpoint(_net(1), Checkpoint(str(tmp_path / "chexpert.pt"), 8), head="2")
    _agree(ours, lambda x: torch.sigmoid(saved(x))[:, 8], x)
    with pytest.raises(FairtuneError, match=r"--head-output 14 is out of range.*0\.\.13"):
        load_checkpoint(_net(1), Checkpoint(str(tmp_path / "chexpert.pt"), 14), head="2")
    with pytest.warns(UserWarning, match="has 14 outputs, so it is left out"):
        fresh = load_checkpoint(_net(1), Checkpoint(str(tmp_path / "chexpert.pt")), head="2")
    assert torch.equal(fresh[0].weight, saved[0].weight)


def test_wrappers_prefixes_come_off_and_their_other_keys_stay_behind():
    own = {"0.weight", "0.bias", "2.weight", "2.bias"}
    state = {k: torch.zeros(1) for k in own}
    lightning = {f"model.{k}": v for k, v in state.items()} | {"loss.pos_weight": torch.ones(1)}
    assert strip_prefixes(lightning, own) == state
    both = {f"module.model.{k}": v for k, v in state.items()}  # DataParallel around Lightning's
    assert strip_prefixes(both, own) == state
    assert strip_prefixes(state, own) is state
    stranger = {"encoder.0.weight": torch.zeros(1)}
    assert strip_prefixes(stranger, own) is stranger  # no known prefix: left for the key check


def test_a_pickled_module_is_refused_unless_trusted(tmp_path):
    saved = _net(1)
    torch.save(saved, tmp_path / "whole.pt")
    with pytest.raises(FairtuneError, match="--trust-pickle if you trust the file"):
        load_checkpoint(_net(1), Checkpoint(str(tmp_path / "whole.pt")))
    ours = load_checkpoint(_net(1), Checkpoint(str(tmp_path / "whole.pt"), trust_pickle=True))
    assert torch.equal(ours[2].weight, saved[2].weight)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(FairtuneError, match="not a state dict"):
        load_checkpoint(_net(1), Checkpoint(str(tmp_path / "list.pt")))


# ---------------------------------------------------------------- DenseNet-121 through the CLI


@pytest.fixture(scope="module")
def densenet_work(tmp_path_factory):
    """32x32 images, and a DenseNet-121 with a 14-label head as a user trained it."""
    tv_models = pytest.importorskip("torchvision.models")
    work = tmp_path_factory.mktemp("ckpt")
    make_skin_tone_images(work / "set", SyntheticSpec(16, 8, 8, image_size=32), seed=3)
    torch.manual_seed(5)
    user = tv_models.densenet121(weights=None, num_classes=14).eval()
    return work, user


def _import(work, checkpoint, out, *extra: str) -> int:
    """``fairtune train --epochs 0``: the checkpoint imported, not trained."""
    argv = ["train", "--data", str(work / "set" / "synthetic_train.csv"), "--image-col", "image"]
    argv += ["--label", "malignant", "--sensitive", "skin_tone", "--image-size", "32"]
    argv += ["--arch", "torchvision:densenet121", "--epochs", "0", "--out", str(out)]
    return main([*argv, "--checkpoint", str(checkpoint), *extra])


def _same_probabilities(out, probability) -> None:
    model, _ = load_model(out)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = torch.sigmoid(model.eval()(x))[:, 0]
        assert torch.allclose(ours, probability(x), atol=1e-5)


@pytest.mark.vision
@pytest.mark.parametrize("form", ["state_dict", "lightning", "dataparallel"])
def test_densenet_checkpoint_forms_through_the_cli(densenet_work, tmp_path, form):
    work, user = densenet_work
    state = user.state_dict()
    if form == "lightning":
        state = {
            "epoch": 3,
            "global_step": 120,
            "pytorch-lightning_version": "2.4.0",
            "state_dict": {f"model.{k}": v for k, v in state.items()}
            | {"criterion.pos_weight": torch.ones(14)},
            "hyper_parameters": {"lr": 1e-3},
        }
    elif form == "dataparallel":
        state = nn.DataParallel(user).state_dict()
        assert all(k.startswith("module.") for k in state)
    path = tmp_path / ("user.ckpt" if form == "lightning" else "user.pt")
    torch.save(state, path)
    assert _import(work, path, tmp_path / "m", "--head-output", "3") == 0
    _same_probabilities(tmp_path / "m", lambda x: torch.sigmoid(user(x))[:, 3])


@pytest.mark.vision
def test_densenet_two_class_checkpoint_through_the_cli(densenet_work, tmp_path):
    tv_models = pytest.importorskip("torchvision.models")
    work, _ = densenet_work
    torch.manual_seed(6)
    user = tv_models.densenet121(weights=None, num_classes=2).eval()
    torch.save(user.state_dict(), tmp_path / "two.pth")
    assert _import(work, tmp_path / "two.pth", tmp_path / "m", "--head-output", "1") == 0
    _same_probabilities(tmp_path / "m", lambda x: torch.softmax(user(x), dim=1)[:, 1])


@pytest.mark.vision
def test_densenet_pickled_module_through_the_cli(densenet_work, tmp_path, capsys):
    work, user = densenet_work
    torch.save(user, tmp_path / "whole.pt")
    capsys.readouterr()
    assert _import(work, tmp_path / "whole.pt", tmp_path / "refused", "--head-output", "3") == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--trust-pickle" in lines[0]
    assert not (tmp_path / "refused").exists()
    argv = ["--head-output", "3", "--trust-pickle"]
    assert _import(work, tmp_path / "whole.pt", tmp_path / "m", *argv) == 0
    _same_probabilities(tmp_path / "m", lambda x: torch.sigmoid(user(x))[:, 3])
