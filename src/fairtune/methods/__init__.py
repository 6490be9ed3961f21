"""Debiasing methods: one file each, one registry (``methods.registry``), one interface
(``methods.base.Method``).

Importing a method's module registers it, so this package imports them all.
"""

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
from fairtune.methods.base import Fitted, Method, MethodConfig
from fairtune.methods.registry import (
    ALL,
    REGISTRY,
    RESERVED,
    get_method,
    method_class,
    method_names,
    register,
)
from fairtune.methods.result import DebiasResult

__all__ = [
    "ALL",
    "REGISTRY",
    "RESERVED",
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

