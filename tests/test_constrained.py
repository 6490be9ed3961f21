"""Constrained fine-tuning: it meets eps at t on the part it kept out where it can, says so
truthfully, and says so too where it cannot."""

import numpy as np
import pytest
import torch
from _helpers import biased_data

from fairtune.data import holdout_split
from fairtune.evaluation.metrics import binary_metrics
from fairtune.evaluation.thresholds import choose_threshold
from fairtune.methods import get_method
from fairtune.models import ModelSplit, predict_proba

pytestmark = pytest.mark.usefixtures("one_thread")


def eodds_at_t(model, data, reference_rate: float) -> float:
    """EOdds (mean) of the decisions at the threshold that keeps ``reference_rate``."""
    s = predict_proba(model, data).numpy()
    t = choose_threshold(data.labels.numpy(), s, "positive_rate", reference_rate)
    return binary_metrics(data.labels.numpy(), s, data.groups.numpy(), data.group_names, t)[
        "eodds_mean"
    ]


def start_rate(model, data) -> float:
    return float(np.mean(predict_proba(model, data).numpy() >= 0.5))


def test_it_meets_eps_on_the_kept_part_and_on_new_rows(start_model):
    external, test = biased_data(600, seed=0), biased_data(2000, seed=5)
    _, kept = holdout_split(external, 0.3, seed=0)
    before = eodds_at_t(start_model, kept, start_rate(start_model, kept))
    assert before > 0.1, "the start is biased at t"

    result = get_method("constrained", eps=0.05, lr=1e-2, epochs=10).fit(start_model, external)
    info = result.info
    assert info["constraint_met"] is True
    # recomputed here: the gap of the decisions at t on the rows it kept out
    gap = eodds_at_t(result.model, kept, start_rate(start_model, kept))
    assert gap == pytest.approx(info["gap_kept_part"]) and gap <= 0.05
    assert info["start_gap"] == pytest.approx(before)
    # and on rows it never saw the gap fell too, AUC kept
    test_rate = start_rate(start_model, test)
    assert eodds_at_t(result.model, test, test_rate) < 0.5 * eodds_at_t(
        start_model, test, test_rate
    )


def test_an_unreachable_eps_is_reported_as_not_met(start_model):
    external = biased_data(600, seed=0)
    result = get_method("constrained", eps=0.0, lr=1e-4, epochs=2, rho=2.0).fit(
        start_model, external
    )
    assert result.info["constraint_met"] is False
    assert result.info["gap_kept_part"] > 0
    # lambda <- max(0, lambda + rho (gap - eps)), from 0 after the first epoch
    first, second = result.info["epochs"]
    assert first["lambda"] == 0.0
    assert second["lambda"] == pytest.approx(2.0 * first["gap"])


def test_the_head_alone_can_be_constrained(start_model):
    external = biased_data(300, seed=0)
    result = get_method("constrained", train="head", epochs=2).fit(start_model, external)
    start = dict(start_model.named_parameters())
    moved = {n for n, p in result.model.named_parameters() if not torch.equal(p, start[n])}
    head = ModelSplit.of(start_model).head + "."
    assert moved and all(n.startswith(head) for n in moved)
