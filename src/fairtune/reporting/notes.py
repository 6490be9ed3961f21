"""Notes under the comparison tables: what the table cannot show (failed settings, what the
reference row needs and at which positive rate it decides, the achievable front, and what
the cross-method selection kept, with its regret)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from fairtune.evaluation.criterion import Criterion
from fairtune.methods import REGISTRY
from fairtune.methods.registry import BASELINE
from fairtune.reporting.tables import fmt
from fairtune.selection.front import front_note
from fairtune.selection.records import ChoiceRecord, SearchRecord
from fairtune.selection.references import REFERENCE
from fairtune.selection.results import SELECTED, ResultRow, selection_summary


def _own_rate(references: list[ResultRow], rows: Sequence[ResultRow]) -> str:
    """The reference's positive rate on test beside the starting model's at t: its gaps are
    measured at an operating point of its own."""

    def mean_rate(chosen: list[ResultRow]) -> str:
        return fmt(math.fsum(r.metrics_tuned.positive_rate for r in chosen) / len(chosen))

    starts = [r for r in rows if r.method == BASELINE and not r.failed]
    beside = f", the starting model's at t {mean_rate(starts)}" if starts else ""
    return (
        f"It chooses its own positive rate ({mean_rate(references)} on test{beside}), so "
        "its gaps are not measured at the rows' operating point: read them beside the "
        "positive rate."
    )


def _noise(value: float) -> str:
    """The regret the test rows' noise alone shows, in words (nothing where not measured)."""
    if math.isnan(value):
        return ""
    return f" (the test rows' noise alone would show about {fmt(value)} even for the best model)"


def notes(rows: list[ResultRow], criterion: Criterion | None = None) -> list[str]:
    """What the table cannot show: failed settings and methods, a pruning that pruned
    nothing, what the reference row needs, and what the cross-method selection kept, with
    its regret (by ``criterion``, default equalized odds)."""
    criterion = criterion or Criterion()
    lines = []
    for r in rows:
        searched = r.selection if isinstance(r.selection, SearchRecord) else None
        if searched and r.method in REGISTRY:
            said = REGISTRY[r.method].notes(searched.info)
            lines += [f"{r.method} (seed {r.seed}) {note}" for note in said]
        if r.failed:
            lines.append(f"{r.method} (seed {r.seed}) failed: {r.failed}")
        elif searched and searched.failed:
            first = searched.failed[0]
            lines.append(
                f"{r.method} (seed {r.seed}): {len(searched.failed)} setting(s) failed and "
                f"were skipped, e.g. {first.setting}: {first.failed}"
            )
    references = [r for r in rows if r.needs_sensitive_attribute_at_prediction and not r.failed]
    if references:
        lines.append(
            f"{REFERENCE}: fairlearn's ThresholdOptimizer "
            f"({criterion.declared.constraint.replace('_', ' ')}) on the starting "
            "model's scores, fitted on the same external rows the methods fine-tune on; a "
            "reference, not a fine-tuned model: it NEEDS THE SENSITIVE ATTRIBUTE AT PREDICTION "
            f"TIME, and its decisions have no AUC (n/a). {_own_rate(references, rows)}"
        )
    lines += [
        front_note(r.seed, r.selection.front, criterion)
        for r in rows
        if isinstance(r.selection, ChoiceRecord) and r.selection.front is not None
    ]
    summary = selection_summary(rows)
    for seed in summary["per_seed"]:
        lines.append(
            f"{SELECTED} (seed {seed['seed']}): {seed['reason']}; selection regret on test "
            f"{fmt(seed['regret'])}{_noise(seed['regret_from_noise'])}"
            + (f"; {seed['cost'].text()}" if seed["cost"] else "")
        )
    if len(summary["per_seed"]) > 1:
        lines.append(
            f"selection regret over seeds: {fmt(summary['regret_mean'])}"
            f"±{fmt(summary['regret_std'])} (test {criterion.word} of the choice minus the best "
            f"test {criterion.word} within the AUC tolerance; reported only, never used to "
            f"choose){_noise(summary['regret_from_noise_mean'])}"
        )
    return lines
