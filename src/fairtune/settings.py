"""Settings fields: one home for a setting's default, help text and valid range.

Every settings dataclass (training, each method, the comparison) declares its
fields with :func:`setting`. The command line is generated from those fields
and :func:`check` validates an instance by the same declarations, so a value
given as a CLI flag, a ``--set KEY=VALUE``, a config-file field or a Python
keyword is checked by the same code with the same message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import MISSING, Field, field, fields
from typing import Any

from fairtune.errors import FairtuneError

LEARNING_RATE = "learning_rate"
"""The ``kind`` of a learning-rate setting (the lr study varies them, image demos widen them)."""
OPTIMIZER = "optimizer"
"""The ``kind`` of a setting that chooses a phase's optimizer."""


BOUNDS = ("low", "high", "open_low", "open_high")
"""The keywords of :func:`setting` that bound a number."""


def setting(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    kind: str | None = None,
    log: bool = False,
    **bounds: Any,
) -> Any:
    """A dataclass field with its help text and valid range.

    ``bounds``: ``low``/``high`` bound a number (or every number of a tuple)
    inclusively, or exclusively with ``open_low``/``open_high`` (:data:`BOUNDS`);
    ``choices`` lists the allowed values (a shared tuple, such as
    :data:`fairtune.finetune.training.OPTIMIZERS`; :func:`distinct`: a list's values may not
    repeat). ``kind`` says what the setting is (:data:`LEARNING_RATE`,
    :data:`OPTIMIZER`) for code that treats such settings alike; ``log``: a search
    samples it on a log scale. A list or dict default is copied per instance.
    """
    unknown = sorted(set(bounds) - set(BOUNDS))
    if unknown:
        raise TypeError(f"setting() got unknown keyword(s) {unknown}; bounds are {BOUNDS}")
    low, high = bounds.get("low"), bounds.get("high")
    open_low, open_high = bounds.get("open_low", False), bounds.get("open_high", False)
    metadata: dict[str, Any] = {"help": help, "kind": kind, "log": log}
    if low is not None:
        metadata["low"] = low
        metadata["open_low"] = open_low
    if high is not None:
        metadata["high"] = high
        metadata["open_high"] = open_high
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def learning_rate(default: float, help: str, optimizer: str | None = None) -> Any:
    """A learning-rate :func:`setting`: above 0, searched on a log scale; ``optimizer``
    names the setting that chooses its phase's optimizer, where the method has one."""
    declared = setting(default, help, low=0, open_low=True, kind=LEARNING_RATE, log=True)
    return field(default=default, metadata={**declared.metadata, "optimizer": optimizer})


def of_kind(cls: type, kind: str) -> list[Field]:
    """The fields of the settings dataclass ``cls`` declared with ``kind``."""
    return [f for f in fields(cls) if f.metadata.get("kind") == kind]


def declared(cls: type, name: str) -> Field:
    """The field ``name`` of the settings dataclass ``cls``."""
    return next(f for f in fields(cls) if f.name == name)


def default_of(f: Field) -> Any:
    """A field's default value (calling its factory)."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def with_origin(origin: str, declared: Any) -> Any:
    """The :func:`setting` field ``declared``, saying whose its default is: the paper or
    code it is taken from, or "ours: " and why (shown by ``fairtune methods NAME``)."""
    return field(
        default=declared.default,
        default_factory=declared.default_factory,
        metadata={**declared.metadata, "origin": origin},
    )


def distinct(declared: Any) -> Any:
    """The :func:`setting` field ``declared``, whose list may not repeat a value (seeds: a
    repeated seed is the same run again, which would count as further evidence)."""
    return field(
        default=declared.default,
        default_factory=declared.default_factory,
        metadata={**declared.metadata, "distinct": True},
    )


def same_as(f: Field, help: str) -> Any:
    """A new :func:`setting` field with the default and valid range of ``f`` (a setting
    another settings class declares) and its own ``help``: the two stay one fact."""
    return field(
        default=f.default, default_factory=f.default_factory, metadata={**f.metadata, "help": help}
    )


def origin_of(f: Field) -> str:
    """Whose a field's default is, as declared by :func:`with_origin`; '' if unsaid."""
    return f.metadata.get("origin", "")


def range_text(f: Field) -> str:
    """The valid range of a field in words, e.g. '> 0', 'in [0, 1]', or ''."""
    meta = f.metadata
    if "choices" in meta:
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    low, high = meta.get("low"), meta.get("high")
    if low is not None and high is not None:
        left = "(" if meta["open_low"] else "["
        right = ")" if meta["open_high"] else "]"
        return f"in {left}{low}, {high}{right}"
    if low is not None:
        return f"{'>' if meta['open_low'] else '>='} {low}"
    if high is not None:
        return f"{'<' if meta['open_high'] else '<='} {high}"
    return ""


def _bad_number(value: Any, meta: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and math.isnan(value):
        return True
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value <= low if meta["open_low"] else value < low):
        return True
    return high is not None and (value >= high if meta["open_high"] else value > high)


def _check_number(what: str, expected: type, value: Any) -> None:
    """Refuse ``value`` unless it is a number (a whole one when ``expected`` is int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FairtuneError(f"{what} must be a number, not {value!r}")
    if expected is int and isinstance(value, float) and not value.is_integer():
        raise FairtuneError(f"{what} must be a whole number, not {value!r}")


def check_value(owner: str, f: Field, value: Any) -> None:
    """Refuse ``value`` for field ``f`` in one line when its type or range is wrong."""
    meta = f.metadata
    default = default_of(f)
    expected = type(default)
    what = f"{owner} setting '{f.name}'"
    if isinstance(default, (tuple, list)) and default and isinstance(default[0], (int, float)):
        if not isinstance(value, (tuple, list)):
            raise FairtuneError(f"{what} must be a list of numbers, not {value!r}")
        for item in value:
            _check_number(what, type(default[0]), item)
    if expected in (int, float):
        _check_number(what, expected, value)
    if expected is str and not isinstance(value, str):
        raise FairtuneError(f"{what} must be text, not {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        raise FairtuneError(f"{what} must be {range_text(f)}, not {value!r}")
    items = value if isinstance(value, (tuple, list)) else (value,)
    if any(_bad_number(v, meta) for v in items):
        raise FairtuneError(f"{what} must be {range_text(f)}, not {value!r}")
    repeated = sorted({v for v in items if list(items).count(v) > 1}, key=str)
    if meta.get("distinct") and repeated:
        raise FairtuneError(
            f"{what} repeats {', '.join(map(str, repeated))}: a repeated value runs the same "
            "thing again and is no further evidence; give distinct values"
        )


def check(obj: Any, owner: str | None = None) -> None:
    """Validate every field of the dataclass instance ``obj`` against its declaration."""
    owner = owner or type(obj).__name__
    for f in fields(obj):
        check_value(owner, f, getattr(obj, f.name))
