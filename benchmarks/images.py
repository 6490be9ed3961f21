"""Images per second of importance and fine-tuning on the SYNTHETIC skin-tone images.

``make_skin_tone_images`` writes the set into a temporary folder (--images external
images, --image-size pixels, seed --seed); ``read_image_csv`` reads it (label
``malignant``, groups ``skin_tone``). For the small CNN ("cnn", random init) and
EfficientNet-Lite0 (ImageNet weights, random 1-logit head), with the images held in
memory (``in_memory``) unless said otherwise:

(a) importance: ``fisher_diagonal`` of L_bias and L_pred, mode "batch" and
    "per_sample", batch --batch-size;
(b) a masked backbone phase, SWiFT step 1 style: soft mask tanh(R) from (a)'s batch
    Fisher, trainable = backbone, L = 0.1 L_pred + 0.9 L_bias, SGD lr 1e-4,
    --backbone-epochs epochs;
(c) a head-only phase (LLFT / repair style, trainable = head, lr 1e-3, --head-epochs
    epochs) with ``cache_features=True`` and ``False``: times, the speed-up, and the
    largest difference between the two resulting heads;
(d) phase (b) again on the lazy ``ImageSource`` (every PNG decoded every epoch):
    its images per second against (b)'s;
(e) phase (b) again with ``channels_last=False`` (weights and images in the plain
    contiguous layout): the speed-up of the channels_last layout that phases use.

Every timed call starts from a copy of the same model; the arms of (a), (b)-(e) and
(c) alternate within each repeat; medians of --repeats after one warm-up on 64 images.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from _common import (
    console,
    environment,
    median,
    n_params,
    parser,
    recorded_args,
    set_threads,
    table,
    write_json,
)
from torch import nn

from fairtune.architectures import image_arch
from fairtune.backbones import (
    SmallCNN,
    efficientnet_lite0,
)
from fairtune.columns import Columns
from fairtune.data import FairData
from fairtune.datasets.synthetic import SyntheticSpec, make_skin_tone_images
from fairtune.finetune.importance import fisher_diagonal
from fairtune.finetune.losses import Objective
from fairtune.finetune.masks import relative_importance, soft_mask
from fairtune.finetune.training import Phase, run_phase
from fairtune.image_csv import ImageOptions, read_image_csv
from fairtune.images import Decoding, in_memory
from fairtune.models import ModelSplit

ARCHS = ("cnn", "efficientnet_lite0")
LABELS = {
    "fisher_batch": "(a) fisher batch",
    "fisher_per_sample": "(a) fisher per_sample",
    "backbone_memory": "(b) masked backbone, in memory",
    "backbone_lazy": "(d) masked backbone, lazy PNG",
    "backbone_plain": "(e) masked backbone, plain layout",
    "head_cached": "(c) head only, cached features",
    "head_uncached": "(c) head only, uncached",
}


def build(arch: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # the CNN's weights, the head of EfficientNet-Lite0
    if arch == "cnn":
        return SmallCNN()
    return efficientnet_lite0(pretrained=True)


def read(folder: Path, arch: str, image_size: int) -> FairData:
    """The external split as lazily decoded images, normalised as ``arch`` expects."""
    _, mean, std = image_arch(arch)
    data, _ = read_image_csv(
        folder / "synthetic_external.csv",
        ImageOptions("image", Decoding(image_size, 3, mean, std)),
        Columns("malignant", "skin_tone"),
    )
    return data


def objectives(n_groups: int) -> dict[str, Objective]:
    return {
        "bias": Objective.bias("eodds", n_groups),
        "pred": Objective.pred(n_groups=n_groups),
    }


def run_once(fn: Callable[[nn.Module], Any], model: nn.Module) -> tuple[float, Any]:
    """Wall time of ``fn`` on a fresh copy of ``model`` (the copy is made untimed)."""
    fresh = copy.deepcopy(model)
    start = time.perf_counter()
    result = fn(fresh)
    return time.perf_counter() - start, (fresh, result)


def bench(arch: str, folder: Path, args: Any) -> dict[str, Any]:
    start = time.perf_counter()
    model = build(arch, args.seed)
    build_s = time.perf_counter() - start
    split = ModelSplit.of(model)
    lazy = read(folder, arch, args.image_size)
    start = time.perf_counter()
    memory = in_memory(lazy)
    decode_s = time.perf_counter() - start
    n, bs = len(memory), args.batch_size
    objs = objectives(memory.n_groups)

    def fisher(mode: str, data: FairData) -> Callable[[nn.Module], Any]:
        return lambda m: fisher_diagonal(m, data, objs, mode=mode, batch_size=bs)

    # SWiFT step 1's mask, from the batch Fisher of the untouched model.
    importance = fisher_diagonal(model, memory, objs, mode="batch", batch_size=bs)
    mask = soft_mask(
        relative_importance(importance["bias"], importance["pred"]), split.all_params()
    )
    backbone = Phase(
        objective=Objective(w_pred=0.1, w_bias=0.9, n_groups=memory.n_groups),
        trainable=split.backbone_params(),
        mask=mask,
        epochs=args.backbone_epochs,
        lr=1e-4,
        name="step1",
    )
    plain = replace(backbone, channels_last=False)
    head = Phase(
        objective=Objective(w_pred=0.9, w_bias=0.1, n_groups=memory.n_groups),
        trainable=split.head_params(),
        epochs=args.head_epochs,
        lr=1e-3,
        name="head",
    )

    def phase(p: Phase, data: FairData, cache: bool = True) -> Callable[[nn.Module], Any]:
        return lambda m: run_phase(
            m, data, replace(p, cache_features=cache), seed=args.seed, split=ModelSplit.of(m)
        )

    def arms(mem: FairData, lz: FairData) -> dict[str, tuple[Callable[[nn.Module], Any], int]]:
        """Each arm's call and the images it processes."""
        k = len(mem)
        return {
            "fisher_batch": (fisher("batch", mem), k),
            "fisher_per_sample": (fisher("per_sample", mem), k),
            "backbone_memory": (phase(backbone, mem), k * backbone.epochs),
            "backbone_lazy": (phase(backbone, lz), k * backbone.epochs),
            "backbone_plain": (phase(plain, mem), k * backbone.epochs),
            "head_cached": (phase(head, mem, True), k * head.epochs),
            "head_uncached": (phase(head, mem, False), k * head.epochs),
        }

    warm = list(range(min(64, n)))
    for fn, _ in arms(memory.subset(warm), lazy.subset(warm)).values():
        run_once(fn, model)

    times: dict[str, list[float]] = {k: [] for k in LABELS}
    images: dict[str, int] = {}
    head_diffs: list[float] = []
    for _ in range(args.repeats):
        heads: dict[str, dict[str, torch.Tensor]] = {}
        for key, (fn, count) in arms(memory, lazy).items():
            seconds, (fresh, _) = run_once(fn, model)
            times[key].append(seconds)
            images[key] = count
            if key.startswith("head_"):
                heads[key] = {
                    n_: t.detach() for n_, t in ModelSplit.of(fresh).head_module.named_parameters()
                }
        head_diffs.append(
            max(
                float((heads["head_cached"][p] - heads["head_uncached"][p]).abs().max())
                for p in heads["head_cached"]
            )
        )
    med = {k: median(v) for k, v in times.items()}
    per_s = {k: images[k] / med[k] for k in LABELS}
    body = set(split.backbone_params())
    head_scale = max(float(t.abs().max()) for t in heads["head_cached"].values())
    return {
        "arch": arch,
        "params": n_params(model),
        "backbone_params": sum(p.numel() for n_, p in model.named_parameters() if n_ in body),
        "images": n,
        "image_size": args.image_size,
        "batch_size": bs,
        "backbone_epochs": backbone.epochs,
        "head_epochs": head.epochs,
        "build_s": build_s,
        "decode_into_memory_s": decode_s,
        "mask_mean": mask.mean(),
        "images_per_run": images,
        "seconds": times,
        "median_s": med,
        "images_per_s": per_s,
        "per_sample_over_batch_time": med["fisher_per_sample"] / med["fisher_batch"],
        "head_cache_speedup": med["head_uncached"] / med["head_cached"],
        "lazy_over_memory_images_per_s": per_s["backbone_lazy"] / per_s["backbone_memory"],
        "channels_last_speedup": med["backbone_plain"] / med["backbone_memory"],
        "head_max_abs_diff": max(head_diffs),
        "head_max_abs_weight": head_scale,
    }


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0])
    for action in p._actions:  # the shared help speaks of the Adult split
        if action.dest == "seed":
            action.help = "seed of the synthetic images, the models' initial weights and training"
    p.add_argument("--arch", choices=[*ARCHS, "all"], default="all", help="backbone(s) to time")
    p.add_argument("--images", type=int, default=512, help="external images generated")
    p.add_argument("--image-size", type=int, default=32, help="pixels per side")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (authors: 64)")
    p.add_argument("--backbone-epochs", type=int, default=1, help="epochs of (b) and (d)")
    p.add_argument("--head-epochs", type=int, default=5, help="epochs of (c)")
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    archs = list(ARCHS) if args.arch == "all" else [args.arch]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synthetic"
        with console.status("writing the synthetic images"):
            start = time.perf_counter()
            spec = SyntheticSpec(
                n_train=4, n_external=args.images, n_test=4, image_size=args.image_size
            )
            make_skin_tone_images(folder, spec, seed=args.seed)
            make_s = time.perf_counter() - start
        for arch in archs:
            with console.status(f"timing {arch}"):
                results.append(bench(arch, folder, args))
    rows = [
        [
            r["arch"],
            label,
            f"{r['images_per_run'][k]:,}",
            f"{r['median_s'][k]:.3f}",
            f"{min(r['seconds'][k]):.3f}–{max(r['seconds'][k]):.3f}",
            f"{r['images_per_s'][k]:.1f}",
        ]
        for r in results
        for k, label in LABELS.items()
    ]
    console.print(
        table(
            f"Images per second, {args.images} synthetic images {args.image_size}x"
            f"{args.image_size}, batch {args.batch_size} (median of {args.repeats}; "
            f"{threads} thread(s))",
            ["model", "what", "images per run", "median s", "min–max s", "images / s"],
            rows,
        )
    )
    ratios = [
        [
            r["arch"],
            f"{r['per_sample_over_batch_time']:.2f}",
            f"{r['head_cache_speedup']:.2f}",
            f"{r['head_max_abs_diff']:.2e}",
            f"{r['head_max_abs_weight']:.2e}",
            f"{r['lazy_over_memory_images_per_s']:.2f}",
            f"{r['channels_last_speedup']:.2f}",
            f"{r['decode_into_memory_s']:.2f}",
        ]
        for r in results
    ]
    console.print(
        table(
            "Ratios within the run",
            [
                "model",
                "(a) ps / batch",
                "(c) speed-up",
                "(c) max |Δ|",
                "max |head|",
                "(d) lazy / mem",
                "(e) speed-up",
                "decode s",
            ],
            ratios,
        )
    )
    console.print(
        "(a) ps / batch: median time of fisher per_sample over batch. (c) speed-up: head-only "
        "phase, uncached over cached median time (cached includes computing the features); "
        "max |Δ|: largest difference between the heads the two give. (d) lazy / mem: images "
        "per second of the masked backbone phase on the lazy source over in memory. (e) speed-up: "
        "that phase in the plain layout over channels_last, median time. decode s: "
        "in_memory's one decoding pass (not timed above)."
    )
    for r in results:
        console.print(
            f"{r['arch']}: {r['params']:,} parameters ({r['backbone_params']:,} in the backbone); "
            f"soft mask mean {r['mask_mean']:.3f}"
        )
    console.print(f"writing the synthetic set took {make_s:.2f} s (not timed above)")
    payload = {
        "benchmark": "images",
        "environment": environment(threads),
        "args": recorded_args(args),
        "make_images_s": make_s,
        "results": results,
    }
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
