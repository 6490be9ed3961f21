"""The Python API in two calls: ``debias`` one model, ``compare`` every method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from fairtune.data import FairData, check_classes, check_groups
from fairtune.evaluation.criterion import DEFAULT_OBJECTIVE
from fairtune.evaluation.evidence import EvidenceRule, measure, warn_if_worse
from fairtune.methods import DebiasResult, get_method, method_class, method_names
from fairtune.selection.auto import AUTO, AUTO_SEARCH, evidence_rule, select_across_methods
from fairtune.selection.comparison import CompareSettings
from fairtune.selection.comparison import compare as _compare
from fairtune.selection.handback import SavedModels
from fairtune.selection.results import ResultRow
from fairtune.selection.search import fit_and_held


def debias(
    model: nn.Module,
    external: FairData,
    method: str = "swift",
    head: str | None = None,
    progress: bool = False,
    objective: str = DEFAULT_OBJECTIVE,
    evidence: EvidenceRule | None = None,
    **config: Any,
) -> DebiasResult:
    """Debias a copy of ``model`` with ``method`` on the external set.

    ``objective`` (``eodds``, ``eopp`` or ``dp``) is the fairness the method trains
    towards: its bias loss (``bias_kind``) unless ``config`` sets one. ``config``
    overrides the method's settings (see ``fairtune methods NAME``);
    ``head`` names the classification head when it cannot be found. A method is
    fitted on part of the external set; the rest, held out as ``evidence`` says
    (default: compare's held-out share and criterion for ``objective``), gives
    the result's :class:`~fairtune.evaluation.evidence.Evidence`, and a
    :class:`~fairtune.evaluation.evidence.WorseModelWarning` when the model got worse there (a
    :class:`~fairtune.evaluation.evidence.WeakEvidenceWarning` when those rows are too few to
    rule out an AUC fall beyond the tolerance). With
    ``method="auto"`` every method is tried and one model is kept on held-out
    external data, possibly the original (:func:`~fairtune.selection.auto.select_across_methods`),
    by successive halving unless ``search="grid"``; ``config`` then holds
    :class:`~fairtune.selection.search.CompareSettings` fields (``methods``, ``search``,
    ``budget``, ``training_rows``, ``holdout``, ``auc_tolerance``, ...).
    """
    if method == AUTO:
        settings = CompareSettings(**{"objective": objective, "search": AUTO_SEARCH, **config})
        return select_across_methods(model, external, settings, head=head, progress=progress)
    config = {"bias_kind": method_class(method).bias_kind_for(objective), **config}
    fitter = get_method(method, **config)
    rule = evidence or evidence_rule(CompareSettings(methods=[method], objective=objective))
    check_groups(external)
    check_classes(external, "external")
    fit, held = fit_and_held(external, rule.holdout, fitter.config.seed)
    result = fitter.fit(model, fit, head=head, progress=progress)
    result.evidence = measure(rule, held, model, result.model, fitter.config.seed)
    warn_if_worse(result.evidence, f"{method} with these settings")
    return result


def compare(
    model: nn.Module,
    external: FairData,
    test: FairData | Mapping[str, FairData],
    methods: str | Sequence[str] = "all",
    head: str | None = None,
    progress: bool = False,
    save_models: str | Path | SavedModels | None = None,
    **settings: Any,
) -> list[ResultRow]:
    """Run ``methods`` from ``model`` on the same data; one row per (method, seed) and,
    where ``test`` names several test sets, per test set.

    ``settings`` are further :class:`~fairtune.selection.comparison.CompareSettings`
    fields (``objective``, ``seeds``, ``grid``, ``threshold_rule``, ``holdout``,
    ``auc_tolerance``, ``n_boot``, ``overrides``, ``search``, ``budget``,
    ``training_rows``); ``seeds`` may be any sequence. ``save_models`` (a folder, or a
    :class:`~fairtune.selection.handback.SavedModels` for every method's choice too) receives each
    seed's selected model as ``FOLDER/SEED/selected/``.
    """
    names = method_names(methods)
    if "seeds" in settings:
        settings["seeds"] = list(settings["seeds"])
    config = CompareSettings(methods=names, **settings)
    models = SavedModels(save_models) if isinstance(save_models, (str, Path)) else save_models
    return _compare(model, external, test, config, head, progress, models)
