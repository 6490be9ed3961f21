"""Training: the one masked fine-tuning loop that every method's steps run in.

A :class:`Phase` says what to minimise, which parameters may move and by how
much (``trainable`` and a :class:`~fairtune.finetune.masks.Mask`), and how (optimiser,
epochs). :func:`run_phase` keeps the promises of METHODS.md, "Masks that
really hold":

- a parameter outside ``trainable`` (or absent from the mask) ends bit-identical;
- an entry whose mask value is 0 ends bit-identical, whatever the optimiser:
  weight decay joins the gradient before the mask scales it, so the masked
  update and the optimiser state of that entry stay exactly zero;
- BatchNorm running statistics do not change unless ``bn_stats="update"``, and
  then only in BatchNorm layers that own a trainable parameter;
- the same seed gives bit-identical weights (on one device; augmented images
  included, since their augmentation is seeded per epoch).

Device and precision: the phase runs where the model is (the device of its
first parameter); batches are moved there. Image models run in channels_last
memory format on every device unless ``Phase.channels_last`` is off (4-D
inputs and weights; the weights' layout is restored afterwards, their values
never change by it): convolutions run faster so, on the CPU too
(benchmarks/images.py measures it). On CUDA the phase runs in mixed precision
(float16 autocast with a gradient scaler, unless ``Phase.amp`` is off); on the
CPU in float32, as written. :class:`~fairtune.finetune.precision.Precision` holds these
decisions.

Several processes (torchrun, see :mod:`fairtune.distributed`): the batches
are those of one process, in the same order; each process runs the model on its
own slice of each batch, the loss is computed on the whole batch's gathered
logits, and the processes' gradients are summed right after the backward pass,
before weight decay and the mask. So every process takes the step one process
would take (up to rounding) and the promises above still hold. Every process
must start from the same weights and the same seed. Dropout draws differ from
one process's, and BatchNorm layers in train mode (``bn_stats="update"``)
normalise by each process's slice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from fairtune.console import progress_bar
from fairtune.data import FairData
from fairtune.distributed import sum_gradients_, whole_batch, world
from fairtune.errors import FairtuneError
from fairtune.finetune.feature_cache import FeatureCache
from fairtune.finetune.losses import LossFn
from fairtune.finetune.masks import Mask
from fairtune.finetune.precision import Precision
from fairtune.models import (
    ModelSplit,
    as_logits,
    channels_last,
    evaluating,
    logits,
    model_device,
)

OPTIMIZERS = ("sgd", "adam")
BN_STATS = ("frozen", "update")
FEATURE_BATCH = 256


class TrainingDiverged(FairtuneError):
    """The loss became NaN or infinite: the setting diverged (a search records it and goes on)."""


@dataclass(kw_only=True)
class Phase:
    """One fine-tuning step: objective, what may change, and the optimiser's settings."""

    objective: LossFn = field(
        metadata={"help": "loss(logits, labels, groups) -> scalar tensor, computed per batch"}
    )
    trainable: list[str] = field(
        metadata={
            "help": "names (as in model.named_parameters()) of the parameters that may change; "
            "every other parameter ends bit-identical"
        }
    )
    mask: Mask | None = field(
        default=None,
        metadata={
            "help": "multiplier in [0, 1] for each trainable entry's update; a trainable "
            "parameter the mask does not name is frozen; None: every entry multiplied by 1"
        },
    )
    epochs: int = field(metadata={"help": "passes over the data"})
    lr: float = field(metadata={"help": "learning rate"})
    optimizer: str = field(default="sgd", metadata={"help": "'sgd' or 'adam'"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum (ignored by Adam)"})
    weight_decay: float = field(
        default=5e-4,
        metadata={"help": "L2 weight decay, added to the gradient before the mask scales it"},
    )
    batch_size: int = field(default=64, metadata={"help": "rows per optimiser step"})
    bn_stats: str = field(
        default="frozen",
        metadata={
            "help": "'frozen': BatchNorm running statistics never change; 'update': BatchNorm "
            "layers owning a trainable parameter update theirs"
        },
    )
    amp: bool = field(default=True, metadata={"help": "mixed precision on CUDA; ignored on CPU"})
    channels_last: bool = field(
        default=True,
        metadata={"help": "image models in channels_last memory format (faster convolutions)"},
    )
    num_workers: int = field(
        default=0,
        metadata={"help": "DataLoader worker processes for lazily loaded inputs such as images"},
    )
    cache_features: bool = field(
        default=True,
        metadata={
            "help": "a head-only phase given the model's split computes the backbone features "
            "once and trains the head on them (not for augmented inputs)"
        },
    )
    features: FeatureCache | None = field(
        default=None,
        metadata={
            "help": "with cache_features: features shared with the other phases given this "
            "cache, computed again only for another backbone state or data; None: this phase's own"
        },
    )
    name: str = field(default="finetune", metadata={"help": "shown in progress and history"})

    def __post_init__(self) -> None:
        for value, options, what in (
            (self.optimizer, OPTIMIZERS, "optimizer"),
            (self.bn_stats, BN_STATS, "bn_stats"),
        ):
            if value not in options:
                raise FairtuneError(f"{what} must be one of {list(options)}, not '{value}'")
        if self.epochs < 0 or self.batch_size < 1 or self.num_workers < 0:
            raise FairtuneError(
                f"phase '{self.name}' needs epochs >= 0, batch_size >= 1 and num_workers >= 0 "
                f"(got {self.epochs}, {self.batch_size} and {self.num_workers})"
            )
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise FairtuneError(
                f"phase '{self.name}' needs lr > 0, weight_decay >= 0 and momentum in [0, 1) "
                f"(got {self.lr}, {self.weight_decay}, {self.momentum})"
            )


def run_phase(
    model: nn.Module,
    data: FairData,
    phase: Phase,
    seed: int = 0,
    progress: bool = False,
    split: ModelSplit | None = None,
    on_epoch: Callable[[int], bool] | None = None,
) -> list[dict[str, Any]]:
    """Fine-tune ``model`` in place for one phase; return one record per epoch.

    Records hold ``phase``, ``epoch`` (from 1), ``loss`` (mean over batches),
    ``lr``, ``rows`` (passed through the optimiser steps) and ``seconds``. The
    model runs in train mode (dropout active) with BatchNorm handled as
    ``phase.bn_stats`` says, on its own device (see the module's notes on
    precision). If ``data.inputs`` has a ``set_epoch`` method (augmented
    images), it is called with the epoch number (from 1) before every epoch.

    Given ``split``, a phase that trains only head parameters treats the
    backbone as a fixed feature extractor: it runs in eval mode, and (unless
    ``phase.cache_features`` is off) its features are computed once (float32)
    and the head trained on them (same result as the uncached loop, far
    faster). Not when the inputs are augmented: every epoch sees other images
    then, so the backbone runs on every batch. Parameter flags, module modes and weight
    memory formats are restored afterwards. ``on_epoch(epoch)`` runs after each
    epoch; returning True ends the phase early.
    """
    if len(data) == 0:
        raise FairtuneError(f"phase '{phase.name}': no rows to train on")
    params = _trainable(model, phase)
    multipliers = (
        {n: phase.mask.values[n].to(device=p.device, dtype=p.dtype) for n, p in params.items()}
        if phase.mask
        else {}
    )
    head_only = split is not None and set(params) <= set(split.head_params())
    precision = Precision.choose(model_device(model), phase.amp, phase.channels_last)
    flags = {p: p.requires_grad for p in model.parameters()}
    modes = {m: m.training for m in model.modules()}
    try:
        with channels_last(model, precision.channels_last):
            setup = _Setup(partial(logits, model), data, params, multipliers, precision)
            if head_only and phase.cache_features and not _augmented(data):
                compute = partial(_head_inputs, split, data, precision, phase.num_workers)
                if phase.features is not None:
                    compute = partial(phase.features.head_inputs, split, data, precision, compute)
                cached = compute()
                if cached is not None:
                    setup = replace(setup, forward=partial(logits, split.head_module), data=cached)
            for n, p in model.named_parameters():
                p.requires_grad_(n in params)
            _set_modes(model, list(params.values()), phase.bn_stats, split if head_only else None)
            return _train_epochs(setup, phase, seed, progress, on_epoch)
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
        for m, mode in modes.items():
            m.training = mode


def _trainable(model: nn.Module, phase: Phase) -> dict[str, nn.Parameter]:
    """The parameters the phase may change: in ``trainable`` and, with a mask, named by it."""
    named = dict(model.named_parameters())
    unknown = [n for n in phase.trainable if n not in named]
    if unknown:
        raise FairtuneError(
            f"phase '{phase.name}' names parameter(s) {unknown[:3]} that the model does not "
            f"have; it has e.g. {list(named)[:3]}"
        )
    params = {n: named[n] for n in phase.trainable if phase.mask is None or n in phase.mask.values}
    if not params:
        raise FairtuneError(
            f"phase '{phase.name}' has nothing to train: 'trainable' is empty or its mask "
            "names none of those parameters"
        )
    for n, p in params.items():
        if phase.mask is not None and phase.mask.values[n].shape != p.shape:
            raise FairtuneError(
                f"mask of '{n}' has shape {tuple(phase.mask.values[n].shape)}, "
                f"the parameter {tuple(p.shape)}: the mask was built for another model"
            )
    return params


@torch.no_grad()
def _head_inputs(
    split: ModelSplit,
    data: FairData,
    precision: Precision,
    num_workers: int = 0,
) -> FairData | None:
    """Every row's head input, computed once with the model in eval mode, in float32.

    Batches run on the model's device; the features are kept on the CPU, like
    any :class:`FairData`. None when the model's output is not its head's output
    on those inputs (the model computes more after the head): then the head must
    train through it.
    """
    features = []
    with evaluating(split.model):
        for x, _, _ in data.loader(FEATURE_BATCH, num_workers=num_workers):
            x = precision.inputs(x)
            f, output = split.features_and_output(x)
            if not features and not torch.allclose(
                logits(split.head_module, f), as_logits(output), atol=1e-6
            ):
                return None
            features.append(f.cpu())
    return data.replace(inputs=torch.cat(features))


def _augmented(data: FairData) -> bool:
    """Whether the inputs change from epoch to epoch (an image source with augmentation)."""
    return getattr(data.inputs, "augment", None) is not None


def _set_modes(
    model: nn.Module, params: list[nn.Parameter], bn_stats: str, head_only: ModelSplit | None
) -> None:
    """Train mode for what trains (the head alone in a head-only phase), eval for BatchNorm.

    A layer with running statistics goes to train mode only when ``bn_stats`` is
    "update" and the layer owns a trainable parameter.
    """
    model.train(head_only is None)
    if head_only is not None:
        head_only.head_module.train()
    ids = {id(p) for p in params}
    for module in model.modules():
        if isinstance(module, _NormBase) and module.track_running_stats:
            owns = any(id(p) in ids for p in module.parameters(recurse=False))
            module.train(bn_stats == "update" and owns)


@dataclass(frozen=True)
class _Setup:
    """What :func:`run_phase` prepares for the epochs: how batches become logits, and what moves.

    ``forward`` maps a batch's inputs from ``data`` to logits (the whole model, or
    the head alone on cached features); ``multipliers`` are the mask's values on
    the parameters' devices (empty without a mask).
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    data: FairData
    params: dict[str, nn.Parameter]
    multipliers: dict[str, torch.Tensor]
    precision: Precision


def _train_epochs(
    setup: _Setup,
    phase: Phase,
    seed: int,
    progress: bool,
    on_epoch: Callable[[int], bool] | None,
) -> list[dict[str, Any]]:
    """The epochs of a phase; one history record per epoch."""
    forward, data, params, precision = setup.forward, setup.data, setup.params, setup.precision
    optimizer = _optimizer(list(params.values()), phase)
    loader = data.loader(
        phase.batch_size, shuffle=True, seed=seed, num_workers=phase.num_workers, shard=True
    )
    set_epoch = getattr(data.inputs, "set_epoch", None)
    adjust = partial(_scale_gradients, params, setup.multipliers, phase.weight_decay)
    sync = partial(sum_gradients_, list(params.values())) if world()[1] > 1 else None
    history: list[dict[str, Any]] = []
    with (
        torch.random.fork_rng(devices=precision.rng_devices()),
        progress_bar(progress, phase.name, phase.epochs * len(loader)) as advance,
    ):
        torch.manual_seed(seed)
        for epoch in range(1, phase.epochs + 1):
            if set_epoch is not None:
                set_epoch(epoch)  # before the epoch's iterator, so workers see it too
            start = time.perf_counter()
            total, rows = 0.0, 0
            for x, y, a in loader:
                x = precision.inputs(x)
                y = y.to(precision.device, non_blocking=True)
                a = a.to(precision.device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                batch = whole_batch(precision.logits(forward, x), y, a)
                loss = phase.objective(batch.logits, batch.labels, batch.groups)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"phase '{phase.name}': the loss became {loss.item()} in epoch {epoch}; "
                        f"training diverged, try a learning rate below {phase.lr:g}"
                    )
                precision.step(loss, optimizer, adjust, sync)
                total += loss.item()
                rows += len(y)
                advance()
            history.append(
                {
                    "phase": phase.name,
                    "epoch": epoch,
                    "loss": total / len(loader),
                    "lr": phase.lr,
                    "rows": rows,
                    "seconds": time.perf_counter() - start,
                }
            )
            if on_epoch is not None and on_epoch(epoch):
                break
    return history


def _scale_gradients(
    params: dict[str, nn.Parameter], multipliers: dict[str, torch.Tensor], weight_decay: float
) -> None:
    """grad <- (grad + weight_decay * p) * mask: the mask scales the whole update."""
    for name, p in params.items():
        if p.grad is None:
            continue
        if weight_decay:
            p.grad.add_(p.detach(), alpha=weight_decay)
        if name in multipliers:
            p.grad.mul_(multipliers[name])


def _optimizer(params: list[nn.Parameter], phase: Phase) -> torch.optim.Optimizer:
    """The phase's optimiser without its own weight decay (``_scale_gradients`` applies it)."""
    if phase.optimizer == "adam":
        return torch.optim.Adam(params, lr=phase.lr, weight_decay=0.0)
    return torch.optim.SGD(params, lr=phase.lr, momentum=phase.momentum, weight_decay=0.0)

