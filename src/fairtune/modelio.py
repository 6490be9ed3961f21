"""The model directory: ``config.json`` (:class:`ModelConfig`: architecture, preprocessing,
label, sensitive columns, group names, threshold, history, versions) and
``model.safetensors``; written whole or not at all, read back safely.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fairtune.architectures import build_model
from fairtune.errors import FairtuneError
from fairtune.io import atomic_dir, atomic_write_text
from fairtune.models import MLP, load_weights
from fairtune.settings import check, setting
from fairtune.tabular import TabularPreprocessor

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class ModelConfig:
    """Everything besides the weights that a saved model needs to be applied again."""

    arch: dict[str, Any]
    label: str
    sensitive: list[str]
    group_names: list[str]
    head: str | None = None
    features: list[str] = field(default_factory=list)
    preprocessing: dict[str, Any] | None = None
    images: dict[str, Any] | None = None
    positive: str | None = None
    threshold: float = setting(
        0.5, "decision threshold on the score", low=0, high=1, open_low=True, open_high=True
    )
    sensitive_as_feature: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    """fairtune, torch and Python versions the directory was written with."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise FairtuneError(f"{CONFIG_FILE} has unknown keys {sorted(unknown)}")
        return cls(**d)


def write_model_files(directory: Path, model: nn.Module, config: ModelConfig) -> None:
    """Write ``config.json`` (with the versions it is written with) and ``model.safetensors``
    into an existing directory."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    config = replace(config, versions=current_versions())
    atomic_write_text(directory / CONFIG_FILE, json.dumps(asdict(config), indent=2))


def current_versions() -> dict[str, str]:
    """The fairtune, torch and Python versions running now."""
    try:
        fairtune = metadata.version("fairtune")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        fairtune = "unknown"
    return {"fairtune": fairtune, "torch": torch.__version__, "python": platform.python_version()}


def save_model(directory: str | Path, model: nn.Module, config: ModelConfig) -> Path:
    """Write a model directory; it appears whole or not at all.

    :func:`fairtune.modelio.load_model` reads it back.
    """
    with atomic_dir(directory) as tmp:
        write_model_files(tmp, model, config)
    return Path(directory)


def load_model(
    directory: str | Path, model: nn.Module | None = None
) -> tuple[nn.Module, ModelConfig]:
    """Load a model directory written by :func:`fairtune.modelio.save_model` or
    :meth:`~fairtune.methods.result.DebiasResult.save`.

    Without ``model`` the architecture is built from ``config.json``; with it the
    weights load into your own module (a fresh instance of the architecture that
    was saved, e.g. one not in the registry), checked key by key; a mismatch is one
    line naming the missing, unexpected and mis-shaped keys.

    The model comes back in eval mode, as ``from_pretrained`` returns one: a first
    forward pass does not change a BatchNorm layer's running statistics. Call
    ``model.train()`` to train it further.
    """
    directory = Path(directory)
    cfg_path, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not cfg_path.is_file() or not weights.is_file():
        raise FairtuneError(
            f"'{directory}' is not a fairtune model directory (needs {CONFIG_FILE} and "
            f"{WEIGHTS_FILE}); create one with 'fairtune train'"
        )
    damaged = f"{cfg_path} is damaged: restore it or write the model again"
    try:
        config = ModelConfig.from_dict(json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise FairtuneError(f"cannot read {cfg_path} ({exc}); {damaged}") from None
    check(config, str(cfg_path))
    if model is None:
        try:
            model = build_model(config.arch)
        except FairtuneError as exc:
            raise FairtuneError(
                f"{exc}. A model of your own loads with load_model(directory, model=YourModel())"
            ) from None
        except (RuntimeError, ValueError, TypeError) as exc:
            raise FairtuneError(
                f"'arch' {config.arch} cannot be built ({exc}); {damaged}"
            ) from None
        hint = damaged
    else:
        hint = f"Pass a fresh instance of the architecture that was saved ({config.arch})"
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise FairtuneError(f"cannot read weights {weights}: {exc}") from None
    load_weights(model, state, str(weights), hint=hint)
    _check_inputs(config, model, damaged)
    return model.eval(), config


def _check_inputs(config: ModelConfig, model: nn.Module, damaged: str) -> None:
    """Fail unless a tabular model's saved preprocessing makes as many inputs as the weights
    take (a config.json edited by hand, or one that lost a column)."""
    if config.preprocessing is None or not isinstance(model, MLP):
        return
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    try:
        made = TabularPreprocessor.from_dict(config.preprocessing).n_features
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise FairtuneError(f"its 'preprocessing' cannot be read; {damaged}") from None
    if made != first.in_features:
        raise FairtuneError(
            f"its 'preprocessing' encodes {made} input(s) but the weights take "
            f"{first.in_features}; {damaged}"
        )
