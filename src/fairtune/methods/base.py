"""The interface every debiasing method shares and the steps they reuse (the registry is
:mod:`fairtune.methods.registry`)."""

from __future__ import annotations

import copy
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch
from torch import nn

from fairtune.data import FairData, balance, check_classes, check_groups
from fairtune.errors import FairtuneError
from fairtune.evaluation.criterion import objective as declared_objective
from fairtune.evaluation.metrics import binary_metrics
from fairtune.finetune.feature_cache import data_key
from fairtune.finetune.importance import fisher_diagonal
from fairtune.finetune.losses import BIAS_KINDS, Objective
from fairtune.finetune.masks import Mask, relative_importance
from fairtune.finetune.tracking import RULE_SETTING, TAU_SETTING, ThresholdTracker
from fairtune.finetune.training import Phase, run_phase
from fairtune.methods.context import FitContext
from fairtune.methods.result import DebiasResult
from fairtune.models import ModelSplit, predict_proba
from fairtune.settings import check, setting, with_origin

MIN_STEPS = 300
"""The fewest optimiser steps per phase that the grids ask for: about what the authors'
external sets of thousands of rows gave in their epochs, and fewer than the skewed Adult
demo's phases already take (METHODS.md, "Defaults and grids")."""


@dataclass
class MethodConfig:
    """Settings every method has; ``origin`` says whose each default is."""

    seed: int = with_origin(
        "ours: any seed", setting(0, "seed of masks, re-initialisation and batch order", low=0)
    )
    bias_kind: str = with_origin(
        "BMFT and SWiFT papers' L_bias, 0.5(|dTPR|+|dFPR|); their code's signed sum, "
        "in which opposite gaps cancel, is eodds_signed",
        setting(
            "eodds",
            f"bias loss: {', '.join(BIAS_KINDS)} (eodds_signed: the authors' form; the _t kinds: "
            "the same gaps of soft decisions at the operating threshold); follows --objective "
            "unless set",
            choices=BIAS_KINDS,
        ),
    )
    tau: float = TAU_SETTING
    threshold_rule: str = RULE_SETTING
    balance: str = with_origin(
        "BMFT and SWiFT papers (group-and-class balanced external set)",
        setting(
            "down",
            "group-and-class balancing of the external set: down, up, none",
            choices=("down", "up", "none"),
        ),
    )
    batch_size: int = with_origin("BMFT authors' code", setting(64, "rows per batch", low=1))
    bn_stats: str = with_origin(
        "ours: a frozen or masked part must not change (METHODS.md, masks that hold)",
        setting(
            "frozen",
            "BatchNorm running statistics: frozen, or update where trained",
            choices=("frozen", "update"),
        ),
    )
    num_workers: int = with_origin(
        "ours: no effect on results",
        setting(
            0,
            "DataLoader worker processes for images read from disk",
            low=0,
        ),
    )
    min_steps: int = with_origin(
        "ours: 0 keeps the authors' epochs as given; their external sets had "
        "thousands of rows, so hundreds of steps, which a small set does not reach",
        setting(
            0,
            "fewest optimiser steps per fine-tuning phase: its epochs are raised until epochs x "
            "batches per epoch reaches it (a phase of 0 epochs stays skipped)",
            low=0,
        ),
    )

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class MaskedConfig(MethodConfig):
    """Settings of methods that build a mask from parameter importance."""

    importance: str = with_origin(
        "BMFT and SWiFT authors' code (squared gradients of batch means)",
        setting(
            "batch",
            "Fisher estimate: batch (authors) or per_sample (textbook)",
            choices=("batch", "per_sample"),
        ),
    )


@dataclass
class Fitted:
    """What a method's steps produce besides the changed model.

    ``mask``: the mask the steps trained or pruned with (None for methods
    without one); ``history``: one record per epoch or round; ``info``: the
    method's own facts about the run (saved with the result).
    """

    mask: Mask | None
    history: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)


