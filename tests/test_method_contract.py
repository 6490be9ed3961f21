"""The contract every registered method keeps, under every objective: one shared tester.

Parametrised over ``REGISTRY`` x ``criterion.OBJECTIVES`` (a new method or objective is
tested here without a line added), with the methods' declared capabilities checked as
PEFT checks its adapters': a method with ``tunes_backbone = False`` never moves the
backbone beyond its pruning mask; a hard mask holds its 0 entries bit for bit, a pruning
mask zeroes them; the model handed in is untouched; the bias loss follows the objective.
"""

from dataclasses import fields

import pytest
import torch
from _helpers import FAST, biased_data, snapshot
from torch import nn

from fairtune.errors import FairtuneError
from fairtune.evaluation.criterion import OBJECTIVES
from fairtune.finetune.losses import Objective
from fairtune.finetune.training import Phase, run_phase
from fairtune.methods import REGISTRY, RESERVED, get_method, register
from fairtune.models import MLP, ModelSplit, predict_proba
from fairtune.settings import LEARNING_RATE, of_kind

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    mlp = MLP(6, (8,))
    phase = Phase(
        objective=Objective.pred(kind="bce"),
        trainable=[n for n, _ in mlp.named_parameters()],
        epochs=15,
        lr=1e-2,
        optimizer="adam",
        weight_decay=0.0,
    )
    run_phase(mlp, biased_data(600, seed=1, skew=0.1), phase, seed=0)
    return mlp


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_keeps_its_contract_under_every_objective(name, objective, model):
    external = biased_data(240, seed=3)
    before = snapshot(model)
    kind = REGISTRY[name].bias_kind_for(objective)  # the at-threshold kind for constrained
    result = get_method(name, **FAST.get(name, {}), bias_kind=kind).fit(model, external)

    assert result.config["bias_kind"] == kind
    assert snapshot(model).keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in snapshot(model).items())  # input untouched
    scores = predict_proba(result.model, external)
    assert torch.isfinite(scores).all()

    after = snapshot(result.model)
    mask = result.mask
    if mask is not None:
        for param, m in mask.values.items():
            zero = m == 0
            if mask.kind == "prune":  # pruned weights are zero, the rest as they were
                assert (after[param][zero] == 0).all(), param
            elif mask.kind == "hard":
                assert torch.equal(after[param][zero], before[param][zero]), param
    if not REGISTRY[name].tunes_backbone:
        kept = mask.values if mask is not None and mask.kind == "prune" else {}
        for param in ModelSplit.of(model).backbone_params():
            unpruned = kept[param] != 0 if param in kept else torch.ones_like(after[param]).bool()
            assert torch.equal(after[param][unpruned], before[param][unpruned]), param


@pytest.mark.parametrize("reserved", RESERVED)
def test_a_reserved_name_is_refused(reserved):
    class Squatter(REGISTRY["llft"]):
        name = reserved

    with pytest.raises(FairtuneError, match=f"'{reserved}' is reserved"):
        register(Squatter)
    assert reserved not in REGISTRY


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_learning_rate_is_declared_one(name):
    """A search scales learning rates on a log scale and the costly-backbone grids try ten
    times each: both find them by declaration, so a setting whose help says it is a learning
    rate must be declared with ``learning_rate``."""
    config_class = REGISTRY[name].config_class
    said = {f.name for f in fields(config_class) if "learning rate" in f.metadata["help"]}
    assert said == {f.name for f in of_kind(config_class, LEARNING_RATE)}
