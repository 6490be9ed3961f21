"""The interface every debiasing method shares, its registry, and the steps they reuse."""

from __future__ import annotations

import copy
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from fairtune.architectures import load_model
from fairtune.data import FairData, balance, check_classes, check_groups
from fairtune.errors import FairtuneError
from fairtune.feature_cache import FeatureCache, data_key
from fairtune.importance import fisher_diagonal
from fairtune.io import atomic_dir, write_json
from fairtune.losses import BIAS_KINDS, Objective
from fairtune.masks import Mask, relative_importance
from fairtune.metrics import binary_metrics
from fairtune.models import ModelConfig, ModelSplit, predict_proba, write_model_files
from fairtune.settings import check, setting, with_origin
from fairtune.training import Phase, run_phase

REGISTRY: dict[str, type[Method]] = {}
MASK_FILE = "mask.safetensors"
RECORD_FILE = "debias.json"
MIN_STEPS = 300
"""The fewest optimiser steps per phase that the grids ask for: about what the authors'
external sets of thousands of rows gave in their epochs, and fewer than the skewed Adult
demo's phases already take (METHODS.md, "Defaults and grids")."""


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available by its ``name``, which must be new."""
    if cls.name in REGISTRY:
        raise FairtuneError(
            f"a method named '{cls.name}' is already registered "
            f"({REGISTRY[cls.name].__qualname__}); give {cls.__qualname__} another name"
        )
    REGISTRY[cls.name] = cls
    return cls


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
            "bias loss: eodds, eopp, dp, eodds_signed (authors' form)",
            choices=BIAS_KINDS,
        ),
    )
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


@dataclass
class DebiasResult:
    """What a method returns: the new model, its mask, the history and the settings used."""

    method: str
    model: nn.Module
    config: dict[str, Any]
    history: list[dict[str, Any]]
    mask: Mask | None = None
    wall_time_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Method, settings, time, mask; held-out before and after, or the choice, if held."""
        held, choice = self.info.get("held_out") or {}, self.info.get("selection") or {}
        notes = [f"held-out {k} {held[k]}" for k in ("before", "after") if k in held]
        notes += [choice["reason"]] if "reason" in choice else []
        mask = "" if self.mask is None else f", {self.mask.kind} mask"
        head = f"DebiasResult({self.method}, settings {self.config}, {self.wall_time_s:.1f} s"
        return head + mask + "".join(f"; {n}" for n in notes) + ")"

    def save(self, directory: str | Path, model_config: ModelConfig | None = None) -> Path:
        """Write the model directory with ``mask.safetensors``, ``debias.json`` beside it.

        Without ``model_config`` (a model of your own), ``config.json`` names the
        module's class as its architecture; :meth:`load` reads it back into a
        fresh instance.
        """
        if model_config is None:
            name = type(self.model).__name__
            model_config = ModelConfig(arch={"name": name}, label="", sensitive=[], group_names=[])
        with atomic_dir(directory) as tmp:
            write_model_files(tmp, self.model, model_config)
            if self.mask is not None:
                self.mask.save(tmp / MASK_FILE)
            write_json(
                tmp / RECORD_FILE,
                {
                    "method": self.method,
                    "config": self.config,
                    "wall_time_s": self.wall_time_s,
                    "info": self.info,
                    "history": self.history,
                    "mask": None
                    if self.mask is None
                    else {
                        "kind": self.mask.kind,
                        "density": self.mask.density(),
                        "mean": self.mask.mean(),
                        "layers": self.mask.stats(),
                    },
                },
            )
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path, model: nn.Module | None = None) -> DebiasResult:
        """A result saved by :meth:`save`: weights (into ``model`` if given, see
        :func:`~fairtune.architectures.load_model`), mask, settings and history."""
        model, _ = load_model(directory, model)
        record_path, mask_path = Path(directory) / RECORD_FILE, Path(directory) / MASK_FILE
        if not record_path.is_file():
            raise FairtuneError(f"'{directory}' holds no {RECORD_FILE}: it is not a debiased model")
        record = json.loads(record_path.read_text())
        mask = Mask.load(mask_path) if mask_path.is_file() else None
        return cls(
            record["method"],
            model,
            record["config"],
            record["history"],
            mask,
            record["wall_time_s"],
            record["info"],
        )


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


