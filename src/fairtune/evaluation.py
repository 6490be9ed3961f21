"""Evaluation of a model on a :class:`~fairtune.data.FairData`: scores, metrics, intervals."""

from __future__ import annotations

from typing import Any

import torch

from fairtune.data import FairData
from fairtune.metrics import Bootstrap, binary_metrics, bootstrap_ci
from fairtune.models import predict_proba


def evaluate_scores(
    data: FairData,
    scores: torch.Tensor,
    threshold: float = 0.5,
    n_boot: int = 0,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Metrics of given probabilities (and bootstrap intervals when ``n_boot`` > 0)."""
    args = (data.labels.numpy(), scores.numpy(), data.groups.numpy(), data.group_names)
    metrics = binary_metrics(*args, threshold=threshold)
    resampling = Bootstrap(n_boot=n_boot, seed=seed)
    ci = bootstrap_ci(*args, threshold=threshold, bootstrap=resampling) if n_boot else None
    return metrics, ci


def evaluate_model(
    model: torch.nn.Module,
    data: FairData,
    threshold: float = 0.5,
    n_boot: int = 0,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Metrics of ``model`` on ``data`` at ``threshold``, in eval mode."""
    return evaluate_scores(data, predict_proba(model, data), threshold, n_boot, seed)
