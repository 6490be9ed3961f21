"""Train the starting classifier by empirical risk minimisation (ERM), as the users' own
models were trained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from fairtune.architectures import build_model
from fairtune.checkpoints import Checkpoint, load_checkpoint
from fairtune.columns import Columns
from fairtune.data import FairData, check_classes, check_groups
from fairtune.distributed import process_device
from fairtune.finetune.losses import PRED_KINDS, Objective
from fairtune.finetune.training import Phase, run_phase
from fairtune.image_csv import ImageOptions
from fairtune.modelio import ModelConfig
from fairtune.models import ModelSplit
from fairtune.settings import check, setting
from fairtune.tabular import TabularPreprocessor, feature_columns, frame_to_data


@dataclass
class TrainConfig:
    """Settings of the ERM training run of the starting classifier."""

    hidden: tuple[int, ...] = setting((64, 32), "MLP hidden sizes", low=1)
    epochs: int = setting(20, "passes over the training data", low=0)
    lr: float = setting(1e-3, "Adam learning rate", low=0, open_low=True)
    batch_size: int = setting(256, "rows per batch", low=1)
    weight_decay: float = setting(0.0, "L2 penalty", low=0)
    loss: str = setting(
        "weighted",
        "'weighted': batch-weighted BCE as the authors train; 'bce': plain BCE",
        choices=PRED_KINDS,
    )
    seed: int = setting(0, "seed of initialisation and batch order", low=0)
    num_workers: int = setting(0, "DataLoader worker processes for images read from disk", low=0)

    def __post_init__(self) -> None:
        check(self, "train")


def train_tabular(
    frame: pd.DataFrame,
    columns: Columns,
    config: TrainConfig,
    features: Sequence[str] | None = None,
    sensitive_as_feature: bool = False,
    checkpoint: str | Checkpoint | None = None,
    progress: bool = False,
) -> tuple[torch.nn.Module, ModelConfig]:
    """Fit preprocessing and an MLP on ``frame`` (from ``checkpoint`` if given); return the
    model and its saved config."""
    label, sensitive, positive = columns.label, list(columns.sensitive), columns.positive
    inputs = feature_columns(frame, label, sensitive, features, sensitive_as_feature)
    prep = TabularPreprocessor.fit(frame, inputs)
    data = frame_to_data(frame, label, sensitive, prep, positive=positive)
    arch = {"name": "mlp", "in_features": prep.n_features, "hidden": list(config.hidden)}
    model, head = _starting_model(arch, config.seed, checkpoint)
    history = fit_erm(model, data, config, progress)
    model_config = ModelConfig(
        arch=arch,
        label=label,
        sensitive=sensitive,
        group_names=list(data.group_names),
        head=head,
        features=inputs,
        preprocessing=prep.to_dict(),
        positive=None if positive is None else str(positive),
        sensitive_as_feature=sensitive_as_feature,
        history=history,
    )
    return model, model_config


def _starting_model(
    arch: dict[str, Any], seed: int, checkpoint: str | Checkpoint | None, head: str | None = None
) -> tuple[torch.nn.Module, str]:
    """The model to train, built from ``arch`` under ``seed`` (then ``checkpoint`` loaded into
    it, if given), and its head's name, found before any training so a wrong one fails early."""
    torch.manual_seed(seed)
    model = build_model(arch)
    head = ModelSplit.of(model, head).head
    if isinstance(checkpoint, str):
        checkpoint = Checkpoint(checkpoint)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, head)
    return model, head


def rebuildable(arch: dict[str, Any]) -> dict[str, Any]:
    """``arch`` as saved beside the trained weights: the weights file holds every weight, so
    the saved description must not ask for pretrained weights or a checkpoint again."""
    saved = {k: v for k, v in arch.items() if k != "pretrained_path"}
    if "pretrained" in saved:
        saved["pretrained"] = False
    return saved


def fit_erm(
    model: torch.nn.Module, data: FairData, config: TrainConfig, progress: bool = False
) -> list[dict[str, Any]]:
    """Train every weight of ``model`` on ``data`` with Adam (ERM), BatchNorm statistics
    updated as in ordinary training; return the history.

    Under torchrun on a GPU machine the model moves to this process's GPU first
    (:func:`~fairtune.distributed.process_device`); elsewhere it trains where it is.
    """
    if (device := process_device()).type == "cuda":
        model.to(device)
    check_groups(data)
    check_classes(data, "training")
    phase = Phase(
        objective=Objective.pred(kind=config.loss),
        trainable=[n for n, _ in model.named_parameters()],
        epochs=config.epochs,
        lr=config.lr,
        optimizer="adam",
        weight_decay=config.weight_decay,
        bn_stats="update",
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        name="train",
    )
    return run_phase(model, data, phase, seed=config.seed, progress=progress)


@dataclass(frozen=True)
class StartingModel:
    """What training starts from: the architecture, weights to load into it (``checkpoint``),
    and the head's name (None: found)."""

    arch: dict[str, Any]
    checkpoint: str | Checkpoint | None = None
    head: str | None = None


def train_images(
    data: FairData,
    start: StartingModel,
    options: ImageOptions,
    columns: Columns,
    config: TrainConfig,
    progress: bool = False,
) -> tuple[torch.nn.Module, ModelConfig]:
    """Train (or, from a checkpoint, fine-tune) an image classifier; return it and its config.

    ``options`` are the reader settings ``data`` was read with, saved so every
    later command reads images alike.
    """
    model, head = _starting_model(start.arch, config.seed, start.checkpoint, start.head)
    history = fit_erm(model, data, config, progress)
    model_config = ModelConfig(
        arch=rebuildable(start.arch),
        label=columns.label,
        sensitive=list(columns.sensitive),
        group_names=list(data.group_names),
        head=head,
        images=options.to_dict(),
        positive=None if columns.positive is None else str(columns.positive),
        history=history,
    )
    return model, model_config
