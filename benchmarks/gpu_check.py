"""GPU readiness: the CUDA tests, then images per second of a ResNet-18 at 224x224 on CUDA.

On a machine with a CUDA GPU it runs the tests of tests/test_device.py and
tests/test_torchrun.py that concern CUDA (``pytest -k cuda``), then times, on
random 224x224 images held on the GPU, torchvision's ResNet-18 (a ResNet-18 of
the same layout built from torch.nn where torchvision is missing) through the
phases the library runs there in mixed precision (float16 autocast, gradient
scaler) with channels_last:

- importance: ``fisher_diagonal`` of L_bias and L_pred, mode "batch";
- masked backbone step: soft mask tanh(R) from that importance, trainable =
  backbone, 0.1 L_pred + 0.9 L_bias, SGD lr 1e-4, 1 epoch;
- head step: trainable = head, 0.9 L_pred + 0.1 L_bias, lr 1e-3, 1 epoch,
  ``cache_features=False`` (every batch through the backbone).

Printed: images per second per phase (median of --repeats after one warm-up) and
the phase's peak GPU memory. Then the mask check: a masked backbone step under
autocast with BMFT's hard mask (keep 0.5) must leave every masked-out weight and
the head bit for bit as they were, and move the kept ones; a failure exits 1.
Without a GPU it prints one line saying so and exits 0. ``make gpu-check`` runs
it in the vision environment (torch's CUDA build); the defaults take about a
minute on one GPU, well under five.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fairtune.architectures import build_model
from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.finetune.importance import fisher_diagonal
from fairtune.finetune.losses import Objective
from fairtune.finetune.masks import hard_mask, relative_importance, soft_mask
from fairtune.finetune.training import Phase, run_phase
from fairtune.models import ModelSplit

ROOT = Path(__file__).resolve().parent.parent
NO_GPU = "gpu-check: no CUDA GPU here (torch {}); nothing to check, skipped."


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convolutions with a shortcut (1x1 where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18's layout (11.2M parameters) with a 1-logit ``head``."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        ]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(512, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def run_cuda_tests() -> int:
    """Exit status of pytest on the CUDA tests of tests/test_device.py and test_torchrun.py."""
    files = ["tests/test_device.py", "tests/test_torchrun.py"]
    command = [sys.executable, "-m", "pytest", "-q", *files, "-k", "cuda"]
    return subprocess.call(command, cwd=ROOT)


def resnet18() -> tuple[nn.Module, str]:
    """torchvision's ResNet-18 with a 1-logit head (random weights), or this file's
    :class:`ResNet18` where torchvision is missing; and which one it is."""
    try:
        return build_model({"name": "torchvision:resnet18"}), "torchvision ResNet-18"
    except FairtuneError:
        return ResNet18(), "ResNet-18 (torch.nn; torchvision is missing)"


def images_per_second(
    fn: Callable[[nn.Module], Any], model: nn.Module, images: int, repeats: int
) -> tuple[float, float]:
    """Images per second of ``fn`` on fresh copies of ``model`` (median of ``repeats``)
    and the peak GPU memory it allocated, in MiB."""
    times = []
    torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats + 1):  # the first is a warm-up (cuDNN autotuning, allocator)
        fresh = copy.deepcopy(model)
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn(fresh)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20
    return images / statistics.median(times[1:]), peak


def mask_holds(model: nn.Module, data: FairData, importance: dict, batch_size: int) -> str:
    """'' when a hard-masked backbone step under autocast leaves the masked-out weights and
    the head exactly as they were and moves kept weights; else what went wrong."""
    split = ModelSplit.of(model)
    r = relative_importance(importance["bias"], importance["pred"])
    mask = hard_mask(r, split.backbone_params(), keep=0.5)
    phase = Phase(
        objective=Objective(w_pred=0.1, w_bias=0.9, n_groups=2),
        trainable=split.backbone_params(),
        mask=mask,
        epochs=1,
        lr=1e-2,
        batch_size=batch_size,
        name="mask check",
    )
    fresh = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in fresh.named_parameters()}
    run_phase(fresh, data, phase)
    after = dict(fresh.named_parameters())
    moved = False
    for name, m in mask.values.items():
        kept = m.to(before[name].device) != 0
        if not torch.equal(after[name][~kept], before[name][~kept]):
            return f"masked-out entries of {name} changed"
        moved = moved or not torch.equal(after[name][kept], before[name][kept])
    if any(not torch.equal(after[n], before[n]) for n in split.head_params()):
        return "the head changed in a backbone-only step"
    if not moved:
        return "no kept weight moved"
    return ""


def bench(args: argparse.Namespace, model: nn.Module) -> dict[str, tuple[float, float]]:
    """Images per second and peak memory of importance, the masked backbone step and the
    head step; then the mask check, its result under "mask holds under autocast"."""
    torch.manual_seed(args.seed)
    model = model.cuda()
    n = args.images
    data = FairData(
        torch.randn(n, 3, args.image_size, args.image_size),
        torch.randint(0, 2, (n,)).float(),
        torch.randint(0, 2, (n,)),
        ["a", "b"],
    )
    objectives = {"bias": Objective.bias("eodds", 2), "pred": Objective.pred(n_groups=2)}
    split = ModelSplit.of(model)
    imp = fisher_diagonal(model, data, objectives, mode="batch", batch_size=args.batch_size)
    mask = soft_mask(relative_importance(imp["bias"], imp["pred"]), split.all_params())
    backbone = Phase(
        objective=Objective(w_pred=0.1, w_bias=0.9, n_groups=2),
        trainable=split.backbone_params(),
        mask=mask,
        epochs=1,
        lr=1e-4,
        batch_size=args.batch_size,
        name="step1",
    )
    head = Phase(
        objective=Objective(w_pred=0.9, w_bias=0.1, n_groups=2),
        trainable=split.head_params(),
        epochs=1,
        lr=1e-3,
        batch_size=args.batch_size,
        cache_features=False,
        name="head",
    )
    arms = {
        "importance (fisher batch)": lambda m: fisher_diagonal(
            m, data, objectives, mode="batch", batch_size=args.batch_size
        ),
        "masked backbone step": lambda m: run_phase(m, data, backbone, seed=args.seed),
        "head step": lambda m: run_phase(m, data, head, seed=args.seed),
    }
    rates = {k: images_per_second(fn, model, n, args.repeats) for k, fn in arms.items()}
    problem = mask_holds(model, data, imp, args.batch_size)
    if problem:
        raise SystemExit(f"gpu-check: the mask does not hold under autocast: {problem}")
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=512, help="random images per phase")
    p.add_argument("--image-size", type=int, default=224, help="pixels per side")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per phase (median)")
    p.add_argument("--seed", type=int, default=0, help="seed of the images and the weights")
    p.add_argument("--no-tests", action="store_true", help="time only, skip the CUDA tests")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_GPU.format(torch.__version__))
        return 0
    started = time.perf_counter()
    status = 0 if args.no_tests else run_cuda_tests()
    torch.manual_seed(args.seed)
    model, which = resnet18()
    print(
        f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}: {which} "
        f"({sum(p.numel() for p in model.parameters()):,} parameters), {args.images} "
        f"images {args.image_size}x{args.image_size}, batch {args.batch_size}, mixed precision, "
        f"channels_last, median of {args.repeats}"
    )
    for phase, (rate, peak) in bench(args, model).items():
        print(f"  {phase:28s} {rate:10.1f} images/s   peak {peak:8.0f} MiB")
    print("  mask holds under autocast: masked-out weights and the head unchanged, kept ones moved")
    print(f"gpu-check took {time.perf_counter() - started:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
