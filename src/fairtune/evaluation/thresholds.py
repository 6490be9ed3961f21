"""Decision thresholds chosen on an external set (never on the test set).

A threshold is chosen by a named rule (:data:`THRESHOLD_RULES`) among cut
points between the scores, so every candidate realises a distinct split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fairtune.errors import FairtuneError
from fairtune.evaluation.metrics import check_inputs

THRESHOLD_WORDS: dict[str, str] = {
    "0.5": "0.5",
    "balanced_accuracy": "the best balanced accuracy on the held-out external part",
    "positive_rate": "the starting model's positive rate (at 0.5) on the held-out external part",
}
"""Rules :func:`choose_threshold` knows, each with how the reports say it chooses t."""

THRESHOLD_RULES: tuple[str, ...] = tuple(THRESHOLD_WORDS)
"""Rules :func:`choose_threshold` knows."""


def cut_points(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate thresholds and the number of rows predicted positive at each.

    Candidates are the midpoints between consecutive distinct scores, with 0
    and 1 added as end points, so every candidate lies strictly inside (0, 1)
    and together they realise every distinct split, including "all positive"
    and "all negative" where such a threshold exists.
    """
    edges = np.unique(np.r_[0.0, s, 1.0])
    cuts = 0.5 * (edges[1:] + edges[:-1])
    cuts = cuts[(cuts > 0.0) & (cuts < 1.0)]
    predicted = len(s) - np.searchsorted(np.sort(s), cuts, side="left")
    return cuts, predicted


def choose_threshold(
    y_true: Any, scores: Any, rule: str, reference_rate: float | None = None
) -> float:
    """Choose a decision threshold on an external set (never on the test set).

    Rules (:data:`THRESHOLD_RULES`):

    - ``"0.5"``: 0.5.
    - ``"balanced_accuracy"``: the cut point that maximises balanced accuracy
      (the lowest such cut on ties).
    - ``"positive_rate"``: the cut point whose fraction predicted positive is
      closest to ``reference_rate`` (e.g. the starting model's positive rate).

    Cut points are midpoints between consecutive distinct scores.
    """
    if rule not in THRESHOLD_RULES:
        raise FairtuneError(f"unknown threshold rule '{rule}': use one of {list(THRESHOLD_RULES)}")
    y, s, _ = check_inputs(y_true, scores)
    if rule == "0.5":
        return 0.5
    cuts, predicted = cut_points(s)
    if len(cuts) == 0:  # only possible in degenerate float cases
        return 0.5
    if rule == "positive_rate":
        if reference_rate is None:
            raise FairtuneError("rule 'positive_rate' needs reference_rate, e.g. the start rate")
        if not 0.0 <= reference_rate <= 1.0:
            raise FairtuneError(f"reference_rate must lie in [0, 1], got {reference_rate}")
        best = np.argmin(np.abs(predicted / len(s) - reference_rate))
        return float(cuts[best])
    positives = int(y.sum())
    if positives in (0, len(y)):
        raise FairtuneError(
            "rule 'balanced_accuracy' needs both labels in y_true: use a set with both classes"
        )
    pos_sorted = np.sort(s[y == 1])
    tp = len(pos_sorted) - np.searchsorted(pos_sorted, cuts, side="left")
    fp = predicted - tp
    negatives = len(y) - positives
    balanced = 0.5 * (tp / positives + (negatives - fp) / negatives)
    return float(cuts[np.argmax(balanced)])
