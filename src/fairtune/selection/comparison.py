"""Comparison: every method from the same starting model, on the same data, measured alike.

Per seed (:func:`fairtune.selection.auto.run_seed`), the external set is split into a
part the fine-tuning sees and a held-out part it never sees; thresholds, each
method's setting and the one choice across methods are made on the held-out
part. The test set only measures: one row per method, the post-processing
reference row and the ``selected`` row with its selection regret; with several
test sets, these rows once per test set, from the same fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from torch import nn

from fairtune.data import FairData, check_groups
from fairtune.errors import FairtuneError
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.evaluate import evaluate_scores
from fairtune.evaluation.measurement import Metrics
from fairtune.evaluation.paired import ScoredModel, regret_from_noise
from fairtune.methods.registry import BASELINE, ORIGINAL
from fairtune.models import predict_proba
from fairtune.selection.auto import SeedRun, choice_record, held_out, run_seed
from fairtune.selection.front import achievable_front
from fairtune.selection.halving import halving_text
from fairtune.selection.handback import SavedModels
from fairtune.selection.progress import run_view
from fairtune.selection.records import BaselineRecord, BestOnTest, Record, SearchRecord, Tried
from fairtune.selection.references import threshold_optimizer_row
from fairtune.selection.results import SELECTED, ResultRow
from fairtune.selection.rules import ScoreOnTest, comparable_on_test, selection_regret
from fairtune.selection.search import Candidate, CompareSettings, MethodSearch
from fairtune.selection.workers import SearchPool


def compare(
    model: nn.Module,
    external: FairData,
    test: FairData | Mapping[str, FairData],
    settings: CompareSettings | None = None,
    head: str | None = None,
    progress: bool = False,
    models: SavedModels | None = None,
) -> list[ResultRow]:
    """Run every method from ``model``; per seed the baseline row, one row per method,
    the ``threshold_optimizer`` reference row and (with any method fitted) the
    ``selected`` row.

    ``test`` is one test set or several by name (e.g. in- and out-of-distribution):
    the methods are fitted once per seed and every row is measured on each test set;
    with several, each row names its ``test_set``.

    With ``settings.jobs`` above one, the methods of each seed are fitted side by side in
    that many worker processes (:mod:`fairtune.selection.workers`), with the same results.
    Given ``models``, each seed's selected model (and, if asked, each method's) is
    written there at the end (:class:`~fairtune.selection.handback.SavedModels`).
    """
    settings = settings or CompareSettings()
    tests = _test_sets(external, test)
    named = len(tests) > 1
    rows = []
    view = run_view(candidates(settings), progress, settings.criterion)
    with SearchPool(settings.jobs) as pool, view:
        for seed in settings.seeds:
            run = run_seed(model, external, settings, seed, head, progress, pool)
            if models is not None:
                models.gather(run)
            for name, data in tests.items():
                measured = _seed_rows(model, run, data)
                rows += [replace(r, test_set=name) for r in measured] if named else measured
    if models is not None:
        models.write()
    return rows


def candidates(settings: CompareSettings) -> int:
    """How many candidates (a method's setting on a seed) a comparison fits."""
    return len(settings.seeds) * sum(settings.tries(m) for m in settings.methods)


def _test_sets(
    external: FairData, test: FairData | Mapping[str, FairData]
) -> dict[str, FairData]:
    """The test sets by name, each checked to have the external set's groups."""
    tests = dict(test) if isinstance(test, Mapping) else {"test": test}
    if not tests:
        raise FairtuneError("compare needs at least one test set")
    check_groups(external)
    for name, data in tests.items():
        check_groups(data)
        if external.group_names != data.group_names:
            which = "test" if len(tests) == 1 else f"test set {name!r}"
            raise FairtuneError(
                f"external groups {external.group_names} differ from {which} groups "
                f"{data.group_names}"
            )
    return tests


def _seed_rows(model: nn.Module, run: SeedRun, test: FairData) -> list[ResultRow]:
    """One seed's rows measured on one test set: baseline, methods, reference, selected."""
    settings, seed = run.context.settings, run.context.seed
    criterion = settings.criterion
    selection = BaselineRecord(held_out(run.start, criterion))
    rows = [_row(BASELINE, seed, run.start, selection, test, settings)]
    rows += [_method_row(found, run, test) for found in run.searches]
    rows.append(
        threshold_optimizer_row(model, run.context.fit, test, seed, settings.n_boot, criterion)
    )
    if run.pool():
        rows.append(_selected_row(run, test))
    return rows


def _method_row(found: MethodSearch, run: SeedRun, test: FairData) -> ResultRow:
    """The row of one method: its setting kept on held-out data, or its failure."""
    settings, seed = run.context.settings, run.context.seed
    rule, criterion = settings.selection_rule(), settings.criterion
    described = rule.text() if settings.grid else "defaults (no search)"
    if settings.search == "halving":
        described = f"{halving_text(settings)}; {rule.text()}"
    failed = [Tried(f.point, failed=f.reason) for f in found.failed]
    candidates = found.candidates
    if not candidates:
        selection = SearchRecord(
            described, None, found.tried(criterion), found.time_s, failed=failed
        )
        return ResultRow(
            method=found.method,
            seed=seed,
            config={},
            wall_time_s=found.time_s,
            threshold=math.nan,
            threshold_rule=settings.threshold_rule,
            metrics=Metrics.undefined(),
            metrics_tuned=Metrics.undefined(),
            ci=None,
            ci_tuned=None,
            selection=selection,
            failed=f"every setting tried failed; the first: {failed[0].failed}",
        )
    best = candidates[rule.choose([c.held for c in candidates], run.start.held.auc)]
    selection = SearchRecord(
        described,
        best.point,
        found.tried(criterion),
        found.time_s,
        held_out(best, criterion),
        best.result.info,
        failed,
    )
    return _row(found.method, seed, best, selection, test, settings)


NOISE_POOL = 5
"""How many of the best models on test the regret's noise is measured among: a model far
above them is rarely the lowest in a resample, so fewer gives a slightly lower (never a
higher) figure, in a fraction of the time."""


@dataclass(frozen=True)
class OnTest:
    """A candidate measured on test at the threshold chosen for it on held-out: its AUC,
    value and degeneracy, and its scores for the resampling of the regret's noise."""

    score: ScoreOnTest
    model: ScoredModel


def _on_test(candidate: Candidate, test: FairData, criterion: Criterion) -> OnTest:
    """AUC and the criterion's metric on test, at the threshold chosen for the candidate on
    held-out."""
    scores = predict_proba(candidate.result.model, test)
    metrics = evaluate_scores(test, scores, candidate.held.threshold).metrics
    return OnTest(
        ScoreOnTest(metrics.auc, metrics.value(criterion.key), metrics.degenerate),
        ScoredModel(scores.numpy(), candidate.held.threshold),
    )


def _selected_row(run: SeedRun, test: FairData) -> ResultRow:
    """The one choice across methods, measured on test, with its selection regret and the
    regret the test rows' noise alone shows."""
    settings = run.context.settings
    criterion = settings.criterion
    pool = run.pool()
    measured = [_on_test(c, test, criterion) for c in (run.start, *(c for _, c in pool))]
    original, scores = measured[0].score, [m.score for m in measured[1:]]
    index = run.choice.index
    selected = original if index is None else scores[index]
    regret, best = selection_regret(selected, original, scores, settings.auc_tolerance)
    ranked = comparable_on_test(original, scores, settings.auc_tolerance)[:NOISE_POOL]
    noise = math.nan
    if ranked:
        models = [measured[i].model for i in ranked]
        labels, groups = test.labels.numpy(), test.groups.numpy()
        noise = regret_from_noise(labels, groups, test.group_names, models, key=criterion.key)
    if best is None:
        best_on_test = BestOnTest(ORIGINAL, {}, criterion.key, original.value, noise)
    else:
        method, candidate = pool[best]
        best_on_test = BestOnTest(
            method, candidate.point, criterion.key, scores[best].value, noise
        )
    selection = replace(
        choice_record(run), regret=regret, best_on_test=best_on_test, front=achievable_front(run)
    )
    row = _row(SELECTED, run.context.seed, run.chosen(), selection, test, settings)
    choice = {"selected": run.choice.method, "setting": run.choice.setting}
    return replace(row, config={**choice, **row.config}, wall_time_s=run.search_time_s())


def _row(
    method: str,
    seed: int,
    chosen: Candidate,
    selection: Record,
    test: FairData,
    settings: CompareSettings,
) -> ResultRow:
    """One results row: test metrics at 0.5 and at the chosen threshold, with intervals."""
    scores = predict_proba(chosen.result.model, test)
    threshold = chosen.held.threshold
    at_half = evaluate_scores(test, scores, 0.5, settings.n_boot, seed)
    tuned = evaluate_scores(test, scores, threshold, settings.n_boot, seed)
    return ResultRow(
        method=method,
        seed=seed,
        config=chosen.result.config,
        wall_time_s=chosen.result.wall_time_s,
        threshold=threshold,
        threshold_rule=settings.threshold_rule,
        metrics=at_half.metrics,
        metrics_tuned=tuned.metrics,
        ci=at_half.intervals,
        ci_tuned=tuned.intervals,
        selection=selection,
    )
