"""A user's checkpoint read into a model: the file forms people save, read safely.

Read here:

- a plain state dict (``torch.save(model.state_dict(), path)``, ``.pt``/``.pth``/``.ckpt``)
  or a ``.safetensors`` file;
- a dict holding one under ``"state_dict"`` (a PyTorch Lightning ``.ckpt``) or
  ``"model_state_dict"``;
- keys under a wrapper's prefix: ``model.`` (a LightningModule's ``self.model``),
  ``module.`` (``nn.DataParallel`` / DDP), ``_orig_mod.`` (``torch.compile``);
- a classifier with several outputs (2 softmax classes, or CheXpert's 14 labels):
  :attr:`Checkpoint.head_output` keeps one output as the model's single logit;
  without it the classifier is left out and the model keeps its fresh head.

Files are read with ``torch.load(weights_only=True)``: a whole pickled model is
refused (unpickling can run any code) unless :attr:`Checkpoint.trust_pickle`.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from fairtune.errors import FairtuneError
from fairtune.models import load_weights

PREFIXES = ("model.", "module.", "_orig_mod.")
"""Wrappers' key prefixes taken off when the model's own keys are found under them."""

NESTED = ("state_dict", "model_state_dict")
"""Keys under which a training checkpoint (Lightning, a training loop's dict) keeps the weights."""


@dataclass(frozen=True)
class Checkpoint:
    """A user's weight file and how to read it.

    ``head_output``: the output of a several-output classifier kept as the
    model's logit (0-based; with 2 outputs read as softmax classes, the logit
    is z[i] - z[other], so its sigmoid is the softmax probability of class i).
    ``trust_pickle``: read a whole pickled model (runs code from the file).
    """

    path: str
    head_output: int | None = None
    trust_pickle: bool = False


def load_state_dict_file(model: nn.Module, path: str | Path, head: str | None = None) -> nn.Module:
    """Load the state dict file ``path`` into ``model`` safely (see :func:`load_checkpoint`)."""
    return load_checkpoint(model, Checkpoint(str(path)), head)


def load_checkpoint(model: nn.Module, checkpoint: Checkpoint, head: str | None = None) -> nn.Module:
    """Load ``checkpoint`` into ``model``, checked key by key; ``head`` is the model's
    classifier (its name), needed to keep one output or to leave a many-class one out."""
    path = checkpoint.path
    state = read_state(path, checkpoint.trust_pickle)
    state = strip_prefixes(state, set(model.state_dict()))
    if checkpoint.head_output is not None:
        if head is None:
            raise FairtuneError("--head-output needs the model's classifier: name it with --head")
        state = keep_output(state, head, checkpoint.head_output, path)
    elif head is not None and f"{head}.weight" in state:
        outputs = state[f"{head}.weight"].shape[0]
        if outputs > 1:
            warnings.warn(
                f"checkpoint '{path}': its classifier '{head}' has {outputs} outputs, so it is "
                "left out and training starts from a fresh 1-logit head; pass --head-output "
                "INDEX to keep one output's weights",
                stacklevel=2,
            )
    load_weights(model, state, path, head)
    return model


def read_state(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of the checkpoint file ``path``, by name (a training checkpoint unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise FairtuneError(f"checkpoint '{path}' does not exist")
    try:
        if path.suffix == ".safetensors":
            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if trust_pickle or "Unsupported global" not in str(exc):  # else: a damaged file
            raise FairtuneError(
                f"cannot load checkpoint '{path}': it is not a readable torch file "
                "(damaged, or saved by something else)"
            ) from None
        raise FairtuneError(
            f"checkpoint '{path}' holds Python objects, not only tensors (a whole pickled "
            "model?), and unpickling them can run any code: save torch.save(model.state_dict(), "
            "path) instead, or pass --trust-pickle if you trust the file"
        ) from None
    except Exception as exc:
        raise FairtuneError(
            f"cannot load checkpoint '{path}' ({type(exc).__name__}): save a plain state dict "
            "with torch.save(model.state_dict(), path)"
        ) from None
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if isinstance(state, dict):
        nested = next((k for k in NESTED if isinstance(state.get(k), dict)), None)
        if nested is not None:
            state = state[nested]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FairtuneError(
            f"checkpoint '{path}' holds a {type(state).__name__} that is not a state dict "
            "(names to tensors): save torch.save(model.state_dict(), path)"
        )
    return state


def strip_prefixes(state: dict[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    """``state`` with the wrappers' prefixes (:data:`PREFIXES`, nested ones too) taken off,
    when that finds more of the model's keys ``own``; keys outside any prefix (a Lightning
    module's loss or metric buffers) are then left behind."""
    cores = {key: _core(key, own) for key in state}
    if len(own.intersection(cores.values())) <= len(own.intersection(state)):
        return state
    return {core: state[key] for key, core in cores.items() if core != key}


def _core(key: str, own: set[str]) -> str:
    """``key`` with known prefixes taken off until it is one of ``own`` or has none left."""
    while key not in own:
        prefix = next((p for p in PREFIXES if key.startswith(p)), None)
        if prefix is None:
            break
        key = key[len(prefix) :]
    return key


def keep_output(
    state: dict[str, torch.Tensor], head: str, index: int, source: str
) -> dict[str, torch.Tensor]:
    """``state`` with the classifier ``head`` cut to the one logit of output ``index``."""
    weight, bias = f"{head}.weight", f"{head}.bias"
    if weight not in state:
        raise FairtuneError(f"checkpoint '{source}' has no classifier weight '{weight}'")
    outputs = state[weight].shape[0]
    if outputs < 2:
        raise FairtuneError(
            f"checkpoint '{source}': the classifier '{head}' has 1 output already; "
            "leave out --head-output"
        )
    if not 0 <= index < outputs:
        raise FairtuneError(
            f"--head-output {index} is out of range: the classifier '{head}' of '{source}' "
            f"has {outputs} outputs (0..{outputs - 1})"
        )
    out = dict(state)
    for key in (weight, bias):
        if key in state:
            rows = state[key]
            kept = rows[index] - rows[1 - index] if outputs == 2 else rows[index]
            out[key] = kept.unsqueeze(0)
    return out
