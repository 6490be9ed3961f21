"""Debiasing methods: one file each, one registry (``REGISTRY``), one interface (``Method``).

Importing a method's module registers it, so this package imports them all.
"""

from fairtune.errors import FairtuneError
from fairtune.methods import bias_gd, bmft, fairprune, fullft, llft, random_mask, swift
from fairtune.methods.base import REGISTRY, DebiasResult, Fitted, Method, MethodConfig, register

__all__ = [
    "REGISTRY",
    "DebiasResult",
    "Fitted",
    "Method",
    "MethodConfig",
    "bias_gd",
    "bmft",
    "fairprune",
    "fullft",
    "get_method",
    "llft",
    "random_mask",
    "register",
    "swift",
]


def get_method(name: str, **config) -> Method:
    """The registered method ``name`` with ``config`` overriding its defaults (both checked)."""
    if name not in REGISTRY:
        raise FairtuneError(f"unknown method '{name}'; choose from {sorted(REGISTRY)}")
    return REGISTRY[name](**config)
