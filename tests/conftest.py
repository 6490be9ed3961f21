"""Fixtures shared by several test modules."""

from __future__ import annotations

import os

import pytest
import torch
from _helpers import biased_data, toy_table
from torch import nn

from fairtune.cli import main
from fairtune.finetune.losses import Objective
from fairtune.finetune.training import Phase, run_phase
from fairtune.models import MLP


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train many times faster on one thread than on two busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def start_model() -> nn.Module:
    """A small MLP trained on data where group 1's positives are mostly missing: a biased
    starting model for the comparison tests."""
    torch.manual_seed(0)
    model = MLP(6, (8,))
    phase = Phase(
        objective=Objective.pred(kind="bce"),
        trainable=[n for n, _ in model.named_parameters()],
        epochs=20,
        lr=1e-2,
        optimizer="adam",
        weight_decay=0.0,
    )
    run_phase(model, biased_data(800, seed=1, skew=0.1), phase)
    return model


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A CSV table split into parts and a model trained on its train part, by the CLI."""
    path = tmp_path_factory.mktemp("cli")
    toy_table(900).to_csv(path / "table.csv", index=False)
    assert (
        main(
            [
                "split",
                "--data",
                str(path / "table.csv"),
                "--label",
                "y",
                "--sensitive",
                "sex",
                "--out",
                str(path / "parts"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "--data",
                str(path / "parts" / "train.csv"),
                "--label",
                "y",
                "--sensitive",
                "sex",
                "--out",
                str(path / "model"),
                "--epochs",
                "3",
            ]
        )
        == 0
    )
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under FAIRTUNE_VISION_REQUIRED (``make test-vision``) a skipped ``vision`` test fails:
    the vision environment must hold torchvision and timm, so nothing there is skipped."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("FAIRTUNE_VISION_REQUIRED")
        and item.get_closest_marker("vision") is not None
    ):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"a vision test was skipped in the vision environment: {reason}"
