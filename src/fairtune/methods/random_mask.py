"""Random-mask ablation: BMFT with a random mask of the same density."""

from __future__ import annotations

from fairtune.data import FairData
from fairtune.finetune.masks import Mask, random_mask
from fairtune.methods.bmft import BMFT
from fairtune.methods.registry import register
from fairtune.models import ModelSplit


@register
class RandomMask(BMFT):
    """BMFT's impair and repair steps on a random backbone mask of density ``keep``."""

    name = "random_mask"
    summary = "ablation: BMFT with a random mask of the same density"

    def make_mask(self, split: ModelSplit, external: FairData) -> Mask:
        params = dict(split.model.named_parameters())
        shapes = {n: params[n].shape for n in split.backbone_params()}
        return random_mask(shapes, self.config.keep, seed=self.config.seed)
