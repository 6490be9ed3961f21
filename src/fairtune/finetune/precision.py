"""Where a fine-tuning phase computes and in what precision.

:class:`Precision` is the one place that decides the device, mixed precision
(autocast and gradient scaling on CUDA) and the channels_last layout of image
batches; :mod:`fairtune.finetune.training` asks it for each of these.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fairtune.models import to_device


class Precision:
    """Where a phase computes and in what precision: the one place that decides.

    CPU: float32, no autocast, no gradient scaler. CUDA: with ``amp``, float16
    autocast for the forward pass and a :class:`torch.amp.GradScaler`. Both:
    channels_last layout for image models. Build it with :meth:`choose`; the constructor
    takes each part explicitly (as the tests do).
    """

    def __init__(
        self,
        device: torch.device,
        autocast_dtype: torch.dtype | None = None,
        scaler: torch.amp.GradScaler | None = None,
        channels_last: bool = False,
    ) -> None:
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.scaler = scaler
        self.channels_last = channels_last

    @classmethod
    def choose(cls, device: torch.device, amp: bool, channels_last: bool = True) -> Precision:
        """The precision of a phase on ``device``: mixed only on CUDA and with ``amp``."""
        if device.type != "cuda" or not amp:
            return cls(device, channels_last=channels_last)
        return cls(device, torch.float16, torch.amp.GradScaler("cuda"), channels_last=channels_last)

    def rng_devices(self) -> list[int]:
        """The CUDA devices whose random state a phase forks (dropout draws from it)."""
        if self.device.type != "cuda":
            return []
        return [self.device.index if self.device.index is not None else 0]

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A batch's inputs on the device (channels_last for images when enabled)."""
        return to_device(x, self.device, self.channels_last)

    def logits(
        self, forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        """``forward(x)``; under autocast, with the logits cast back to float32 for the loss."""
        if self.autocast_dtype is None:
            return forward(x)
        with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
            return forward(x).float()

    def step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        adjust: Callable[[], None],
        sync: Callable[[], None] | None = None,
    ) -> None:
        """Backward, ``sync`` the gradients, ``adjust`` them (mask, weight decay), step.

        ``sync`` (summing across processes) runs right after the backward pass.
        With a scaler, it sums the scaled gradients, so that every process
        finds the same overflow; ``adjust`` then sees the true (unscaled)
        gradients, and a step whose gradients overflowed is skipped whole: no
        parameter nor optimiser state changes, and the scale is lowered for the
        next batch.
        """
        if self.scaler is None:
            loss.backward()
            if sync is not None:
                sync()
            adjust()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        if sync is not None:
            sync()
        self.scaler.unscale_(optimizer)
        adjust()
        self.scaler.step(optimizer)
        self.scaler.update()
