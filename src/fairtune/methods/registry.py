"""The methods' registry: every method by its name, and the names no method may take.

A method registers itself with :func:`register` when its module is imported; the package
(``fairtune.methods``) imports every method module, so looking a name up here after
importing the package finds them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fairtune.errors import FairtuneError

if TYPE_CHECKING:  # types only: the interface module registers through this one
    from fairtune.methods.base import Method

REGISTRY: dict[str, type[Method]] = {}

ALL = "all"
"""The name that stands for every registered method."""
AUTO = "auto"
"""The method name that asks for the cross-method choice (``debias --method auto``)."""
BASELINE = "baseline"
"""The row of the unchanged starting model in a comparison."""
SELECTED = "selected"
"""The row of the one choice across methods and the starting model."""
ORIGINAL = "original"
"""The name the cross-method choice gives the unchanged starting model."""
RESERVED: tuple[str, ...] = (ALL, AUTO, BASELINE, SELECTED, ORIGINAL)
"""Names that mean something else on the command line and in results: no method takes one."""


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available by its ``name``, which must be new and not
    one of the :data:`RESERVED` names."""
    if cls.name in RESERVED:
        raise FairtuneError(
            f"'{cls.name}' is reserved ({', '.join(RESERVED)} mean something else in "
            f"commands and results); give {cls.__qualname__} another name"
        )
    if cls.name in REGISTRY:
        raise FairtuneError(
            f"a method named '{cls.name}' is already registered "
            f"({REGISTRY[cls.name].__qualname__}); give {cls.__qualname__} another name"
        )
    REGISTRY[cls.name] = cls
    return cls


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


def get_method(name: str, **config: Any) -> Method:
    """The registered method ``name`` with ``config`` overriding its defaults (both checked)."""
    return method_class(name)(**config)
