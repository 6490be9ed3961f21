"""One selection across methods: every method's settings and the unchanged starting model.

:func:`run_seed` fits every method's settings on one seed's fit part and lets
:class:`~fairtune.selection.rules.CrossMethodRule` choose on the held-out part;
``compare`` turns the run into rows, :func:`select_across_methods` (``debias
--method auto``) into one model. Test data never enters here.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace

from torch import nn

from fairtune.data import FairData, check_groups
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.evidence import EvidenceRule, measure, warn_if_worse
from fairtune.evaluation.paired import ScoredModel
from fairtune.methods import DebiasResult
from fairtune.methods.registry import AUTO, BASELINE, ORIGINAL
from fairtune.models import predict_proba
from fairtune.selection.halving import Prepared, final_rung, halving_text, prepare
from fairtune.selection.progress import run_view
from fairtune.selection.records import ChoiceRecord, HeldOut, SearchCost
from fairtune.selection.rules import Contender, CrossChoice, HeldOutRows, held_out_score
from fairtune.selection.search import (
    Candidate,
    CompareSettings,
    MethodSearch,
    SearchContext,
    fit_and_held,
)
from fairtune.selection.workers import SearchPool, SearchTask

AUTO_SEARCH = "halving"
"""The search ``auto`` runs unless told otherwise (compare's default stays the grid)."""


@dataclass
class SeedRun:
    """One seed's search: the starting model as a candidate, every method's settings tried,
    and the cross-method choice among them."""

    context: SearchContext
    start: Candidate
    searches: list[MethodSearch]
    choice: CrossChoice

    def pool(self) -> list[tuple[str, Candidate]]:
        """Every fitted setting of every method, with its method's name, in the order fitted."""
        return [(s.method, c) for s in self.searches for c in s.candidates]

    def chosen(self) -> Candidate:
        """The candidate the cross-method rule kept (the starting model if none)."""
        return self.start if self.choice.index is None else self.pool()[self.choice.index][1]

    def search_time_s(self) -> float:
        """Seconds spent fitting every method's settings."""
        return sum(s.time_s for s in self.searches)

    def rows(self) -> int:
        """Rows passed by the fine-tuning of every setting tried."""
        return sum(s.rows for s in self.searches)


def run_seed(
    model: nn.Module,
    external: FairData,
    settings: CompareSettings,
    seed: int,
    head: str | None = None,
    progress: bool = False,
    workers: SearchPool | None = None,
) -> SeedRun:
    """Split ``external`` by ``seed``, fit every method's settings, choose across them.

    The methods are fitted by ``workers`` (several seeds can share them), else by a pool
    of ``settings.jobs`` started for this seed alone.
    """
    fit, held = fit_and_held(external, settings.holdout, seed)
    scores = predict_proba(model, held)
    reference_rate = float((scores >= 0.5).float().mean())
    context = SearchContext(model, fit, held, settings, seed, reference_rate, head, progress)
    verdict = held_out_score(scores, held, settings.threshold_rule, reference_rate)
    start = Candidate({}, DebiasResult(BASELINE, model, {}, []), scores, verdict)
    ready = prepare(context) if settings.search == "halving" else Prepared({}, {})
    tasks = [
        SearchTask(name, context, start.held.auc, ready.budgets.get(name), ready.plans.get(name))
        for name in settings.methods
    ]
    with nullcontext(workers) if workers else SearchPool(settings.jobs) as fitting:
        searches = fitting.run(tasks, progress)
        if settings.search == "halving":
            with fitting.as_a_worker():
                searches = final_rung(context, ready, searches, start.held.auc)
    pool = [(s.method, c) for s in searches for c in s.candidates]
    rows = HeldOutRows(held.labels.numpy(), held.groups.numpy(), held.group_names)
    choice = settings.cross_rule().choose(
        rows, _contender(ORIGINAL, start), [_contender(m, c) for m, c in pool], seed
    )
    return SeedRun(context, start, searches, choice)


def _contender(method: str, candidate: Candidate) -> Contender:
    scored = ScoredModel(candidate.scores.numpy(), candidate.held.threshold)
    return Contender(method, candidate.point, scored, candidate.held)


def held_out(candidate: Candidate, criterion: Criterion) -> HeldOut:
    """A candidate's held-out AUC and value of the criterion's metric, as a record holds them."""
    return HeldOut(candidate.held.auc, criterion.key, candidate.held.of(criterion))


def choice_record(run: SeedRun) -> ChoiceRecord:
    """The cross-method choice as results and debias.json hold it: rule, what, why, held-out."""
    chosen, settings = run.chosen(), run.context.settings
    rule = settings.cross_rule().text()
    halving = settings.search == "halving"
    cost = SearchCost(
        settings.search,
        run.rows(),
        settings.budget if halving else None,
        run.rows() / settings.training_rows if settings.training_rows else None,
    )
    return ChoiceRecord(
        f"{halving_text(settings)}; {rule}" if halving else rule,
        run.choice.to_dict(),
        held_out(chosen, settings.criterion),
        chosen.held.degenerate,
        run.search_time_s(),
        cost,
    )


def evidence_rule(settings: CompareSettings) -> EvidenceRule:
    """The held-out evidence taken as the comparison selects: its held-out share and
    criterion."""
    return EvidenceRule(settings.holdout, settings.criterion)


def selected_result(run: SeedRun) -> DebiasResult:
    """The model a seed's cross-method rule kept (an unchanged copy of the starting model
    when it kept that), with the choice, its search's cost and the held-out evidence."""
    model, settings = run.context.model, run.context.settings
    won = run.chosen().result
    kept = run.choice.index is None
    record = choice_record(run)
    cost = record.cost
    assert cost is not None
    info = {
        "selection": record.to_dict(),
        "kept_original": kept,
        "budget": cost.budget,
        "cost_vs_training": cost.cost_vs_training,
        "tried": {
            s.method: [t.to_dict() for t in s.tried(settings.criterion)] for s in run.searches
        },
        "rungs": {s.method: s.rungs for s in run.searches if s.rungs},
        "compare": asdict(settings),
    }
    result = DebiasResult(
        AUTO,
        copy.deepcopy(model) if kept else won.model,
        {"selected": run.choice.method, "setting": run.choice.setting, "config": won.config},
        won.history,
        won.mask,
        run.search_time_s(),
        info,
    )
    held, seed = run.context.held, run.context.seed
    evidence = measure(evidence_rule(settings), held, model, result.model, seed)
    result.evidence = replace(evidence, chosen_on_rows=True)
    return result


def select_across_methods(
    model: nn.Module,
    external: FairData,
    settings: CompareSettings | None = None,
    head: str | None = None,
    progress: bool = False,
) -> DebiasResult:
    """``debias --method auto``: the model the cross-method rule keeps, on the first seed.

    Every method of ``settings`` is fitted with its defaults (or its grid, optuna's
    trials, or successive halving over its grid) on the fit part of ``external``; the
    held-out part chooses, and gives the result's evidence (a
    :class:`~fairtune.evaluation.evidence.WorseModelWarning` if the model got worse there, a
    :class:`~fairtune.evaluation.evidence.WeakEvidenceWarning` if those rows are too few to say).
    The result's config names the method and setting kept (``original``: an
    unchanged copy of ``model``); its info holds the choice with its reason.
    """
    settings = settings or CompareSettings()
    check_groups(external)
    with run_view(sum(settings.tries(m) for m in settings.methods), progress, settings.criterion):
        run = run_seed(model, external, settings, settings.seeds[0], head, progress)
    result = selected_result(run)
    warn_if_worse(result.evidence, AUTO)
    return result
