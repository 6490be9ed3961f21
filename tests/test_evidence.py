"""Held-out evidence: every model ``debias`` returns comes with its starting model's and its
own EOdds (mean) at t and AUC on held-out external rows, and a warning when it got worse."""

import warnings

import numpy as np
import pytest
from _helpers import biased_data
from sklearn.metrics import roc_auc_score

import fairtune
from fairtune.data import holdout_split
from fairtune.evaluation.evidence import WorseModelWarning
from fairtune.evaluation.metrics import FairnessWarning
from fairtune.models import predict_proba

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_method_that_makes_held_out_auc_worse_warns(start_model):
    external = biased_data(400, seed=2)
    # BMFT zeroes the head; with no repair epochs every row gets the same score (AUC 0.5)
    with pytest.warns(WorseModelWarning, match="held-out AUC fell") as caught:
        result = fairtune.debias(
            start_model, external, method="bmft", repair_epochs=0, impair_epochs=1
        )
    assert issubclass(caught[0].category, FairnessWarning)
    evidence = result.evidence
    _, held = holdout_split(external, 0.3, 0)
    y = held.labels.numpy()
    before = roc_auc_score(y, predict_proba(start_model, held).numpy())
    assert evidence.rows == len(held)
    assert evidence.auc.before == pytest.approx(before)
    assert evidence.auc.after == pytest.approx(0.5)
    assert evidence.auc.high < 0  # the paired interval of the change lies below 0
    assert "held-out AUC fell" in evidence.problems()[0]
    assert "held-out evidence" in repr(result) and "auc" in repr(result)


def test_a_method_that_keeps_the_model_is_silent_and_its_evidence_is_independent(start_model):
    external = biased_data(400, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", WorseModelWarning)
        result = fairtune.debias(start_model, external, method="fullft", lr=1e-12, epochs=1)
    fit, held = holdout_split(external, 0.3, 0)
    assert len(fit) + len(held) == len(external)
    y = held.labels.numpy()
    after = roc_auc_score(y, predict_proba(result.model, held).numpy())
    assert result.evidence.auc.after == pytest.approx(after)
    assert result.evidence.objective.after == pytest.approx(result.evidence.objective.before)
    low, high = result.evidence.auc.low, result.evidence.auc.high
    assert low <= 0 <= high and np.isfinite([low, high]).all()
    assert result.evidence.to_dict()["problems"] == []
