"""What one fit shares with the fits beside it: progress bars and the caches of a search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fairtune.finetune.feature_cache import FeatureCache
from fairtune.finetune.step_plan import StepPlan


@dataclass(frozen=True)
class FitContext:
    """Passed to :meth:`~fairtune.methods.base.Method.fit` beside the settings.

    ``progress``: show progress bars. ``importances``: relative importances already
    computed on the starting model, shared by the settings a search tries (see
    :meth:`~fairtune.methods.base.Method.relative_importance`); None: always compute.
    ``features``: backbone features shared by the head-only phases of those settings
    (:class:`~fairtune.finetune.feature_cache.FeatureCache`); None: each phase computes its own.
    ``plan``: set by a budgeted search (:mod:`fairtune.selection.halving`), scales every phase's
    epochs; None: full epochs. ``targets``: what a method derives from the starting model's
    scores alone whatever its learning rates (``distill``'s group thresholds), shared by
    those settings; None: always compute.
    """

    progress: bool = False
    importances: dict[tuple[Any, ...], dict[str, torch.Tensor]] | None = None
    features: FeatureCache | None = None
    plan: StepPlan | None = None
    targets: dict[tuple[Any, ...], Any] | None = None
