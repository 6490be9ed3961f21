"""How each kind of result row was chosen, as typed records: one per kind of row.

A comparison's rows are the starting model (:class:`BaselineRecord`), one per method
(:class:`SearchRecord`: the setting its search kept), the post-processing reference
(:class:`ReferenceRecord`) and the one choice across methods (:class:`ChoiceRecord`).
Each becomes the ``selection`` dict of results.json by ``to_dict`` alone, and
:func:`record_from_dict` reads one back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fairtune.io import number
from fairtune.methods.registry import BASELINE, SELECTED

HELD_OUT = "held_out_"
"""The prefix of a held-out value's key in results.json."""


@dataclass(frozen=True)
class HeldOut:
    """A model on the held-out part of the external set, at the threshold chosen there: its
    AUC and the value of the criterion's metric ``key``."""

    auc: float
    key: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {f"{HELD_OUT}auc": self.auc, f"{HELD_OUT}{self.key}": self.value}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeldOut | None:
        """The held-out values of a results.json record (None where it has none)."""
        skip = (f"{HELD_OUT}auc", f"{HELD_OUT}degenerate")
        keys = [k for k in d if k.startswith(HELD_OUT) and k not in skip]
        if f"{HELD_OUT}auc" not in d or not keys:
            return None
        return cls(d[f"{HELD_OUT}auc"], keys[0][len(HELD_OUT) :], d[keys[0]])


@dataclass(frozen=True)
class Tried:
    """One setting a search tried: its held-out values, or why its fit failed;
    ``cut_short``: a halving rung trained it on fewer epochs (or rows) than its settings ask
    (a setting the final rung retrains in full is listed twice, its short fit first)."""

    setting: dict[str, Any]
    held: HeldOut | None = None
    failed: str | None = None
    cut_short: bool = False

    def to_dict(self) -> dict[str, Any]:
        if self.held is None:
            return {"setting": self.setting, "failed": self.failed}
        cut = {"cut_short": True} if self.cut_short else {}
        return {"setting": self.setting, **self.held.to_dict(), **cut}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tried:
        short = d.get("cut_short", False)
        return cls(d["setting"], HeldOut.from_dict(d), d.get("failed"), short)


@dataclass(frozen=True)
class BaselineRecord:
    """The starting model's row: its held-out values, for reference."""

    held: HeldOut

    @property
    def chosen(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return self.held.to_dict()


@dataclass(frozen=True)
class SearchRecord:
    """A method's row: the rule, the setting kept (None when every setting failed), every
    setting tried, the held-out values of the one kept, the search's time, the method's
    own facts about the fit kept (``info``) and the settings whose fit failed."""

    rule: str
    chosen: dict[str, Any] | None
    tried: list[Tried]
    search_time_s: float
    held: HeldOut | None = None
    info: dict[str, Any] = field(default_factory=dict)
    failed: list[Tried] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "chosen": self.chosen,
            "tried": [t.to_dict() for t in self.tried],
        }
        if self.held is not None:
            out.update(self.held.to_dict())
        out["search_time_s"] = self.search_time_s
        if self.chosen is not None:
            out["info"] = self.info
        if self.failed:
            out["failed"] = [{"setting": f.setting, "reason": f.failed} for f in self.failed]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchRecord:
        failed = [Tried(f["setting"], failed=f["reason"]) for f in d.get("failed", [])]
        tried = [Tried.from_dict(t) for t in d["tried"]]
        held = HeldOut.from_dict(d)
        return cls(
            d["rule"], d["chosen"], tried, d["search_time_s"], held, d.get("info", {}), failed
        )


