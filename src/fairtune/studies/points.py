"""What each study varies: its settings and the points (method, setting, value) it fits.

A :class:`StudyPoint` is one fit per seed: a method (or one of the step variants
below, for the ``steps`` study), its settings, and the value of the varied
quantity that the study's figure puts on its x axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.evaluation.criterion import Criterion
from fairtune.finetune.masks import Mask
from fairtune.finetune.training import OPTIMIZERS
from fairtune.methods import REGISTRY, Method, get_method, method_class, method_names
from fairtune.methods.bmft import BMFT
from fairtune.methods.swift import SWiFT
from fairtune.models import ModelSplit
from fairtune.selection.search import CompareSettings
from fairtune.settings import LEARNING_RATE, check, distinct, of_kind, same_as, setting

KIND_HELP: dict[str, str] = {
    "keep": "BMFT and the random mask over K",
    "steps": "each method's steps alone and together",
    "external-size": "every method on shares of the external set",
    "lr": "each method's learning rates (and optimizers)",
    "mask": "the masks layer by layer",
}
"""The studies, by the name ``fairtune study KIND`` takes, and what each varies."""
KINDS: tuple[str, ...] = tuple(KIND_HELP)


COMPARE = {f.name: f for f in fields(CompareSettings)}
"""compare's settings, whose defaults and ranges the studies share (held-out split,
threshold rule, bootstrap)."""


@dataclass
class StudySettings:
    """How a study runs: seeds, the values it varies, the held-out split and threshold, and
    the bootstrap resamples of each point's interval."""

    seeds: list[int] = distinct(
        setting(
            [0],
            "seeds; figures show the mean over them and its 95-percent t-interval (one seed: "
            "that seed's bootstrap interval)",
            low=0,
        )
    )
    methods: list[str] = setting(
        [name for name, cls in sorted(REGISTRY.items()) if cls.studied],
        "methods of the external-size and lr studies ('all' for every method)",
    )
    keeps: list[float] = setting(
        [0.05, 0.1, 0.25, 0.5, 0.75, 1.0],
        "keep study: shares K of backbone weights BMFT and the random mask update",
        low=0,
        high=1,
        open_low=True,
    )
    sizes: list[float] = setting(
        [0.05, 0.1, 0.25, 0.5, 1.0],
        "external-size study: shares of the external fit part kept (stratified on group "
        "and label)",
        low=0,
        high=1,
        open_low=True,
    )
    lrs: list[float] = setting(
        [1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
        "lr study: learning rates tried for each learning-rate setting of each method",
        low=0,
        open_low=True,
    )
    optimizers: list[str] = setting(
        list(OPTIMIZERS),
        "lr study: optimizers tried where a method has an optimizer setting (sgd, adam)",
    )
    objective: str = same_as(
        COMPARE["objective"],
        "the fairness objective the methods train towards (their bias loss unless set) and "
        "the figures and tables lead with (as compare)",
    )
    holdout: float = same_as(
        COMPARE["holdout"], "share of the external set held out for the threshold (as compare)"
    )
    threshold_rule: str = same_as(
        COMPARE["threshold_rule"],
        "how the threshold t is chosen on the held-out part (as compare)",
    )
    n_boot: int = same_as(
        COMPARE["n_boot"],
        "bootstrap resamples for each point's 95-percent interval on each test set (0: none)",
    )
    overrides: dict[str, dict[str, Any]] = setting(
        {}, "method settings changed at every point, e.g. {'bmft': {'impair_epochs': 2}}"
    )

    @property
    def criterion(self) -> Criterion:
        """The study's objective and threshold rule as compare's criterion holds them."""
        return Criterion(self.objective, threshold_rule=self.threshold_rule)

    def __post_init__(self) -> None:
        check(self, "study")
        self.methods = method_names(self.methods)
        for name in self.optimizers:
            if name not in OPTIMIZERS:
                raise FairtuneError(f"study optimizers must be among {OPTIMIZERS}, not '{name}'")
        for method, values in self.overrides.items():
            get_method(method, **values)  # names every unknown setting


class BMFTImpairOnly(BMFT):
    """BMFT's impair step alone: the starting head is kept, no repair."""

    def repair(self, split: ModelSplit, external: FairData) -> list[dict[str, Any]]:
        return []


class SWiFTNoHeadReset(SWiFT):
    """SWiFT without the partial head reset between its steps."""

    def reset_head(self, split: ModelSplit, mask: Mask) -> int:
        return 0


VARIANTS: dict[str, type[Method]] = {
    "bmft_impair_only": BMFTImpairOnly,
    "swift_no_head_reset": SWiFTNoHeadReset,
}
"""The step variants of the ``steps`` study, by the name a point records."""


@dataclass(frozen=True)
class StudyPoint:
    """One fit per seed: ``method`` (or its ``variant``) with ``config``, at value ``x``.

    ``series`` names the figure's line, ``size`` the share of the external fit
    part the fit sees.
    """

    series: str
    method: str
    x: Any
    config: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None
    size: float = 1.0

    def build(self, settings: StudySettings, seed: int) -> Method:
        """The method of this point with the study's overrides, its settings and ``seed``."""
        cls = VARIANTS[self.variant] if self.variant else method_class(self.method)
        given = {**settings.overrides.get(self.method, {}), **self.config, "seed": seed}
        return cls(**{"bias_kind": cls.bias_kind_for(settings.objective), **given})

    def record(self) -> dict[str, Any]:
        """The point as study.json holds it."""
        return {
            "series": self.series,
            "method": self.method,
            "x": self.x,
            "setting": self.config,
            "variant": self.variant,
            "size": self.size,
        }


STEPS = {
    "bmft": [
        ("impair + repair", {}, None),
        ("impair only", {}, "bmft_impair_only"),
        ("repair only", {"impair_epochs": 0}, None),
    ],
    "swift": [
        ("step 1 + 2", {}, None),
        ("step 1 only", {"step2_epochs": 0}, "swift_no_head_reset"),
        ("step 2 only", {"step1_epochs": 0}, None),
        ("step 2 only, no head reset", {"step1_epochs": 0}, "swift_no_head_reset"),
    ],
}
"""The ``steps`` study: per method, (label, settings, variant) of each combination of steps."""


def learning_rate_series(method: str, optimizers: list[str]) -> list[tuple[str, str, dict]]:
    """(series, lr setting, fixed settings) of ``method``'s learning rates: each setting
    declared a learning rate, once per optimizer where the declaration names the setting
    that chooses its optimizer."""
    series = []
    for rate in of_kind(method_class(method).config_class, LEARNING_RATE):
        name, chooser = rate.name, rate.metadata["optimizer"]
        if chooser:
            series += [(f"{method} {name} ({o})", name, {chooser: o}) for o in optimizers]
        else:
            series.append((f"{method} {name}", name, {}))
    return series


def study_points(kind: str, settings: StudySettings) -> list[StudyPoint]:
    """Every point the study ``kind`` fits per seed (none for ``mask``), in the order fitted."""
    if kind not in KINDS:
        raise FairtuneError(f"unknown study '{kind}'; choose from {', '.join(KINDS)}")
    if kind == "keep":
        return [
            StudyPoint(m, m, k, {"keep": k})
            for m in ("bmft", "random_mask")
            for k in settings.keeps
        ]
    if kind == "steps":
        return [
            StudyPoint(m, m, label, config, variant)
            for m, steps in STEPS.items()
            for label, config, variant in steps
        ]
    if kind == "external-size":
        return [StudyPoint(m, m, s, size=s) for m in settings.methods for s in settings.sizes]
    if kind == "lr":
        return [
            StudyPoint(series, m, lr, {**fixed, name: lr})
            for m in settings.methods
            for series, name, fixed in learning_rate_series(m, settings.optimizers)
            for lr in settings.lrs
        ]
    return []
