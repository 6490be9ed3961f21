"""The bias losses at the operating threshold (eodds_t, eopp_t, dp_t): a hand-computed case,
the hard gap they tend to as tau shrinks, and the threshold the methods aim them at."""

import math

import numpy as np
import pytest
import torch
from _helpers import biased_data

from fairtune.errors import FairtuneError
from fairtune.evaluation.metrics import binary_metrics
from fairtune.evaluation.thresholds import choose_threshold
from fairtune.finetune.losses import MovingThreshold, Objective, bias_loss, soft_decisions
from fairtune.finetune.tracking import ThresholdTracker
from fairtune.methods import get_method
from fairtune.models import predict_proba

pytestmark = pytest.mark.usefixtures("one_thread")

LOGITS = torch.tensor([0.0, 2.0, -1.0, 1.0])
LABELS = torch.tensor([1.0, 1.0, 0.0, 0.0])
GROUPS = torch.tensor([0, 1, 0, 1])
T = 1 / (1 + math.exp(-1.0))  # logit t = 1


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_the_at_threshold_gaps_match_a_hand_computed_case():
    # tau = 0.5: soft decisions sigmoid(2 (z - 1)) = sig(-2), sig(2), sig(-4), sig(0)
    tpr_gap = sig(2) - sig(-2)  # positives: group 0 at z=0, group 1 at z=2
    fpr_gap = sig(0) - sig(-4)  # negatives: group 0 at z=-1, group 1 at z=1
    rate_gap = 0.5 * (sig(2) + sig(0)) - 0.5 * (sig(-2) + sig(-4))
    at = (T, 0.5)
    got = {k: bias_loss(LOGITS, LABELS, GROUPS, 2, k, at).item() for k in ("eodds_t", "eopp_t")}
    assert got["eodds_t"] == pytest.approx(0.5 * (tpr_gap + fpr_gap), abs=1e-6)
    assert got["eopp_t"] == pytest.approx(tpr_gap, abs=1e-6)
    assert bias_loss(LOGITS, LABELS, GROUPS, 2, "dp_t", at).item() == pytest.approx(
        rate_gap, abs=1e-6
    )
    # the threshold-free loss of the same logits is another number
    assert bias_loss(LOGITS, LABELS, GROUPS, 2, "eodds").item() != pytest.approx(got["eodds_t"])
    objective = Objective(0.0, 1.0, "eodds_t", 2, at=MovingThreshold(T), tau=0.5)
    assert objective(LOGITS, LABELS, GROUPS).item() == pytest.approx(got["eodds_t"], abs=1e-6)


def test_a_small_tau_gives_the_hard_gap_of_the_decisions_at_t():
    data = biased_data(400, seed=3)
    z = data.inputs[:, 0] * 1.5 + data.inputs[:, 5]
    p = torch.sigmoid(z).numpy()
    t = choose_threshold(data.labels.numpy(), p, "balanced_accuracy")
    hard = binary_metrics(data.labels.numpy(), p, data.groups.numpy(), data.group_names, t)
    soft = bias_loss(z, data.labels, data.groups, 2, "eodds_t", (t, 1e-4)).item()
    assert soft == pytest.approx(hard["eodds_mean"], abs=1e-3)
    assert soft != pytest.approx(bias_loss(z, data.labels, data.groups, 2, "eodds").item(), 1e-2)


def test_soft_decisions_refuse_a_threshold_outside_0_1():
    with pytest.raises(FairtuneError, match="t in"):
        soft_decisions(LOGITS, 1.0)


def test_fullft_aims_at_the_threshold_chosen_again_after_each_epoch(start_model, monkeypatch):
    external = biased_data(300, seed=0)
    seen: list[float] = []
    estimate = ThresholdTracker.estimate

    def spy(self, model, data):
        seen.append(estimate(self, model, data))
        return seen[-1]

    monkeypatch.setattr(ThresholdTracker, "estimate", spy)
    method = get_method("fullft", bias_kind="eodds_t", beta=1.0, lr=1e-2, epochs=3)
    result = method.fit(start_model, external)
    assert len(seen) == 1 + 3  # before the phase, then after each epoch
    assert len(set(seen)) > 1, "t moves with the model"
    balanced = method.balanced(external)
    start_rate = float(np.mean(predict_proba(start_model, balanced).numpy() >= 0.5))
    assert method.tracker.reference_rate == pytest.approx(start_rate)
    scores = predict_proba(result.model, balanced).numpy()
    expected = choose_threshold(balanced.labels.numpy(), scores, "positive_rate", start_rate)
    assert seen[-1] == pytest.approx(expected)


@pytest.mark.parametrize("name", ["bmft", "swift", "bias_gd"])
def test_the_masked_methods_take_the_at_threshold_loss(name, start_model):
    settings = {
        "bmft": {"impair_epochs": 2, "repair_epochs": 1},
        "swift": {"step1_epochs": 2, "step2_epochs": 1},
        "bias_gd": {"epochs": 2},
    }[name]
    external = biased_data(300, seed=0)
    plain = get_method(name, **settings).fit(start_model, external)
    at_t = get_method(name, bias_kind="eodds_t", **settings).fit(start_model, external)
    assert not torch.equal(
        predict_proba(plain.model, external), predict_proba(at_t.model, external)
    )
    assert at_t.config["bias_kind"] == "eodds_t" and at_t.config["tau"] == 0.5
