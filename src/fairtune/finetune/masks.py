"""Masks: which weights a fine-tuning step may change, and by how much.

A :class:`Mask` maps parameter names to tensors of the parameter's shape with
values in [0, 1] that multiply the parameter's update (``fairtune.finetune.training``).
Parameters it does not name are frozen. Builders follow METHODS.md: the
relative importance R of each weight, BMFT's hard mask (the top of R, one
percentile over all the given parameters), SWiFT's soft mask tanh(R), and the
random mask of the ablation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from fairtune.errors import FairtuneError
from fairtune.io import atomic_path

EPS = 1e-10


def _minmax(x: torch.Tensor) -> torch.Tensor:
    """``x`` scaled to [0, 1]; a constant (or empty) tensor is returned as it is."""
    if x.numel() == 0 or x.min() == x.max():
        return x
    return (x - x.min()) / (x.max() - x.min() + EPS)


def relative_importance(
    i_bias: dict[str, torch.Tensor], i_pred: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """R = norm(I_bias) / (norm(I_pred) + 1e-10) per tensor, norm being min-max to [0, 1].

    High R marks a weight that matters for the bias loss and little for the
    prediction loss (METHODS.md, "Relative importance").
    """
    if set(i_bias) != set(i_pred):
        differ = sorted(set(i_bias) ^ set(i_pred))
        raise FairtuneError(
            f"bias and prediction importances name different parameters: {differ[:5]}"
        )
    r = {}
    for name, bias in i_bias.items():
        pred = i_pred[name]
        if bias.shape != pred.shape:
            raise FairtuneError(
                f"importances of '{name}' differ in shape: "
                f"{tuple(bias.shape)} vs {tuple(pred.shape)}"
            )
        r[name] = _minmax(bias) / (_minmax(pred) + EPS)
    return r


@dataclass
class Mask:
    """Update multipliers in [0, 1] per parameter name; unnamed parameters are frozen.

    ``kind`` says how it was built: "hard" (BMFT), "soft" (SWiFT), "random" (the
    ablation) or "prune" (FairPrune's kept weights).
    """

    values: dict[str, torch.Tensor]
    kind: str

    def stats(self) -> list[dict[str, Any]]:
        """Per parameter: name, numel, density (fraction nonzero) and mean value."""
        return [
            {
                "name": name,
                "numel": v.numel(),
                "density": float((v != 0).float().mean()) if v.numel() else 0.0,
                "mean": float(v.float().mean()) if v.numel() else 0.0,
            }
            for name, v in self.values.items()
        ]

    def _total(self) -> int:
        return sum(v.numel() for v in self.values.values())

    def density(self) -> float:
        """Fraction of nonzero entries over all named parameters."""
        total = self._total()
        return sum(int((v != 0).sum()) for v in self.values.values()) / total if total else 0.0

    def mean(self) -> float:
        """Mean mask value over all named parameters."""
        total = self._total()
        return sum(float(v.double().sum()) for v in self.values.values()) / total if total else 0.0

    def jaccard(self, other: Mask) -> float:
        """|A ∩ B| / |A ∪ B| of the two masks' nonzero entries; 1.0 when both are empty."""
        inter = union = 0
        for name in self.values.keys() | other.values.keys():
            a, b = self.values.get(name), other.values.get(name)
            if a is not None and b is not None and a.shape != b.shape:
                raise FairtuneError(
                    f"masks differ in the shape of '{name}': {tuple(a.shape)} vs {tuple(b.shape)}"
                )
            nz_a = a != 0 if a is not None else torch.zeros_like(b, dtype=torch.bool)
            nz_b = b != 0 if b is not None else torch.zeros_like(a, dtype=torch.bool)
            inter += int((nz_a & nz_b).sum())
            union += int((nz_a | nz_b).sum())
        return inter / union if union else 1.0

    def save(self, path: str | Path) -> None:
        """Write the mask as safetensors (kind in the metadata), atomically."""
        # clone: safetensors refuses tensors that share storage (views of one buffer)
        tensors = {
            k: v.detach().to(torch.float32).contiguous().clone() for k, v in self.values.items()
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"kind": self.kind})

    @classmethod
    def load(cls, path: str | Path) -> Mask:
        """Read a mask written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FairtuneError(f"mask file '{path}' does not exist")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                values = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        except Exception as exc:  # safetensors raises its own error types
            raise FairtuneError(
                f"cannot read mask file '{path}' ({type(exc).__name__}): it is damaged or not "
                "safetensors; build the mask again"
            ) from None
        if "kind" not in metadata:
            raise FairtuneError(f"'{path}' is not a fairtune mask (no 'kind' in its metadata)")
        for name, v in values.items():
            if v.numel() and not (v.min() >= 0 and v.max() <= 1):
                raise FairtuneError(f"mask '{path}' holds values outside [0, 1] for '{name}'")
        return cls(values, metadata["kind"])


def _check_fraction(value: float, what: str) -> None:
    if not 0 < value <= 1:
        raise FairtuneError(f"{what} must be in (0, 1], not {value}")


def _select(r: dict[str, torch.Tensor], params: Sequence[str]) -> dict[str, torch.Tensor]:
    """``r`` restricted to ``params``, failing on missing names or non-finite values."""
    if not params:
        raise FairtuneError("a mask needs at least one parameter")
    missing = [p for p in params if p not in r]
    if missing:
        raise FairtuneError(f"no relative importance for parameter(s) {missing[:5]}")
    chosen = {p: r[p] for p in params}
    bad = [p for p, v in chosen.items() if not torch.isfinite(v).all()]
    if bad:
        raise FairtuneError(f"relative importance is NaN or infinite in {bad[:5]}")
    return chosen


def hard_mask(r: dict[str, torch.Tensor], params: Sequence[str], keep: float = 0.5) -> Mask:
    """BMFT's mask: 1 where R is above the K-th percentile of R, K = 100 * (1 - keep).

    One threshold for the given parameters jointly: with k = round(keep * n) of
    the n entries, the threshold is the (n - k)-th smallest R and an entry is
    kept when strictly greater. Entries tied at the threshold are all left out,
    so the density is ``keep`` (to rounding) when R has no tie there and below
    it otherwise; the choice never depends on parameter order.
    """
    _check_fraction(keep, "keep")
    chosen = _select(r, params)
    flat = torch.cat([v.detach().flatten().double() for v in chosen.values()])
    n = flat.numel()
    k = round(keep * n)
    if k == 0:
        raise FairtuneError(
            f"keep={keep} of {n} weights rounds to none: raise keep to at least {1 / n:.2g}"
        )
    threshold = torch.kthvalue(flat, n - k).values if k < n else -torch.inf
    return Mask({p: (v.double() > threshold).to(torch.float32) for p, v in chosen.items()}, "hard")


def soft_mask(r: dict[str, torch.Tensor], params: Sequence[str]) -> Mask:
    """SWiFT's mask: tanh(R), in [0, 1) since R >= 0, and non-decreasing in R.

    In float32 tanh rounds to 1.0 for R above about 9 (R reaches 1e10 where the
    normalised I_pred is 0), so values are capped at the largest float below 1.
    """
    chosen = _select(r, params)
    return Mask(
        {
            p: torch.tanh(v.detach().to(torch.float32)).clamp_(max=1 - 2**-24)
            for p, v in chosen.items()
        },
        "soft",
    )


def random_mask(shapes: dict[str, torch.Size], density: float, seed: int) -> Mask:
    """A 0/1 mask with exactly round(density * total) ones, placed by a seeded permutation."""
    _check_fraction(density, "density")
    sizes = [torch.Size(s).numel() for s in shapes.values()]
    total = sum(sizes)
    generator = torch.Generator().manual_seed(seed)
    flat = torch.zeros(total, dtype=torch.float32)
    flat[torch.randperm(total, generator=generator)[: round(density * total)]] = 1.0
    chunks = torch.split(flat, sizes)
    return Mask(
        {p: c.reshape(s).clone() for (p, s), c in zip(shapes.items(), chunks, strict=True)},
        "random",
    )
