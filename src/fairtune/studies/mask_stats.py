"""The ``mask`` study: where each method's mask falls, layer by layer, and how masks agree.

Per seed, on the external fit part: BMFT's hard mask and SWiFT's soft mask from
the batch and the per-sample Fisher, the random mask of BMFT's density, and per
layer their density (hard), mean (soft), the Jaccard overlap of the hard masks
and the Spearman correlation of BMFT's relative importance R from the two Fishers.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from fairtune.data import FairData
from fairtune.finetune.masks import Mask
from fairtune.methods import get_method
from fairtune.methods.bmft import BMFT
from fairtune.methods.swift import SWiFT
from fairtune.models import ModelSplit
from fairtune.studies.points import StudySettings

FISHERS = ("batch", "per_sample")
HISTOGRAM_BINS = 20
NO_STEPS = {
    "bmft": {"impair_epochs": 0, "repair_epochs": 0},
    "random_mask": {"impair_epochs": 0, "repair_epochs": 0},
    "swift": {"step1_epochs": 0, "step2_epochs": 0},
}
"""Settings under which a method builds its mask and trains nothing."""


def _mask(
    method: str, model: nn.Module, data: FairData, config: dict[str, Any], head: str | None
) -> Mask:
    """The mask ``method`` builds on ``data`` (its training steps set to no epochs)."""
    mask = get_method(method, **{**config, **NO_STEPS[method]}).fit(model, data, head=head).mask
    assert mask is not None  # these methods always build one
    return mask


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two tensors' entries (NaN when either is constant)."""
    x, y = a.flatten().double().numpy(), b.flatten().double().numpy()
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    return Mask({"w": a}, "hard").jaccard(Mask({"w": b}, "hard"))


def mask_records(
    model: nn.Module, fit: FairData, settings: StudySettings, seed: int, head: str | None
) -> dict[str, Any]:
    """One seed's mask statistics: per layer (``layers``), over all weights (``overall``)
    and the histogram of SWiFT's soft-mask values (``swift_histogram``)."""
    bmft = {"bias_kind": BMFT.bias_kind_for(settings.objective), "seed": seed}
    bmft |= settings.overrides.get("bmft", {})  # the objective's bias loss unless set
    swift = {"bias_kind": SWiFT.bias_kind_for(settings.objective), "seed": seed}
    swift |= settings.overrides.get("swift", {})
    hard = {f: _mask("bmft", model, fit, {**bmft, "importance": f}, head) for f in FISHERS}
    soft = {f: _mask("swift", model, fit, {**swift, "importance": f}, head) for f in FISHERS}
    rand = _mask("random_mask", model, fit, bmft, head)
    split = ModelSplit.of(copy.deepcopy(model), head)
    r = {
        f: get_method("bmft", **bmft, importance=f).relative_importance(split, fit)
        for f in FISHERS
    }
    layers = []
    for name, _ in split.model.named_parameters():
        in_hard = name in hard["batch"].values
        row: dict[str, Any] = {"layer": name, "numel": r["batch"][name].numel()}
        for f in FISHERS:
            row[f"bmft_density_{f}"] = _density(hard[f], name) if in_hard else None
            row[f"swift_mean_{f}"] = float(soft[f].values[name].mean())
        row["random_density"] = _density(rand, name) if in_hard else None
        row["jaccard_bmft_batch_per_sample"] = (
            _jaccard(hard["batch"].values[name], hard["per_sample"].values[name])
            if in_hard
            else None
        )
        row["jaccard_bmft_random"] = (
            _jaccard(hard["batch"].values[name], rand.values[name]) if in_hard else None
        )
        row["spearman_r_batch_per_sample"] = _spearman(r["batch"][name], r["per_sample"][name])
        layers.append(row)
    values = torch.cat([v.flatten() for v in soft["batch"].values.values()]).numpy()
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    overall = {
        **{f"bmft_density_{f}": hard[f].density() for f in FISHERS},
        **{f"swift_mean_{f}": soft[f].mean() for f in FISHERS},
        "random_density": rand.density(),
        "jaccard_bmft_batch_per_sample": hard["batch"].jaccard(hard["per_sample"]),
        "jaccard_bmft_random": hard["batch"].jaccard(rand),
    }
    return {
        "seed": seed,
        "keep": get_method("bmft", **bmft).config.keep,
        "layers": layers,
        "overall": overall,
        "swift_histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
    }


def _density(mask: Mask, name: str) -> float:
    return float((mask.values[name] != 0).float().mean())
