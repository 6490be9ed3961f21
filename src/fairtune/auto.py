"""One selection across methods: every method's settings and the unchanged starting model.

:func:`run_seed` fits every method's settings on one seed's fit part and lets
:class:`~fairtune.selection.CrossMethodRule` choose on the held-out part;
``compare`` turns the run into rows, :func:`select_across_methods` (``debias
--method auto``) into one model. Test data never enters here.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from fairtune.data import FairData, check_groups
from fairtune.methods import DebiasResult
from fairtune.models import predict_proba
from fairtune.paired import ScoredModel
from fairtune.progress import run_view
from fairtune.search import (
    Candidate,
    CompareSettings,
    MethodSearch,
    SearchContext,
    held_out_score,
    holdout_split,
)
from fairtune.selection import Contender, CrossChoice, HeldOutRows
from fairtune.workers import SearchPool, SearchTask

AUTO = "auto"
"""The method name that asks for the cross-method choice (``debias --method auto``)."""

ORIGINAL = "original"
"""The name the cross-method choice gives the unchanged starting model."""


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
    fit, held = holdout_split(external, settings.holdout, seed)
    scores = predict_proba(model, held)
    reference_rate = float((scores >= 0.5).float().mean())
    context = SearchContext(model, fit, held, settings, seed, reference_rate, head, progress)
    verdict = held_out_score(scores, held, settings.threshold_rule, reference_rate)
    start = Candidate({}, DebiasResult("baseline", model, {}, []), scores, verdict)
    tasks = [SearchTask(name, context, start.held.auc) for name in settings.methods]
    with nullcontext(workers) if workers else SearchPool(settings.jobs) as fitting:
        searches = fitting.run(tasks, progress)
    pool = [(s.method, c) for s in searches for c in s.candidates]
    rows = HeldOutRows(held.labels.numpy(), held.groups.numpy(), held.group_names)
    choice = settings.cross_rule().choose(
        rows, _contender(ORIGINAL, start), [_contender(m, c) for m, c in pool], seed
    )
    return SeedRun(context, start, searches, choice)


def _contender(method: str, candidate: Candidate) -> Contender:
    scored = ScoredModel(candidate.scores.numpy(), candidate.held.threshold)
    return Contender(method, candidate.point, scored, candidate.held)


def choice_record(run: SeedRun) -> dict[str, Any]:
    """The cross-method choice as results and debias.json hold it: rule, what, why, held-out."""
    chosen = run.chosen()
    return {
        "rule": run.context.settings.cross_rule().text(),
        "chosen": {"method": run.choice.method, **run.choice.setting},
        **run.choice.to_dict(),
        "held_out_auc": chosen.held.auc,
        "held_out_eodds_mean": chosen.held.eodds_mean,
        "held_out_degenerate": chosen.held.degenerate,
        "search_time_s": run.search_time_s(),
    }


def select_across_methods(
    model: nn.Module,
    external: FairData,
    settings: CompareSettings | None = None,
    head: str | None = None,
    progress: bool = False,
) -> DebiasResult:
    """``debias --method auto``: the model the cross-method rule keeps, on the first seed.

    Every method of ``settings`` is fitted with its defaults (or its grid, or
    optuna's trials) on the fit part of ``external``; the held-out part chooses.
    The result's config names the method and setting kept (``original``: an
    unchanged copy of ``model``); its info holds the choice with its reason.
    """
    settings = settings or CompareSettings()
    check_groups(external)
    with run_view(sum(settings.tries(m) for m in settings.methods), progress):
        run = run_seed(model, external, settings, settings.seeds[0], head, progress)
    won = run.chosen().result
    kept = run.choice.index is None
    info = {
        "selection": choice_record(run),
        "tried": {s.method: s.tried() for s in run.searches},
        "compare": asdict(settings),
    }
    return DebiasResult(
        AUTO,
        copy.deepcopy(model) if kept else won.model,
        {"selected": run.choice.method, "setting": run.choice.setting, "config": won.config},
        won.history,
        won.mask,
        run.search_time_s(),
        info,
    )
