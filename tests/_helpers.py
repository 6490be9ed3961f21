"""Checks several test files share."""

import torch
from torch import nn

from fairtune.masks import Mask


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's parameters and buffers."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def masked_entries_held(
    before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], mask: Mask
) -> tuple[int, int]:
    """Assert every mask-0 entry is bit-identical; return (moved, unmasked) entry counts."""
    moved = unmasked = 0
    for name, m in mask.values.items():
        zero = m.cpu() == 0
        assert torch.equal(before[name][zero], after[name][zero]), name
        moved += int((before[name][~zero] != after[name][~zero]).sum())
        unmasked += int((~zero).sum())
    return moved, unmasked