def extreme_groups(model: torch.nn.Module, data: FairData) -> tuple[int, int]:
    """The groups with the highest and the lowest AUC of ``model`` on ``data``."""
    scores = predict_proba(model, data).numpy()
    by_group = binary_metrics(data.labels.numpy(), scores, data.groups.numpy(), data.group_names)[
        "by_group"
    ]
    auc = {
        data.group_names.index(g): m["auc"] for g, m in by_group.items() if not np.isnan(m["auc"])
    }
    if len(auc) < 2:
        raise FairtuneError(
            "picking the best- and worst-AUC groups needs two groups with both classes in "
            "the external set: add rows or merge groups"
        )
    ranked = sorted(auc, key=auc.get)
    return ranked[-1], ranked[0]


C = TypeVar("C", bound=MethodConfig)
"""A method's settings dataclass."""


class Method(ABC, Generic[C]):
    """A debiasing method: ``Method(config).fit(model, external) -> DebiasResult``.

    ``fit`` never changes the model it is given; it works on a copy.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    tunes_backbone: ClassVar[bool]
    """Whether the method fine-tunes backbone weights (costly on big image models), not only
    the head or a pruning mask."""
    studied: ClassVar[bool] = True
    """Whether the external-size and lr studies include the method by default (the
    fine-tuning methods the papers study; not the baselines that stop by their own rules)."""
    fine_tunes: ClassVar[bool] = True  # trains in phases (a budgeted search scales them)
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    grid: ClassVar[dict[str, list[Any]]] = {}
    """Key settings and the values ``compare --grid`` tries (the learning rate at least);
    ours, not the authors': wide enough that some point moves the model on a small
    external set as on a large one (METHODS.md, "Defaults and grids")."""
    context: FitContext = FitContext()
    """Set by :meth:`fit`; the default lets shared steps run before it."""

    def __init__(self, config: C | None = None, **overrides: Any) -> None:
        config = config or self.config_class()
        unknown = set(overrides) - set(config.field_names())
        if unknown:
            raise FairtuneError(
                f"{self.name} has no setting(s) {sorted(unknown)}; it has {config.field_names()}"
            )
        self.config: C = replace(config, **overrides)  # the caller's config stays as is
        check(self.config, self.name)
        self.tracker = ThresholdTracker(self.config.threshold_rule)
        """Chooses t for the at-threshold losses; a fresh one per :meth:`fit`."""

    def fit(
        self,
        model: nn.Module,
        external: FairData,
        head: str | None = None,
        progress: bool = False,
        context: FitContext | None = None,
    ) -> DebiasResult:
        """Debias a copy of ``model`` with the external set; ``head`` names its head module.
        ``context`` carries the caches a search shares and progress (``progress`` when none
        is given)."""
        check_groups(external)
        check_classes(external, "external")
        split = ModelSplit.of(copy.deepcopy(model), head)
        self.context = context or FitContext(progress=progress)
        self.tracker = ThresholdTracker(self.config.threshold_rule)
        split.check(external)
        start = time.perf_counter()
        fitted = self.run_steps(split, external)
        return DebiasResult(
            self.name,
            split.model,
            asdict(self.config),
            fitted.history,
            fitted.mask,
            time.perf_counter() - start,
            fitted.info,
        )

    @abstractmethod
    def run_steps(self, split: ModelSplit, external: FairData) -> Fitted:
        """Run the method's steps on ``split.model``, changing it in place."""

    @classmethod
    def bias_kind_for(cls, objective: str) -> str:
        """The bias loss that trains towards ``objective`` (``--objective``) unless the
        settings name one."""
        return declared_objective(objective).bias_kind

    @classmethod
    def notes(cls, info: dict[str, Any]) -> list[str]:
        """What a report should say in words about a fit, from its :attr:`Fitted.info`
        (each a phrase that follows "METHOD (seed S)"); none by default."""
        return []

    # ------------------------------------------------------------ shared steps

    def balanced(self, data: FairData) -> FairData:
        """The group-and-class balanced set, unless balancing is switched off."""
        if self.config.balance == "none":
            return data
        return balance(data, seed=self.config.seed, mode=self.config.balance)

    def objective(self, data: FairData, w_pred: float, w_bias: float) -> Objective:
        """``w_pred * L_pred + w_bias * L_bias`` with the method's bias loss, for ``data``."""
        c = self.config
        return Objective(w_pred, w_bias, c.bias_kind, data.n_groups, tau=c.tau)

    def phase(
        self,
        name: str,
        objective: Objective,
        trainable: list[str],
        mask: Mask | None = None,
        **settings: Any,
    ) -> Phase:
        """A fine-tuning phase with the method's shared batch size, BatchNorm and workers."""
        return Phase(
            objective=objective,
            trainable=trainable,
            mask=mask,
            name=name,
            batch_size=self.config.batch_size,
            bn_stats=self.config.bn_stats,
            num_workers=self.config.num_workers,
            features=self.context.features,
            **settings,
        )

    def train(
        self,
        split: ModelSplit,
        data: FairData,
        phase: Phase,
        on_epoch: Callable[[int], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Run ``phase`` on ``split.model`` with the method's seed and progress bar, for
        at least ``min_steps`` optimiser steps (see :meth:`epochs_for`); an at-threshold
        loss aims at t re-estimated on ``data`` before the phase and after each epoch."""
        on_epoch = self.tracker.follow(phase.objective, split.model, data, on_epoch)
        return run_phase(
            split.model,
            data,
            replace(phase, epochs=self.epochs_for(phase, data)),
            seed=self.config.seed,
            progress=self.context.progress,
            split=split,
            on_epoch=on_epoch,
        )

    def epochs_for(self, phase: Phase, data: FairData) -> int:
        """The phase's epochs, raised so that epochs x batches per epoch >= ``min_steps``
        (batches as the phase's loader makes them, per process), scaled by the step plan."""
        epochs = phase.epochs
        if epochs and self.config.min_steps:
            batches = len(data.loader(phase.batch_size, shard=True))
            epochs = max(epochs, math.ceil(self.config.min_steps / batches))
        plan = self.context.plan
        return epochs if plan is None else plan.epochs(epochs, len(data))

    def head_step(
        self, split: ModelSplit, data: FairData, name: str, epochs: int, lr: float, beta: float
    ) -> list[dict[str, Any]]:
        """Train the head alone on ``data`` with L_pred + ``beta`` * L_bias (BMFT's repair,
        LLFT)."""
        phase = self.phase(
            name,
            self.objective(data, 1.0, beta),
            split.head_params(),
            epochs=epochs,
            lr=lr,
        )
        return self.train(split, data, phase)

    def relative_importance(self, split: ModelSplit, data: FairData) -> dict[str, torch.Tensor]:
        """R = norm(I_bias) / norm(I_pred) for every parameter (METHODS.md).

        Taken from the context's ``importances`` when it holds R for the same data and
        the settings R depends on (a search shares one cache among the settings it
        tries on one starting model), else computed (and stored there).
        """
        key = self._importance_key(data)
        cache = self.context.importances
        cached = None if cache is None else cache.get(key)
        if cached is None:
            fisher = fisher_diagonal(
                split.model,
                data,
                {
                    "bias": self.tracker.aim(self.objective(data, 0.0, 1.0), split.model, data),
                    "pred": Objective.pred(n_groups=data.n_groups),
                },
                mode=self.config.importance,
                batch_size=self.config.batch_size,
                progress=self.context.progress,
            )
            cached = relative_importance(fisher["bias"], fisher["pred"])
            if cache is not None:
                cache[key] = cached
        return {name: r.clone() for name, r in cached.items()}

    def _importance_key(self, data: FairData) -> tuple[Any, ...]:
        """What R depends on besides the starting model: the data's content and the
        settings of the Fisher passes (not learning rates, epochs, keep or beta)."""
        c = self.config
        return (data_key(data), c.bias_kind, c.tau, c.threshold_rule, c.importance, c.batch_size)
