"""The fairness objective as one declared choice: what the selection lowers and what guards it.

An :class:`Objective` names a gap metric of :data:`fairtune.evaluation.metrics.METRICS`, the bias
loss that trains towards it and fairlearn's ``ThresholdOptimizer`` constraint that
post-processes towards it. A :class:`Criterion` is the whole rule a selection follows:
lower the objective's metric at the threshold chosen on held-out data, among models
whose guard metric (AUC) stays within a tolerance of the starting model's.

Adding an objective: declare its metric in :data:`fairtune.evaluation.metrics.METRICS` (with
``objective`` set) and add one :class:`Objective` row to :data:`OBJECTIVES`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fairtune.errors import FairtuneError
from fairtune.evaluation.metrics import METRICS, Metric


@dataclass(frozen=True)
class Objective:
    """One fairness objective: its ``name`` (``--objective``), the metric key it lowers, a
    short ``word`` for sentences, its bias loss, the same loss of soft decisions at the
    operating threshold (``at_threshold``), and its ThresholdOptimizer constraint."""

    name: str
    key: str
    word: str
    bias_kind: str
    at_threshold: str
    constraint: str
    meaning: str


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective(
            "eodds",
            "eodds_mean",
            "EOdds",
            "eodds",
            "eodds_t",
            "equalized_odds",
            "equalized odds: equal TPR and FPR across groups",
        ),
        Objective(
            "eopp",
            "eopp",
            "EOpp",
            "eopp",
            "eopp_t",
            "true_positive_rate_parity",
            "equal opportunity: equal TPR (sensitivity) across groups",
        ),
        Objective(
            "dp",
            "dp",
            "DP",
            "dp",
            "dp_t",
            "demographic_parity",
            "demographic parity: equal positive rates across groups",
        ),
    )
}
"""Every objective by its ``--objective`` name; the first is the default."""

OBJECTIVE_NAMES: tuple[str, ...] = tuple(OBJECTIVES)
DEFAULT_OBJECTIVE = OBJECTIVE_NAMES[0]
GUARD = "auc"
"""The metric (higher is better) a choice may not lose more than the tolerance of."""
OBJECTIVE_HELP = (
    "the fairness objective every choice lowers and every table leads with: "
    + "; ".join(f"{o.name}: {o.meaning}" for o in OBJECTIVES.values())
)


def objective(name: str) -> Objective:
    """The declared objective ``name``; the one place an unknown name is refused."""
    if name not in OBJECTIVES:
        raise FairtuneError(f"unknown objective '{name}'; choose from {list(OBJECTIVES)}")
    return OBJECTIVES[name]


def objective_of(bias_kind: str) -> Objective:
    """The objective a bias loss trains towards (the authors' signed equalized-odds loss
    towards equalized odds)."""
    for o in OBJECTIVES.values():
        if bias_kind in (o.bias_kind, o.at_threshold):
            return o
    return OBJECTIVES[DEFAULT_OBJECTIVE]


def gap_of(bias_kind: str) -> str:
    """The metric key a bias loss lowers: that of the objective it trains towards."""
    return objective_of(bias_kind).key


def metric(key: str) -> Metric:
    """The declaration of metric ``key`` in :data:`fairtune.evaluation.metrics.METRICS`."""
    for m in METRICS:
        if m.key == key:
            return m
    raise FairtuneError(f"unknown metric '{key}'; choose from {[m.key for m in METRICS]}")


@dataclass(frozen=True)
class Criterion:
    """The rule by which held-out data chooses: lower the objective's metric at the threshold
    chosen by ``threshold_rule``, among models whose ``guard`` metric (higher is better)
    is at least the starting model's minus ``tolerance``."""

    objective: str = DEFAULT_OBJECTIVE
    tolerance: float = 0.01
    threshold_rule: str = "positive_rate"
    guard: str = GUARD

    def __post_init__(self) -> None:
        objective(self.objective)
        if self.guard != GUARD:
            raise FairtuneError(f"the selection guards {GUARD} alone, not {self.guard}")

    @property
    def declared(self) -> Objective:
        """The :class:`Objective` this criterion lowers."""
        return objective(self.objective)

    @property
    def key(self) -> str:
        """The metric key the criterion lowers, e.g. ``eodds_mean``."""
        return self.declared.key

    @property
    def label(self) -> str:
        """The lowered metric's label in tables, e.g. ``EOdds (mean)``."""
        return metric(self.key).label

    @property
    def word(self) -> str:
        """The objective's short name in sentences, e.g. ``EOdds``."""
        return self.declared.word

    @property
    def guard_label(self) -> str:
        """The guard metric's label, e.g. ``AUC``."""
        return metric(self.guard).label

    def text(self) -> str:
        """The criterion in words, as reports name it."""
        return (
            f"objective {self.objective}: the lowest {self.label} at the chosen threshold, "
            f"{self.guard_label} within {self.tolerance} of the starting model's"
        )
