"""Debiasing methods: one file each, one registry (``REGISTRY``), one interface (``Method``).

Importing a method's module registers it, so this package imports them all.
"""

from collections.abc import Sequence

from fairtune.errors import FairtuneError
from fairtune.methods import (
    bias_gd,
    bmft,
    constrained,
    distill,
    fairprune,
    fullft,
    llft,
    random_mask,
    swift,
)
from fairtune.methods.base import REGISTRY, DebiasResult, Fitted, Method, MethodConfig, register

__all__ = [
    "ALL",
    "REGISTRY",
    "DebiasResult",
    "Fitted",
    "Method",
    "MethodConfig",
    "bias_gd",
    "bmft",
    "constrained",
    "distill",
    "fairprune",
    "fullft",
    "get_method",
    "llft",
    "method_class",
    "method_names",
    "random_mask",
    "register",
    "swift",
]


ALL = "all"
"""The name that stands for every registered method."""


def method_class(name: str) -> type[Method]:
    """The registered method class ``name``; the one place an unknown name is refused."""
    if name not in REGISTRY:
        raise FairtuneError(f"unknown method '{name}'; choose from {sorted(REGISTRY)}")
    return REGISTRY[name]


def method_names(names: str | Sequence[str]) -> list[str]:
    """Method names with ``"all"`` expanded to every registered method, each name checked."""
    names = [names] if isinstance(names, str) else list(names)
    if ALL in names:
        return sorted(REGISTRY)
    for name in names:
        method_class(name)
    return names


def get_method(name: str, **config) -> Method:
    """The registered method ``name`` with ``config`` overriding its defaults (both checked)."""
    return method_class(name)(**config)