@dataclass(frozen=True)
class ReferenceRecord:
    """The reference row: what it is, in words; it is never chosen."""

    reference: str

    @property
    def chosen(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": {}, "reference": self.reference}


NOISE_KEY = "regret_from_noise"
"""The key of the regret the test rows' noise alone shows, beside the best model on test."""


@dataclass(frozen=True)
class BestOnTest:
    """The model with the lowest test value of the criterion's metric ``key`` within the AUC
    tolerance: what the regret is measured against (reported only)."""

    method: str
    setting: dict[str, Any]
    key: str
    value: float
    noise: float = math.nan  # the regret the test rows' noise alone shows (regret_from_noise)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "setting": self.setting,
            self.key: self.value,
            NOISE_KEY: self.noise,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BestOnTest:
        """From :meth:`to_dict`'s form (NaN written as null); a file written before the
        noise was measured reads it as NaN."""
        key = next(k for k in d if k not in ("method", "setting", NOISE_KEY))
        return cls(d["method"], d["setting"], key, number(d[key]), number(d.get(NOISE_KEY)))


@dataclass(frozen=True)
class FrontPoint:
    """One candidate on the held-out part: its method (None: no candidate), setting and
    value of the criterion's metric."""

    method: str | None
    setting: dict[str, Any]
    value: float

    def to_dict(self, key: str) -> dict[str, Any]:
        return {"method": self.method, "setting": self.setting, key: self.value}

    @classmethod
    def from_dict(cls, d: dict[str, Any], key: str) -> FrontPoint:
        return cls(d["method"], d["setting"], d[key])


@dataclass(frozen=True)
class Front:
    """The achievable front of one seed's held-out part (:mod:`fairtune.selection.front`): the
    lowest value of the criterion's metric ``key`` in reach (``best``), the best model with
    one threshold and no attribute, the group thresholds' value, the selected model's,
    and the AUC floor that bounds the reach."""

    key: str
    best: FrontPoint
    one_threshold: FrontPoint
    group_thresholds: float
    selected: float
    auc_floor: float

    @property
    def distance(self) -> float:
        """How far the selected model is above the front."""
        return self.selected - self.best.value

    @property
    def distance_one_threshold(self) -> float:
        """How far the selected model is above the best one-threshold model."""
        return self.selected - self.one_threshold.value

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.best.to_dict(self.key),
            f"group_thresholds_{self.key}": self.group_thresholds,
            "one_threshold": self.one_threshold.to_dict(self.key),
            f"selected_{self.key}": self.selected,
            "distance": self.distance,
            "distance_one_threshold": self.distance_one_threshold,
            "auc_floor": self.auc_floor,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Front:
        key = next(k[len("selected_") :] for k in d if k.startswith("selected_"))
        return cls(
            key,
            FrontPoint.from_dict(d, key),
            FrontPoint.from_dict(d["one_threshold"], key),
            d[f"group_thresholds_{key}"],
            d[f"selected_{key}"],
            d["auc_floor"],
        )


@dataclass(frozen=True)
class SearchCost:
    """What a cross-method search spent: its kind, the training rows it passed, the budget
    it had (halving; None for a grid) and those rows as a multiple of the original
    training's (None when that is unknown)."""

    search: str
    rows: int
    budget: float | None = None
    cost_vs_training: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "search": self.search,
            "rows": self.rows,
            "budget": self.budget,
            "cost_vs_training": self.cost_vs_training,
        }

    def text(self) -> str:
        """The search's cost in words, as a multiple of the original training where known."""
        spent = f"the search passed {self.rows:,} rows"
        if self.cost_vs_training is None:
            return f"{spent} (the original training's unknown)"
        return f"{spent}, {self.cost_vs_training:.2f}x the original training's"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchCost | None:
        if "search" not in d:
            return None
        return cls(d["search"], d["rows"], d.get("budget"), d.get("cost_vs_training"))


@dataclass(frozen=True)
class ChoiceRecord:
    """The choice across methods (the ``selected`` row, ``debias --method auto``): the rule,
    what it kept and why (``choice``, the JSON form of
    :class:`~fairtune.selection.rules.CrossChoice`), the kept model's held-out values, the
    search's time and cost and, measured on a test set, the regret, the best model on
    test and the achievable front on the held-out part."""

    rule: str
    choice: dict[str, Any]
    held: HeldOut
    degenerate: bool
    search_time_s: float
    cost: SearchCost | None = None
    regret: float = math.nan
    best_on_test: BestOnTest | None = None
    front: Front | None = None

    @property
    def method(self) -> str:
        """The method kept (``original``: the starting model)."""
        return self.choice["method"]

    @property
    def setting(self) -> dict[str, Any]:
        """The setting kept."""
        return self.choice["setting"]

    @property
    def reason(self) -> str:
        """Why, in one sentence."""
        return self.choice["reason"]

    @property
    def chosen(self) -> dict[str, Any]:
        return {"method": self.method, **self.setting}

    def to_dict(self) -> dict[str, Any]:
        out = {
            "rule": self.rule,
            "chosen": self.chosen,
            **self.choice,
            **self.held.to_dict(),
            f"{HELD_OUT}degenerate": self.degenerate,
            "search_time_s": self.search_time_s,
            **(self.cost.to_dict() if self.cost is not None else {}),
        }
        if self.best_on_test is not None:
            out["regret"] = self.regret
            out["best_on_test"] = self.best_on_test.to_dict()
        if self.front is not None:
            out["front"] = self.front.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChoiceRecord:
        own = {"rule", "chosen", "search_time_s", "regret", "best_on_test"}
        own |= {"search", "rows", "budget", "cost_vs_training", "front"}
        choice = {k: v for k, v in d.items() if k not in own and not k.startswith(HELD_OUT)}
        held = HeldOut.from_dict(d)
        assert held is not None
        best = d.get("best_on_test")
        on_test = None if best is None else BestOnTest.from_dict(best)
        degenerate = d[f"{HELD_OUT}degenerate"]
        regret = d.get("regret", math.nan)
        cost = SearchCost.from_dict(d)
        front = Front.from_dict(d["front"]) if "front" in d else None
        return cls(
            d["rule"], choice, held, degenerate, d["search_time_s"], cost, regret, on_test, front
        )


Record = BaselineRecord | SearchRecord | ReferenceRecord | ChoiceRecord
"""How a row was chosen: one record type per kind of row."""


def record_from_dict(method: str, d: dict[str, Any]) -> Record:
    """The record of a results.json row of ``method`` (its kind told by its keys)."""
    if method == BASELINE:
        held = HeldOut.from_dict(d)
        assert held is not None
        return BaselineRecord(held)
    if "reference" in d:
        return ReferenceRecord(d["reference"])
    if method == SELECTED or "kept_original" in d:
        return ChoiceRecord.from_dict(d)
    return SearchRecord.from_dict(d)
