"""Held-out evidence: every model ``debias`` returns comes with its starting model's and its
own EOdds (mean) at t and AUC on held-out external rows, and a warning when it got worse."""

import warnings

import numpy as np
import pytest
from _helpers import biased_data
from sklearn.metrics import roc_auc_score

import fairtune
from fairtune.data import holdout_split
from fairtune.evaluation.evidence import (
    Change,
    Evidence,
    WeakEvidenceWarning,
    WorseModelWarning,
    warn_if_worse,
)
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


def _evidence(rows: int, auc: tuple[float, float, float, float]) -> Evidence:
    before, after, low, high = auc
    same = Change("eodds_mean", 0.2, 0.1, -0.15, -0.05)
    auc_change = Change("auc", before, after, low, high)
    return Evidence(rows, 0.3, "positive_rate", 0.01, 1000, same, auc_change)


def test_too_few_held_out_rows_to_rule_out_an_auc_fall_warn_apart_from_worse():
    weak = _evidence(120, (0.80, 0.805, -0.06, 0.07))  # better here, but a fall of 0.06 fits
    assert weak.problems() == [] and "reaches -0.060" in weak.blind_spot()
    with pytest.warns(WeakEvidenceWarning, match="120 held-out rows cannot rule out") as caught:
        warn_if_worse(weak, "auto")
    assert not any(issubclass(w.category, WorseModelWarning) for w in caught)
    assert weak.to_dict()["blind_spot"] == weak.blind_spot()
    sure = _evidence(5000, (0.80, 0.805, -0.004, 0.014))  # the interval rules the fall out
    worse = _evidence(5000, (0.80, 0.70, -0.12, -0.08))
    assert sure.blind_spot() is None and "reaches" in worse.blind_spot()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        warn_if_worse(sure, "auto")
        warn_if_worse(worse, "auto")
    assert [w.category for w in said] == [WorseModelWarning]  # worse says it once, not twice


def test_a_fit_its_held_out_rows_cannot_vouch_for_gives_a_weak_evidence_warning(start_model):
    external = biased_data(400, seed=2)  # 119 held-out rows (stratified by group and label)
    with pytest.warns(WeakEvidenceWarning, match="119 held-out rows cannot rule out") as said:
        result = fairtune.debias(start_model, external, method="fullft", lr=1e-1, epochs=5)
    assert not any(issubclass(w.category, WorseModelWarning) for w in said)
    evidence = result.evidence
    assert evidence.problems() == [] and evidence.auc.low < -evidence.tolerance
