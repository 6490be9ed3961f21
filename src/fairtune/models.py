"""Models: the tabular MLP, the backbone/head split, inference, and loading weights strictly.

The model directory (``config.json`` and ``model.safetensors``) is :mod:`fairtune.modelio`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fairtune.errors import FairtuneError


class MLP(nn.Module):
    """A multilayer perceptron for tabular data with a one-logit head named ``head``."""

    def __init__(self, in_features: int, hidden: tuple[int, ...] = (64, 32), dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's binary logits as a 1-D tensor (see :func:`as_logits`)."""
    return as_logits(model(x))


def as_logits(out: Any) -> torch.Tensor:
    """A binary classifier's output as 1-D logits of the positive class.

    One logit per sample, shape (n,) or (n, 1), is taken as it is. Two class
    scores, shape (n, 2) as trained with cross-entropy, become z1 - z0: then
    sigmoid(z1 - z0) is softmax's probability of class 1. Other shapes are refused,
    and so is an output that is not a tensor (a dict, a tuple, a HuggingFace output):
    the message names its type and what is needed.
    """
    if not isinstance(out, torch.Tensor):
        keys = f" with keys {list(out)[:5]}" if isinstance(out, dict) else ""
        raise FairtuneError(
            f"the model's forward returns a {type(out).__name__}{keys}, not a tensor: fairtune "
            "needs a tensor of logits; wrap the model so that forward returns one (e.g. a "
            "HuggingFace model's output.logits)"
        )
    if out.dim() == 2 and out.shape[1] == 1:
        return out[:, 0]
    if out.dim() == 2 and out.shape[1] == 2:
        return out[:, 1] - out[:, 0]
    if out.dim() != 1:
        raise FairtuneError(
            f"the model returns shape {tuple(out.shape)}; a binary classifier must return "
            "one logit per sample, shape (n,) or (n, 1), or two class scores, shape (n, 2)"
        )
    return out


# ---------------------------------------------------------------- backbone / head


def find_head(model: nn.Module, name: str | None = None) -> str:
    """The module name of the classification head.

    ``name`` if given; else timm's ``get_classifier()``, torchvision's ``fc`` or
    ``classifier`` (its last Linear when a Sequential), else the last
    ``nn.Linear`` in module order.
    """
    modules = dict(model.named_modules())
    if name is not None:
        if name not in modules or name == "":
            raise FairtuneError(
                f"no module named '{name}' in the model; candidates: "
                f"{[n for n, m in modules.items() if isinstance(m, nn.Linear)][-5:]}"
            )
        return name
    if hasattr(model, "get_classifier"):
        clf = model.get_classifier()
        for n, m in modules.items():
            if m is clf and isinstance(m, nn.Linear):
                return n
    for attr in ("fc", "classifier", "head"):
        m = modules.get(attr)
        if isinstance(m, nn.Linear):
            return attr
        if isinstance(m, nn.Sequential):
            linears = [f"{attr}.{n}" for n, s in m.named_modules() if isinstance(s, nn.Linear)]
            if linears:
                return linears[-1]
    linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
    if not linears:
        raise FairtuneError(
            "no classification head found (no nn.Linear in the model): "
            "name the head module with --head"
        )
    return linears[-1]


