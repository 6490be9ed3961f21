"""The models a comparison chose, handed back: each seed's selected model and, if asked,
each method's chosen setting, written under ``FOLDER/SEED/METHOD/`` in one atomic step.

Each is a model folder (``config.json``, weights, ``debias.json`` with its held-out
evidence) that :func:`~fairtune.modelio.load_model` reads and ``fairtune
predict`` uses; ``selected`` is the cross-method choice (the starting model, marked
as kept, when nothing was better on held-out data).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

from fairtune.evaluation.evidence import measure
from fairtune.io import atomic_dir, refuse_inputs
from fairtune.methods import DebiasResult
from fairtune.modelio import ModelConfig
from fairtune.selection.auto import SeedRun, evidence_rule, selected_result
from fairtune.selection.results import SELECTED


@dataclass
class SavedModels:
    """Where the models go, which, and the models gathered so far (by seed and name)."""

    folder: str | Path
    every_method: bool = False
    model_config: ModelConfig | None = None
    """The starting model's config (None: a model of your own, see DebiasResult.save)."""
    gathered: dict[int, dict[str, DebiasResult]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        refuse_inputs(self.folder, [])  # an unwritable folder fails before any work

    def gather(self, run: SeedRun) -> None:
        """Keep a seed's selected model and, with ``every_method``, each method's choice."""
        models = {SELECTED: selected_result(run)}
        if self.every_method:
            models.update(_method_choices(run))
        self.gathered[run.context.seed] = models

    def write(self) -> Path:
        """Write every gathered model at once: all of them, or nothing."""
        with atomic_dir(self.folder) as tmp:
            for seed, models in self.gathered.items():
                for name, result in models.items():
                    result.save(tmp / str(seed) / name, self._config(result))
        return Path(self.folder)

    def _config(self, result: DebiasResult) -> ModelConfig | None:
        if self.model_config is None:
            return None
        config = copy.deepcopy(self.model_config)
        config.history = [*config.history, *result.history]
        config.data = {**config.data, "debiased_with": result.method}
        return config


def _method_choices(run: SeedRun) -> dict[str, DebiasResult]:
    """Each method's setting kept by the per-method rule, with its held-out evidence."""
    settings, context = run.context.settings, run.context
    rule = settings.selection_rule()
    chosen = {}
    for found in run.searches:
        if not found.candidates:
            continue
        best = found.candidates[rule.choose([c.held for c in found.candidates], run.start.held.auc)]
        evidence = measure(
            evidence_rule(settings), context.held, context.model, best.result.model, context.seed
        )
        chosen[found.method] = replace(best.result, evidence=replace(evidence, chosen_on_rows=True))
    return chosen
