"""Architectures by name: the one registry, and building a model from its description.

An architecture description is the JSON dict ``{"name": ..., **options}``
saved in a model directory's ``config.json``; :func:`build_model` turns it
into a model through the registry entry named ``name``. An entry knows its
builder and the input normalisation its weights expect. The prefix entries
``"torchvision"`` and ``"timm"`` serve every ``"torchvision:<model>"`` and
``"timm:<model>"``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from torch import nn

from fairtune.backbones import (
    Normalisation,
    SmallCNN,
    SmallViT,
    build_timm,
    build_torchvision,
    efficientnet_lite0,
    timm_normalisation,
)
from fairtune.errors import FairtuneError
from fairtune.models import MLP


@dataclass(frozen=True)
class Architecture:
    """One registry entry: how to build an architecture and how to feed it images.

    ``builder`` is called with the description's options; a ``prefix`` entry
    serves every ``"<name>:<model>"``, its builder taking the model's name
    first. ``mean`` and ``std`` are the per-channel normalisation the weights
    expect (None: the image reader's default, ImageNet's); a prefix entry's
    ``normalisation`` gives them per model name instead. ``in_channels``: the
    builder takes the number of image channels as ``in_channels``;
    ``image_size``: it takes the image side as ``image_size`` (models with a
    fixed input size, such as ViTs, are built for it); ``image_options`` are the
    further options an image pipeline builds it with. ``summary`` is its
    description in ``--help``; ``costly``: fine-tuning its backbone takes tens of
    seconds a setting on a CPU, so the image demo narrows the grids of the methods
    that do (:func:`fairtune.demo.learning_rate_grids`).
    """

    name: str
    builder: Callable[..., nn.Module]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    prefix: bool = False
    in_channels: bool = False
    image_size: bool = False
    normalisation: Callable[[str], Normalisation | None] | None = None
    image_options: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    costly: bool = False


# EfficientNet-Lite was trained (TensorFlow) with inception-style normalisation,
# (pixel - 127) / 128, in [0, 1] units; not with the ImageNet mean and std.
ARCHITECTURES: dict[str, Architecture] = {
    entry.name: entry
    for entry in (
        Architecture("mlp", MLP, summary="multi-layer perceptron, for tables"),
        Architecture("cnn", SmallCNN, in_channels=True, summary="small CNN, built in"),
        Architecture("vit", SmallViT, in_channels=True, summary="small ViT, built in"),
        Architecture(
            "efficientnet_lite0",
            efficientnet_lite0,
            mean=(127.0 / 255.0,) * 3,
            std=(128.0 / 255.0,) * 3,
            in_channels=True,
            image_options={"pretrained": True},
            summary="ImageNet weights, extra 'pretrained'",
            costly=True,
        ),
        # torchvision's classifiers all expect ImageNet's statistics, the reader's default.
        Architecture(
            "torchvision", build_torchvision, prefix=True, image_size=True, summary="extra 'vision'"
        ),
        # timm's expect their own model's (its pretrained config: ImageNet's or 0.5s).
        Architecture(
            "timm",
            build_timm,
            prefix=True,
            image_size=True,
            normalisation=timm_normalisation,
            summary="extra 'vision'",
        ),
    )
}


def architectures_text(images: bool = False) -> str:
    """The registered architectures for ``--help`` (with ``images``, those that read images),
    each with its summary."""
    return ", ".join(
        f"{name}{':NAME' if e.prefix else ''} ({e.summary})" if e.summary else name
        for name, e in ARCHITECTURES.items()
        if e.in_channels or e.prefix or not images
    )


def costly_architectures() -> list[str]:
    """The architectures declared ``costly`` to fine-tune on a CPU."""
    return [name for name, e in ARCHITECTURES.items() if e.costly]


def register_architecture(entry: Architecture) -> None:
    """Make ``build_model({"name": entry.name, ...})`` build ``entry``."""
    ARCHITECTURES[entry.name] = entry


def resolve_architecture(name: str) -> Architecture:
    """The entry for ``name``: an exact registry entry, or a prefix entry's ``"prefix:model"``.

    A prefix entry comes back named ``name``, its builder bound to the model's name.
    """
    entry = ARCHITECTURES.get(name)
    if entry is not None and not entry.prefix:
        return entry
    prefix, sep, rest = str(name).partition(":")
    entry = ARCHITECTURES.get(prefix)
    if sep and rest and entry is not None and entry.prefix:
        builder = functools.partial(entry.builder, rest)
        norm = entry.normalisation(rest) if entry.normalisation else None
        mean, std = norm if norm is not None else (entry.mean, entry.std)
        return replace(entry, name=name, builder=builder, prefix=False, mean=mean, std=std)
    exact = sorted(n for n, e in ARCHITECTURES.items() if not e.prefix)
    prefixes = ", ".join(n + ":<name>" for n, e in ARCHITECTURES.items() if e.prefix)
    raise FairtuneError(f"unknown architecture '{name}'; known: {exact}, or {prefixes}")


def build_model(arch: dict[str, Any]) -> nn.Module:
    """Instantiate an architecture from its JSON description ``{"name": ..., **kwargs}``."""
    if not isinstance(arch, dict):
        raise FairtuneError(f"an architecture is a dict with a 'name', not {arch!r}")
    spec = dict(arch)
    name = spec.pop("name", None)
    builder = resolve_architecture(name).builder
    if "hidden" in spec:
        spec["hidden"] = tuple(spec["hidden"])
    try:
        inspect.signature(builder).bind(**spec)
    except TypeError as exc:
        raise FairtuneError(f"architecture '{name}' cannot take options {spec}: {exc}") from None
    return builder(**spec)


class ImageArch(NamedTuple):
    """An architecture description for images and the normalisation its weights expect."""

    arch: dict[str, Any]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None


def image_arch(name: str, channels: int = 3, image_size: int | None = None) -> ImageArch:
    """Architecture description for ``name`` on ``channels``-channel images of side
    ``image_size`` (None: the model's own), and the normalisation (mean, std) its
    weights expect (None: the reader's default)."""
    entry = resolve_architecture(name)
    arch: dict[str, Any] = {"name": name, **entry.image_options}
    if entry.in_channels:
        arch["in_channels"] = channels
    if entry.image_size and image_size is not None:
        arch["image_size"] = int(image_size)
    mean = None if entry.mean is None else entry.mean[:channels]
    std = None if entry.std is None else entry.std[:channels]
    return ImageArch(arch, mean, std)