@dataclass
class ModelSplit:
    """A model seen as backbone E and head C, with C the module named ``head``."""

    model: nn.Module
    head: str

    @classmethod
    def of(cls, model: nn.Module, head: str | None = None) -> ModelSplit:
        return cls(model, find_head(model, head))

    @property
    def head_module(self) -> nn.Module:
        return self.model.get_submodule(self.head)

    def head_params(self) -> list[str]:
        """Names (as in ``model.named_parameters()``) of the head's parameters."""
        return [f"{self.head}.{n}" for n, _ in self.head_module.named_parameters()]

    def backbone_params(self) -> list[str]:
        head = set(self.head_params())
        return [n for n, _ in self.model.named_parameters() if n not in head]

    def all_params(self) -> list[str]:
        return [n for n, _ in self.model.named_parameters()]

    def check(self, data: Any) -> None:
        """Fail before any work unless the forward pass on two rows of ``data`` (in eval mode)
        calls the head and returns logits."""
        x = next(iter(data.loader(2)))[0]
        with evaluating(self.model):
            _, output = self.features_and_output(x)
        as_logits(output)

    @torch.no_grad()
    def features_and_output(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's input and the model's output for ``x``, from one forward pass."""
        captured: list[torch.Tensor] = []

        def grab(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            captured.append(args[0].detach())

        handle = self.head_module.register_forward_pre_hook(grab)
        try:
            output = self.model(x.to(model_device(self.model), non_blocking=True))
        finally:
            handle.remove()
        if not captured:
            raise FairtuneError(
                f"the head '{self.head}' is not called by the model's forward pass: give the "
                "name of the module that maps the features to the logits as the head"
            )
        return captured[0], output

    def reset_head(self, mode: str = "zeros", seed: int = 0) -> None:
        """Re-initialise the head: zeros (as the BMFT authors) or PyTorch's default init."""
        head = self.head_module
        with torch.no_grad():
            if mode == "zeros":
                for p in head.parameters():
                    p.zero_()
            elif mode == "default":
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    for module in head.modules():
                        if hasattr(module, "reset_parameters"):
                            module.reset_parameters()
            else:
                raise FairtuneError(f"head reset must be 'zeros' or 'default', not '{mode}'")


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the block; every submodule's previous mode restored after."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes.items():
            module.training = mode


@contextmanager
def channels_last(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Hold the model's 4-D weights and buffers in channels_last memory format for the block.

    Convolutions run faster so (oneDNN on the CPU, cuDNN on CUDA) when the
    inputs are channels_last too (:func:`to_device`). Only the layout changes:
    values stay bit-identical, the tensors keep their identity (``.data`` is
    swapped), and their previous layout is restored after. A model without 4-D
    tensors (an MLP) is untouched.
    """
    if not enabled:
        yield
        return
    fmt = torch.channels_last
    tensors = [
        t
        for t in (*model.parameters(), *model.buffers())
        if t.dim() == 4 and not t.is_contiguous(memory_format=fmt)
    ]
    for t in tensors:
        t.data = t.data.contiguous(memory_format=fmt)
    try:
        yield
    finally:
        for t in tensors:
            t.data = t.data.contiguous()


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool = True) -> torch.Tensor:
    """A batch of inputs on ``device``; a 4-D (image) batch in channels_last when asked."""
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def predict_proba(model: nn.Module, data: Any, batch_size: int = 1024) -> torch.Tensor:
    """Probabilities for every row of a :class:`~fairtune.data.FairData`, in eval mode.

    Batches run on the model's device, in its precision and in channels_last
    layout (:func:`channels_last`); the result is a CPU tensor.
    """
    return batch_proba(model, (x for x, _, _ in data.loader(batch_size)))


@torch.no_grad()
def batch_proba(model: nn.Module, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """Probabilities for batches of inputs alone (no labels), as :func:`predict_proba`."""
    device = model_device(model)
    out = []
    with evaluating(model), channels_last(model):
        for x in batches:
            z = logits(model, to_device(x, device))
            out.append(torch.sigmoid(z).cpu())
    return torch.cat(out) if out else torch.empty(0)


# ---------------------------------------------------------------- weights


def load_weights(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    head: str | None = None,
    hint: str = "Check --arch and its options",
) -> None:
    """Load ``state`` strictly, turning a mismatch into one line that names the missing,
    unexpected and mis-shaped keys and ends with ``hint``.

    With ``head`` (the classifier's module name), a checkpoint whose classifier
    has another number of outputs (the original many-class model, e.g. ImageNet
    weights saved by hand) loads everything else; the model keeps its own head.
    ``hint`` ends a mismatch's message: what the caller's user can change.
    """
    own = model.state_dict()
    if head is not None:
        other_head = {
            k: own[k]
            for k, v in state.items()
            if k.startswith(head + ".") and k in own and v.shape != own[k].shape
        }
        state = {**state, **other_head}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}")
        if wrong:
            parts.append(f"wrong shape {wrong[:3]}")
        raise FairtuneError(
            f"checkpoint {source} does not match the architecture: {'; '.join(parts)}. {hint}"
        )
    model.load_state_dict(state)
