"""Backbone features shared by head-only phases: computed once per backbone state and data.

A head-only phase trains the head on the backbone's features (see
:func:`fairtune.finetune.training.run_phase`). The settings one search tries often
train a head on the same starting model and the same rows (LLFT's grid points
differ only in the head's learning rate and beta), so a :class:`FeatureCache`
given to their phases computes those features once. The key is what the
features depend on: the backbone's weights and buffers, the rows, and where and
in which memory layout they are computed; never the head, which they feed.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable

import torch

from fairtune.data import FairData
from fairtune.finetune.precision import Precision
from fairtune.models import ModelSplit


def data_key(data: FairData) -> str:
    """A digest of the rows a computation reads: labels, groups and inputs (in-memory
    tensors by their values, a lazy source such as images on disk by its description:
    paths, CSV rows, decoding)."""
    digest = hashlib.sha256()
    for tensor in (data.labels, data.groups):
        digest.update(_tensor_bytes(tensor))
    inputs = data.inputs
    digest.update(
        _tensor_bytes(inputs) if isinstance(inputs, torch.Tensor) else pickle.dumps(inputs)
    )
    return digest.hexdigest()


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's values as bytes, whatever its dtype, device or memory layout."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def backbone_key(split: ModelSplit) -> str:
    """A digest of the backbone's state: every parameter and buffer outside the head."""
    inside_head = f"{split.head}."
    digest = hashlib.sha256()
    state = list(split.model.named_parameters()) + list(split.model.named_buffers())
    for name, tensor in state:
        if not name.startswith(inside_head):
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


class FeatureCache:
    """The head inputs last computed, with the backbone state and data they came from.

    One entry: memory holds one copy of the features, and the settings of a
    search that share a backbone state (a method's grid points or optuna's
    trials) are tried one after another.
    """

    def __init__(self) -> None:
        self._key: tuple[str, str, str, bool] | None = None
        self._features: FairData | None = None

    def head_inputs(
        self,
        split: ModelSplit,
        data: FairData,
        precision: Precision,
        compute: Callable[[], FairData | None],
    ) -> FairData | None:
        """The features of ``data`` under ``split``'s backbone: ``compute()``'s result,
        called only when the backbone state, the data or the precision differ from the
        last call's."""
        key = (backbone_key(split), data_key(data), str(precision.device), precision.channels_last)
        if key != self._key:
            self._features = compute()
            self._key = key
        return self._features
