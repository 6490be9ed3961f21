"""Result rows of a comparison and their summaries over seeds.

One :class:`ResultRow` per (method, seed); ``to_dict`` is its results.json form.
Besides the methods' rows a comparison has a ``threshold_optimizer`` reference
row and a ``selected`` row (the one choice across methods) per seed; a method
whose every setting failed has a row with ``failed`` set and NaN metrics. A
comparison on several test sets has all these rows once per test set, each
naming its ``test_set``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.measurement import Intervals, Metrics
from fairtune.evaluation.operating import OperatingPoint
from fairtune.io import number
from fairtune.methods.registry import SELECTED
from fairtune.selection.records import ChoiceRecord, Record, record_from_dict


@dataclass
class ResultRow:
    """One method at one seed: its settings, cost, threshold and test metrics."""

    method: str
    seed: int
    config: dict[str, Any]
    wall_time_s: float
    threshold: float
    threshold_rule: str
    metrics: Metrics  # on the test set at threshold 0.5
    metrics_tuned: Metrics  # on the test set at ``threshold``
    ci: Intervals | None  # of ``metrics``; None where no bootstrap was drawn
    ci_tuned: Intervals | None
    selection: Record  # how the row was chosen: one record type per kind of row
    arch: str | None = None  # the image model's architecture, where one was named
    failed: str | None = None  # why no setting of the method could be fitted
    needs_sensitive_attribute_at_prediction: bool = False  # group thresholds do
    test_set: str | None = None  # the test set measured, where a comparison has several

    def __repr__(self) -> str:
        """The row in one line: method, seed, AUC and the default objective's metric at t
        and at 0.5."""
        key = Criterion().key
        ci = self.ci_tuned.of(key) if self.ci_tuned else None
        drawn = ci is not None and not any(math.isnan(v) for v in ci)
        bounds = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if drawn else ""
        where = "" if self.test_set is None else f", test {self.test_set}"
        status = f", failed: {self.failed}" if self.failed else ""
        return (
            f"ResultRow({self.method}, seed {self.seed}{where}: AUC "
            f"{_number(self.metrics.auc)}, {key} {_number(self.metrics_tuned.value(key))}"
            f"{bounds} at t={self.threshold:.3f}, {_number(self.metrics.value(key))} at 0.5; "
            f"settings {self.config}{status})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The row as results.json holds it (``arch``, ``failed``,
        ``needs_sensitive_attribute_at_prediction`` and ``test_set`` only where set)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["selection"] = self.selection.to_dict()
        for name in ("metrics", "metrics_tuned", "ci", "ci_tuned"):
            out[name] = None if out[name] is None else out[name].to_dict()
        for key in ("arch", "failed", "needs_sensitive_attribute_at_prediction", "test_set"):
            if not out[key]:
                del out[key]
        return out

    def operating_points(self) -> Mapping[str, OperatingPoint | None]:
        """The row's operating points (threshold-free, so read from the metrics at 0.5), by
        key, e.g. ``specificity_0.8``; a point no threshold reaches is None."""
        return self.metrics.operating_points

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResultRow:
        """A row as results.json holds it (:meth:`to_dict`), read back."""
        return cls(
            **{
                **d,
                "threshold": number(d["threshold"]),
                "wall_time_s": number(d["wall_time_s"]),
                "metrics": Metrics.from_dict(d["metrics"]),
                "metrics_tuned": Metrics.from_dict(d["metrics_tuned"]),
                "ci": Intervals.from_dict(d["ci"]),
                "ci_tuned": Intervals.from_dict(d["ci_tuned"]),
                "selection": record_from_dict(d["method"], d["selection"]),
            }
        )


def by_test_set(rows: Sequence[ResultRow]) -> dict[str | None, list[ResultRow]]:
    """The rows per test set, in order of first appearance (one key, ``None``, for a
    comparison on one test set)."""
    out: dict[str | None, list[ResultRow]] = {}
    for row in rows:
        out.setdefault(row.test_set, []).append(row)
    return out


def summarise(rows: Sequence[ResultRow], key: str, tuned: bool = False) -> dict[str, Any]:
    """Per method: mean, standard deviation over seeds and (one seed) the bootstrap interval
    of metric ``key`` (or of ``wall_time_s``)."""
    if key == "wall_time_s":
        return spread(rows, [r.wall_time_s for r in rows])
    metrics = [r.metrics_tuned if tuned else r.metrics for r in rows]
    intervals = [r.ci_tuned if tuned else r.ci for r in rows]
    return spread(
        rows,
        [m.value(key) for m in metrics],
        [None if ci is None else ci.of(key) for ci in intervals],
    )


def spread(
    rows: Sequence[ResultRow],
    values: Sequence[float],
    intervals: Sequence[tuple[float, float] | None] | None = None,
) -> dict[str, Any]:
    """Per method of ``rows``: the mean and standard deviation over seeds of ``values`` (one
    per row) and, for a method with one seed, its row's interval."""
    out: dict[str, Any] = {}
    for method in dict.fromkeys(r.method for r in rows):
        mine = [i for i, r in enumerate(rows) if r.method == method]
        found = np.array([values[i] for i in mine], dtype=float)
        some = not np.isnan(found).all()  # numpy warns on a mean of no value: none asked
        out[method] = {
            "mean": float(np.nanmean(found)) if some else math.nan,
            "std": float(np.nanstd(found)) if len(found) > 1 and some else math.nan,
            "ci": intervals[mine[0]] if intervals is not None and len(mine) == 1 else None,
            "n_seeds": len(mine),
        }
    return out


def degenerate_methods(rows: Sequence[ResultRow], tuned: bool) -> set[str]:
    """The methods degenerate (in some seed) at threshold t (``tuned``) or 0.5."""
    return {r.method for r in rows if (r.metrics_tuned if tuned else r.metrics).degenerate}


def selection_summary(rows: Sequence[ResultRow]) -> dict[str, Any]:
    """The ``selected`` rows in brief: per seed what was kept, why, the selection regret
    (test EOdds of the choice minus the best within the AUC tolerance on test) and the
    regret the test rows' noise alone shows; with the regret's mean and standard deviation
    over seeds and the noise's mean."""
    selected = [r for r in rows if r.method == SELECTED]
    chosen = [r.selection for r in selected]
    assert all(isinstance(c, ChoiceRecord) for c in chosen)
    regret = np.array([c.regret for c in chosen], dtype=float)
    defined = regret[~np.isnan(regret)]
    noise = np.array(
        [c.best_on_test.noise if c.best_on_test else math.nan for c in chosen], dtype=float
    )
    return {
        "per_seed": [
            {
                "seed": r.seed,
                "method": c.method,
                "setting": c.setting,
                "reason": c.reason,
                "regret": c.regret,
                "regret_from_noise": float(n),
                "cost": c.cost,
            }
            for r, c, n in zip(selected, chosen, noise, strict=True)
        ],
        "regret_mean": float(defined.mean()) if len(defined) else math.nan,
        "regret_from_noise_mean": math.nan if np.isnan(noise).all() else float(np.nanmean(noise)),
        "regret_std": float(defined.std()) if len(defined) > 1 else math.nan,
    }


def _number(value: float) -> str:
    """A metric's value with three decimals (n/a where undefined)."""
    return "n/a" if math.isnan(value) else f"{value:.3f}"
