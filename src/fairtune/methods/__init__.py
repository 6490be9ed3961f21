"""Debiasing methods: one file each, one registry (``REGISTRY``), one interface (``Method``)."""

from fairtune.methods import bias_gd, bmft, fairprune, fullft, llft, random_mask, swift
from fairtune.methods.base import REGISTRY, DebiasResult, Method, MethodConfig, register

__all__ = ["REGISTRY", "DebiasResult", "Method", "MethodConfig", "get_method", "register"]
_MODULES = (bias_gd, bmft, fairprune, fullft, llft, random_mask, swift)


def get_method(name: str, **config) -> Method:
    """The registered method ``name`` with ``config`` overriding its defaults."""
    from fairtune.errors import FairtuneError

    if name not in REGISTRY:
        raise FairtuneError(f"unknown method '{name}'; choose from {sorted(REGISTRY)}")
    return REGISTRY[name](**config)
