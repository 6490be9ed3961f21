"""The studies the papers call for: how the methods move with K, their steps, the size of
the external set and the learning rate, and where their masks fall.

``run_study(kind, model, external, test, settings)`` fits every point of the
study over the seeds (:mod:`fairtune.studies.points`), measures them as
``compare`` does (:mod:`fairtune.studies.runner`) and returns a :class:`Study`;
:meth:`Study.summary` gives each point's mean and 95% interval
(:mod:`fairtune.studies.summary`); :meth:`Study.write` saves ``study.json`` and
``study.png``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from fairtune.data import FairData, check_groups
from fairtune.errors import FairtuneError
from fairtune.io import atomic_dir, write_json
from fairtune.studies.mask_stats import mask_records
from fairtune.studies.plots import curves_figure, mask_figure
from fairtune.studies.points import KINDS, StudyPoint, StudySettings, study_points
from fairtune.studies.runner import run_point, seed_parts, start_record
from fairtune.studies.summary import PointSummary, summarise

__all__ = [
    "KINDS",
    "PointSummary",
    "Study",
    "StudyPoint",
    "StudySettings",
    "run_study",
    "study_points",
]

JSON_FILE = "study.json"
PLOT_FILE = "study.png"


@dataclass
class Study:
    """A study's records: one per (point, seed) and the starting model per seed; for
    ``mask``, one record of layer statistics per seed."""

    kind: str
    settings: StudySettings
    records: list[dict[str, Any]]

    def summary(self) -> list[PointSummary]:
        """Per test set, series, x and headline metric: the mean over seeds and its interval
        (none for ``mask``)."""
        return [] if self.kind == "mask" else summarise(self.records, self.settings.criterion)

    def write(self, directory: str | Path, title: str, about: dict[str, Any]) -> None:
        """``study.json`` (settings, ``about``, the summary and every record) and
        ``study.png``."""
        summary = self.summary()
        document = {"kind": self.kind, "settings": asdict(self.settings), **about}
        document["summary"] = [asdict(p) for p in summary]
        with atomic_dir(directory) as tmp:
            write_json(tmp / JSON_FILE, {**document, "records": self.records})
            if self.kind == "mask":
                mask_figure(self.records, tmp / PLOT_FILE, title)
            else:
                n_seeds = len(self.settings.seeds)
                curves_figure(
                    self.kind, summary, tmp / PLOT_FILE, title, n_seeds, self.settings.criterion
                )


def run_study(
    kind: str,
    model: nn.Module,
    external: FairData,
    test: FairData | dict[str, FairData],
    settings: StudySettings | None = None,
    head: str | None = None,
) -> Study:
    """Run study ``kind`` from ``model`` on ``external``, measured on ``test`` (one set, or
    several by name), over ``settings.seeds``."""
    settings = settings or StudySettings()
    points = study_points(kind, settings)
    tests = test if isinstance(test, dict) else {"test": test}
    check_groups(external)
    for name, data in tests.items():
        check_groups(data)
        if data.group_names != external.group_names:
            raise FairtuneError(
                f"external groups {external.group_names} differ from the groups of test set "
                f"'{name}' {data.group_names}"
            )
    records = []
    for seed in settings.seeds:
        parts = seed_parts(model, external, tests, settings.holdout, seed)
        if kind == "mask":
            records.append(mask_records(model, parts.fit, settings, seed, head))
            continue
        records.append(start_record(model, parts, settings))
        records += [run_point(point, model, parts, settings, head) for point in points]
    return Study(kind, settings, records)
