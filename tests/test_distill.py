"""Distilling group thresholds: the targets are fairlearn's own decision probabilities, and
the model learns the group thresholds' decisions where its inputs carry the attribute, and
not where they do not."""

import numpy as np
import pytest
import torch
from _helpers import biased_data
from fairlearn.postprocessing import ThresholdOptimizer

from fairtune.data import FairData
from fairtune.evaluation.postprocess import (
    LabelledScores,
    _ScoreColumn,
    decision_probabilities,
    threshold_optimizer_reference,
)
from fairtune.finetune.losses import Objective
from fairtune.finetune.training import Phase, run_phase
from fairtune.methods import get_method
from fairtune.models import MLP, predict_proba

pytestmark = pytest.mark.usefixtures("one_thread")


def without_attribute(data: FairData) -> FairData:
    """The rows with column 5, which encodes the group, set to 0."""
    inputs = data.inputs.clone()
    inputs[:, 5] = 0.0
    return data.replace(inputs=inputs)


def biased_model(drop_attribute: bool) -> MLP:
    torch.manual_seed(0)
    model = MLP(6, (8,))
    train = biased_data(1000, seed=1, skew=0.1)
    phase = Phase(
        objective=Objective.pred(kind="bce"),
        trainable=[n for n, _ in model.named_parameters()],
        epochs=20,
        lr=1e-2,
        optimizer="adam",
        weight_decay=0.0,
    )
    run_phase(model, without_attribute(train) if drop_attribute else train, phase)
    return model


def test_decision_probabilities_are_fairlearns():
    data = biased_data(400, seed=2)
    s = torch.sigmoid(1.5 * data.inputs[:, 0] + data.inputs[:, 5]).numpy()
    y, g, names = data.labels.numpy(), data.groups.numpy(), data.group_names
    rules = threshold_optimizer_reference(LabelledScores(s, y, g), s, g, names).rules
    optimizer = ThresholdOptimizer(
        estimator=_ScoreColumn(), constraints="equalized_odds", prefit=True,
        predict_method="predict_proba",
    )  # fmt: skip
    optimizer.fit(s[:, None], y.astype(int), sensitive_features=np.asarray(names)[g])
    pmf = optimizer._pmf_predict(s[:, None], sensitive_features=np.asarray(names)[g])[:, 1]
    q = decision_probabilities(rules, s, g, names)
    np.testing.assert_allclose(q, pmf, atol=1e-12)
    assert np.mean((q > 0) & (q < 1)) > 0, "some decisions are randomized"


@pytest.mark.parametrize("drop_attribute", [False, True])
def test_it_reproduces_the_group_thresholds_decisions_where_the_attribute_is_an_input(
    drop_attribute,
):
    model = biased_model(drop_attribute)
    external, test = biased_data(600, seed=0), biased_data(2000, seed=5)
    if drop_attribute:
        external, test = without_attribute(external), without_attribute(test)
    result = get_method("distill", lr=1e-2).fit(model, external)
    t = result.info["threshold"]

    start = predict_proba(model, test).numpy()
    g, names = test.groups.numpy(), test.group_names
    fit_scores = predict_proba(model, external).numpy()
    fitted_on = LabelledScores(fit_scores, external.labels.numpy(), external.groups.numpy())
    objective = result.info["targets_at"]
    decisions = threshold_optimizer_reference(
        fitted_on, start, g, names, objective=objective
    ).decisions
    own = predict_proba(result.model, test).numpy() >= t
    flipped = decisions != (start >= t)  # where the group thresholds overrule the start
    assert flipped.sum() > 100
    reproduced = np.mean(own[flipped] == decisions[flipped])
    if drop_attribute:
        # neither the attribute nor a proxy among the inputs: it cannot learn them
        assert reproduced < 0.3
    else:
        assert reproduced > 0.6
        assert np.mean(own == decisions) > 0.95
        assert result.info["agreement"] > result.info["agreement_start"] + 0.05


def test_the_targets_come_from_the_objective_whose_rate_lies_nearest_the_start_at_t():
    model = biased_model(drop_attribute=False)
    rows = biased_data(1200, seed=0)
    y = rows.labels.numpy()
    kept = np.flatnonzero((y == 0) | (np.arange(len(y)) % 4 == 0))  # a quarter of positives
    external = rows.subset(kept)  # unbalanced classes: the two objectives part
    nearest = get_method("distill", epochs=0).fit(model, external).info
    s = predict_proba(model, external).numpy()
    y, g, names = external.labels.numpy(), external.groups.numpy(), external.group_names
    rate = float(np.mean(s >= nearest["threshold"]))
    rates = {}
    for objective in ("accuracy_score", "balanced_accuracy_score"):
        optimizer = ThresholdOptimizer(
            estimator=_ScoreColumn(), constraints="equalized_odds", objective=objective,
            prefit=True, predict_method="predict_proba",
        )  # fmt: skip
        optimizer.fit(s[:, None], y.astype(int), sensitive_features=np.asarray(names)[g])
        pmf = optimizer._pmf_predict(s[:, None], sensitive_features=np.asarray(names)[g])
        rates[objective] = float(pmf[:, 1].mean())
    assert nearest["positive_rate_at_t"] == pytest.approx(rate)
    assert nearest["targets_positive_rate"] == pytest.approx(rates)
    assert abs(rates["accuracy_score"] - rates["balanced_accuracy_score"]) > 0.02
    assert nearest["targets_at"] == min(rates, key=lambda o: abs(rates[o] - rate))
    for objective in rates:
        fixed = get_method("distill", epochs=0, targets_at=objective).fit(model, external).info
        assert fixed["targets_at"] == objective
        assert list(fixed["targets_positive_rate"]) == [objective]


def test_a_search_fits_the_group_thresholds_once_for_every_learning_rate(monkeypatch):
    import fairtune.methods.distill as distill
    from fairtune.methods.context import FitContext

    model = biased_model(drop_attribute=False)
    external = biased_data(600, seed=0)
    calls = []
    real = distill.threshold_optimizer_reference

    def counted(*args, **kwargs):
        calls.append(kwargs["objective"])
        return real(*args, **kwargs)

    monkeypatch.setattr(distill, "threshold_optimizer_reference", counted)
    shared = FitContext(targets={})
    infos = [
        get_method("distill", epochs=0, lr=lr).fit(model, external, context=shared).info
        for lr in (1e-3, 1e-2)
    ]
    assert sorted(calls) == ["accuracy_score", "balanced_accuracy_score"]  # once each
    assert infos[0]["rules"] == infos[1]["rules"]
    alone = get_method("distill", epochs=0).fit(model, external).info  # no cache: its own
    assert alone["rules"] == infos[0]["rules"] and len(calls) == 4
