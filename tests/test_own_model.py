"""A model and data of the user's own: debiased, saved, loaded back; arrays as fairlearn has."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import fairtune
from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.methods import DebiasResult
from fairtune.modelio import CONFIG_FILE, load_model
from fairtune.models import predict_proba


class OwnNet(nn.Module):
    """Not in the registry: BatchNorm buffers and a head under an unusual name."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, width), nn.BatchNorm1d(width), nn.ReLU())
        self.classifier_out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier_out(self.trunk(x))


def _frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    frame["skin"] = rng.choice(["dark", "light", "medium"], n)
    frame["y"] = ((frame.a + 0.7 * (frame.skin == "light")) > 0.2).astype(int)
    return frame


@pytest.fixture(scope="module")
def external() -> FairData:
    frame = _frame()
    return FairData.from_arrays(frame[["a", "b", "c", "d"]], frame["y"], frame["skin"])


@pytest.mark.parametrize("method", ["swift", "bmft"])
def test_own_module_round_trip(tmp_path, external, method, one_thread):
    torch.manual_seed(0)
    model = OwnNet()
    result = fairtune.debias(model, external, method=method, batch_size=32)
    saved = result.save(tmp_path / method)
    config = json.loads((saved / CONFIG_FILE).read_text())
    assert config["arch"] == {"name": "OwnNet"}
    assert set(config["versions"]) == {"fairtune", "torch", "python"}
    assert config["versions"]["torch"] == torch.__version__

    with pytest.raises(FairtuneError, match=r"unknown architecture 'OwnNet'.*model=YourModel"):
        load_model(saved)
    fresh = OwnNet()
    loaded, _ = load_model(saved, model=fresh)
    assert loaded is fresh
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key
    assert torch.equal(predict_proba(result.model, external), predict_proba(fresh, external))

    back = DebiasResult.load(saved, model=OwnNet())
    assert back.method == method
    assert back.config == result.config
    assert len(back.history) == len(result.history)
    assert back.mask.kind == result.mask.kind
    for name, values in result.mask.values.items():
        assert torch.equal(back.mask.values[name], values), name
    assert torch.equal(predict_proba(back.model, external), predict_proba(fresh, external))


def test_wrong_module_names_the_keys(tmp_path, external, one_thread):
    result = fairtune.debias(OwnNet(), external, method="llft", batch_size=32)
    saved = result.save(tmp_path / "llft")
    with pytest.raises(FairtuneError) as info:
        load_model(saved, model=OwnNet(width=6))
    message = str(info.value)
    assert "\n" not in message
    assert "wrong shape" in message and "trunk.0.weight (8, 4) vs (6, 4)" in message

    class Renamed(OwnNet):
        def __init__(self) -> None:
            super().__init__()
            self.head = self.classifier_out
            del self.classifier_out

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.trunk(x))

    with pytest.raises(
        FairtuneError, match=r"missing \['head.weight'.*unexpected \['classifier_out"
    ):
        load_model(saved, model=Renamed())


def test_string_groups_from_pandas_sorted(external):
    assert external.group_names == ("dark", "light", "medium")
    assert external.attribute == "skin"
    frame = _frame()
    expected = frame["skin"].map({"dark": 0, "light": 1, "medium": 2}).to_numpy()
    assert np.array_equal(external.groups.numpy(), expected)
    assert external.inputs.dtype == torch.float32 and external.inputs.shape == (240, 4)


def test_numeric_groups_sorted_by_value_and_lists_and_tensors():
    data = FairData.from_arrays(
        [[0.0], [1.0], [2.0], [3.0]], torch.tensor([0, 1, 1, 0]), [10, 2, 2, 1]
    )
    assert data.group_names == ("1", "2", "10")
    assert data.groups.tolist() == [2, 1, 1, 0]
    assert data.labels.tolist() == [0.0, 1.0, 1.0, 0.0]
    fixed = FairData.from_arrays(
        np.zeros((3, 2)), [1, 0, 1], ["m", "f", "m"], group_names=["m", "f"]
    )
    assert fixed.groups.tolist() == [0, 1, 0]
    with pytest.raises(FairtuneError, match=r"group\(s\) \['x'\]"):
        FairData.from_arrays(np.zeros((2, 2)), [1, 0], ["m", "x"], group_names=["m", "f"])


def test_crossed_groups_from_a_frame():
    groups = pd.DataFrame({"sex": ["F", "M", "F"], "age": ["old", "old", "young"]})
    data = FairData.from_arrays(np.zeros((3, 1)), [0, 1, 1], groups)
    assert data.group_names == ("F & old", "F & young", "M & old")
    assert data.attribute == "sex & age"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([[0], [1], [1], [0]]), r"labels must be 1-D, one per row; got shape \(4, 1\)"),
        ([0, 1, 2, 1], r"labels hold \[0.0, 1.0, 2.0\], not 0/1"),
        ([0.0, 1.0, float("nan"), 1.0], "not 0/1"),
    ],
)
def test_bad_labels_refused_at_construction(labels, message):
    with pytest.raises(FairtuneError, match=message):
        FairData.from_arrays(np.zeros((4, 2)), labels, ["a", "b", "a", "b"])
    as_tensor = torch.tensor(np.asarray(labels, dtype=np.float32))
    with pytest.raises(FairtuneError, match=message):
        FairData(torch.zeros(4, 2), as_tensor, torch.tensor([0, 1, 0, 1]), ["a", "b"])


def test_group_ids_outside_the_names_refused():
    with pytest.raises(FairtuneError, match=r"each in 0\.\.1"):
        FairData(
            torch.zeros(3, 1), torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0, 1, 2]), ["a", "b"]
        )
