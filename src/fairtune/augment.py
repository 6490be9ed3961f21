"""Seeded training augmentation of one image tensor: flips, transpose and a small rotation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fairtune.errors import FairtuneError

__all__ = ["Augment", "rotate_image"]


@dataclass
class Augment:
    """The papers' training augmentations, written with torch alone.

    Random horizontal flip, vertical flip and transpose (swap of H and W, for
    square images), each with probability ``p_flip``, then a rotation by an
    angle drawn uniformly from ``[-rotate, rotate]`` degrees (bilinear
    ``affine_grid``/``grid_sample``; ``padding`` is ``"zeros"``, black corners
    as torchvision's ``RandomRotation``, or ``"reflection"``). :class:`ImageSource`
    applies it to the [0, 1] pixels, before normalisation.

    Randomness: every call draws from a fresh ``torch.Generator`` seeded from
    ``(seed, epoch, key)``, where ``key`` is the image's CSV row. There is no
    shared generator state, so the same seed gives the same augmented tensors
    whatever the order of access, the subset taken, or the number of DataLoader
    workers (a shared generator would be copied into every worker and repeat its
    stream). Call :meth:`set_epoch` before each epoch to draw new augmentations;
    with DataLoader workers, call it before the epoch's iterator is created.
    """

    p_flip: float = 0.5
    rotate: float = 15.0
    padding: str = "zeros"
    seed: int = 0
    epoch: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_flip <= 1.0:
            raise FairtuneError(f"augment flip probability must lie in [0, 1], not {self.p_flip}")
        if not 0.0 <= self.rotate <= 180.0:
            raise FairtuneError(f"augment rotation must lie in [0, 180] degrees, not {self.rotate}")
        if int(self.seed) < 0:
            raise FairtuneError(f"augment seed must be a non-negative integer, not {self.seed}")
        if self.padding not in ("zeros", "reflection", "border"):
            raise FairtuneError(
                f"augment padding must be 'zeros', 'reflection' or 'border', not '{self.padding}'"
            )

    def set_epoch(self, epoch: int) -> None:
        """Draw the augmentations of epoch ``epoch`` from now on."""
        self.epoch = int(epoch)

    def generator(self, key: int) -> torch.Generator:
        """The generator for one item: a function of (seed, epoch, key) alone."""
        state = np.random.SeedSequence([self.seed, self.epoch, int(key)]).generate_state(2)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def __call__(self, x: torch.Tensor, key: int) -> torch.Tensor:
        """Augment one image ``x`` of shape (C, H, W); ``key`` identifies the item."""
        if x.dim() != 3:
            raise FairtuneError(f"Augment expects one image (C, H, W), not shape {tuple(x.shape)}")
        # Always draw the same four numbers, so each draw has a fixed meaning.
        u = torch.rand(4, generator=self.generator(key), dtype=torch.float64)
        if u[0] < self.p_flip:
            x = x.flip(-1)
        if u[1] < self.p_flip:
            x = x.flip(-2)
        if u[2] < self.p_flip and x.shape[-1] == x.shape[-2]:
            x = x.transpose(-1, -2)
        if self.rotate > 0:
            x = rotate_image(x, float((2 * u[3] - 1) * self.rotate), self.padding)
        return x.contiguous()


def rotate_image(x: torch.Tensor, degrees: float, padding: str = "zeros") -> torch.Tensor:
    """Rotate a (C, H, W) image by ``degrees`` about its centre, bilinear.

    Positive angles turn the image counter-clockwise as displayed (row 0 at the
    top): 90 degrees equals ``torch.rot90(x, 1, (1, 2))``.
    """
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[[cos, -sin, 0.0], [sin, cos, 0.0]]], dtype=x.dtype)
    grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
    out = F.grid_sample(
        x.unsqueeze(0), grid, mode="bilinear", padding_mode=padding, align_corners=False
    )
    return out[0]
