"""The Python API in two calls: ``debias`` one model, ``compare`` every method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from fairtune.auto import AUTO, select_across_methods
from fairtune.comparison import CompareSettings
from fairtune.comparison import compare as _compare
from fairtune.criterion import DEFAULT_OBJECTIVE
from fairtune.criterion import objective as get_objective
from fairtune.data import FairData
from fairtune.methods import DebiasResult, get_method, method_names
from fairtune.results import ResultRow


def debias(
    model: nn.Module,
    external: FairData,
    method: str = "swift",
    head: str | None = None,
    progress: bool = False,
    objective: str = DEFAULT_OBJECTIVE,
    **config: Any,
) -> DebiasResult:
    """Debias a copy of ``model`` with ``method`` on the external set.

    ``objective`` (``eodds``, ``eopp`` or ``dp``) is the fairness the method trains
    towards: its bias loss (``bias_kind``) unless ``config`` sets one. ``config``
    overrides the method's settings (see ``fairtune methods NAME``);
    ``head`` names the classification head when it cannot be found. With
    ``method="auto"`` every method is tried and one model is kept on held-out
    external data, possibly the original (:func:`~fairtune.auto.select_across_methods`);
    ``config`` then holds :class:`~fairtune.search.CompareSettings` fields
    (``methods``, ``grid``, ``holdout``, ``auc_tolerance``, ...).
    """
    if method == AUTO:
        settings = CompareSettings(**{"objective": objective, **config})
        return select_across_methods(model, external, settings, head=head, progress=progress)
    config = {"bias_kind": get_objective(objective).bias_kind, **config}
    return get_method(method, **config).fit(model, external, head=head, progress=progress)


def compare(
    model: nn.Module,
    external: FairData,
    test: FairData | Mapping[str, FairData],
    methods: str | Sequence[str] = "all",
    head: str | None = None,
    progress: bool = False,
    **settings: Any,
) -> list[ResultRow]:
    """Run ``methods`` from ``model`` on the same data; one row per (method, seed) and,
    where ``test`` names several test sets, per test set.

    ``settings`` are further :class:`~fairtune.comparison.CompareSettings`
    fields (``objective``, ``seeds``, ``grid``, ``threshold_rule``, ``holdout``,
    ``auc_tolerance``, ``n_boot``, ``overrides``); ``seeds`` may be any sequence.
    """
    names = method_names(methods)
    if "seeds" in settings:
        settings["seeds"] = list(settings["seeds"])
    config = CompareSettings(methods=names, **settings)
    return _compare(model, external, test, config, head=head, progress=progress)