class Method(ABC):
    """A debiasing method: ``Method(config).fit(model, external) -> DebiasResult``.

    ``fit`` never changes the model it is given; it works on a copy.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    tunes_backbone: ClassVar[bool]
    """Whether the method fine-tunes backbone weights (costly on big image models), not only
    the head or a pruning mask."""
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    grid: ClassVar[dict[str, list[Any]]] = {}
    """Key settings and the values ``compare --grid`` tries (the learning rate at least);
    ours, not the authors': wide enough that some point moves the model on a small
    external set as on a large one (METHODS.md, "Defaults and grids")."""
    progress: bool = False  # set by fit(); the default lets shared steps run before it
    importance_cache: dict[tuple[Any, ...], dict[str, torch.Tensor]] | None = None
    """Relative importances already computed on the starting model, shared by the settings
    a search tries (see :meth:`relative_importance`); None: always compute."""
    feature_cache: FeatureCache | None = None
    """Backbone features shared by the head-only phases of the settings a search tries
    (see :class:`~fairtune.feature_cache.FeatureCache`); None: each phase computes its own."""

    def __init__(self, config: MethodConfig | None = None, **overrides: Any) -> None:
        config = config or self.config_class()
        unknown = set(overrides) - set(config.field_names())
        if unknown:
            raise FairtuneError(
                f"{self.name} has no setting(s) {sorted(unknown)}; it has {config.field_names()}"
            )
        self.config = replace(config, **overrides)  # the caller's config stays as is
        check(self.config, self.name)

    def fit(
        self,
        model: nn.Module,
        external: FairData,
        head: str | None = None,
        progress: bool = False,
    ) -> DebiasResult:
        """Debias a copy of ``model`` with the external set; ``head`` names its head module."""
        check_groups(external)
        check_classes(external, "external")
        split = ModelSplit.of(copy.deepcopy(model), head)
        self.progress = progress
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

    # ------------------------------------------------------------ shared steps

    def balanced(self, data: FairData) -> FairData:
        """The group-and-class balanced set, unless balancing is switched off."""
        if self.config.balance == "none":
            return data
        return balance(data, seed=self.config.seed, mode=self.config.balance)

    def objective(self, data: FairData, w_pred: float, w_bias: float) -> Objective:
        """``w_pred * L_pred + w_bias * L_bias`` with the method's bias loss, for ``data``."""
        return Objective(
            w_pred=w_pred, w_bias=w_bias, bias_kind=self.config.bias_kind, n_groups=data.n_groups
        )

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
            features=self.feature_cache,
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
        at least ``min_steps`` optimiser steps (see :meth:`epochs_for`)."""
        return run_phase(
            split.model,
            data,
            replace(phase, epochs=self.epochs_for(phase, data)),
            seed=self.config.seed,
            progress=self.progress,
            split=split,
            on_epoch=on_epoch,
        )

    def epochs_for(self, phase: Phase, data: FairData) -> int:
        """The phase's epochs, raised so that epochs x batches per epoch >= ``min_steps``
        (batches as the phase's loader makes them, per process); 0 epochs stay 0."""
        if phase.epochs == 0 or self.config.min_steps == 0:
            return phase.epochs
        batches = len(data.loader(phase.batch_size, shard=True))
        return max(phase.epochs, math.ceil(self.config.min_steps / batches))

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

        Taken from :attr:`importance_cache` when it holds R for the same data and
        the settings R depends on (a search shares one cache among the settings it
        tries on one starting model), else computed (and stored there).
        """
        key = self._importance_key(data)
        cached = None if self.importance_cache is None else self.importance_cache.get(key)
        if cached is None:
            fisher = fisher_diagonal(
                split.model,
                data,
                {
                    "bias": Objective.bias(self.config.bias_kind, data.n_groups),
                    "pred": Objective.pred(n_groups=data.n_groups),
                },
                mode=self.config.importance,
                batch_size=self.config.batch_size,
                progress=self.progress,
            )
            cached = relative_importance(fisher["bias"], fisher["pred"])
            if self.importance_cache is not None:
                self.importance_cache[key] = cached
        return {name: r.clone() for name, r in cached.items()}

    def _importance_key(self, data: FairData) -> tuple[Any, ...]:
        """What R depends on besides the starting model: the data's content and the
        settings of the Fisher passes (not learning rates, epochs, keep or beta)."""
        c = self.config
        return (data_key(data), c.bias_kind, c.importance, c.batch_size)
