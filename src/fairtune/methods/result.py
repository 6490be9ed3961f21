"""What a method hands back, and its model folder: weights, ``mask.safetensors`` and
``debias.json`` with the settings, history and held-out evidence."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from fairtune.errors import FairtuneError
from fairtune.evaluation.evidence import Evidence, describe
from fairtune.finetune.masks import Mask
from fairtune.io import atomic_dir, write_json
from fairtune.modelio import ModelConfig, load_model, write_model_files

MASK_FILE = "mask.safetensors"
RECORD_FILE = "debias.json"


@dataclass
class DebiasResult:
    """What a method returns: new model, mask, history, settings, held-out ``evidence``."""

    method: str
    model: nn.Module
    config: dict[str, Any]
    history: list[dict[str, Any]]
    mask: Mask | None = None
    wall_time_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    evidence: Evidence | None = None

    def __repr__(self) -> str:
        """Method, settings, time, mask; the held-out evidence and, for auto, the choice."""
        mask = "" if self.mask is None else f", {self.mask.kind} mask"
        reason = (self.info.get("selection") or {}).get("reason")
        notes = [describe(self.evidence)] + ([reason] if reason else [])
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
                    "evidence": None if self.evidence is None else self.evidence.to_dict(),
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
        :func:`~fairtune.modelio.load_model`), mask, settings and history."""
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
