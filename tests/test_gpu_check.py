"""`make gpu-check` (benchmarks/gpu_check.py) where no GPU is visible: one line, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_gpu_check_skips_with_one_line_without_a_gpu():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hide any GPU, so the skip is what runs
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gpu-check: no CUDA GPU here")
    assert "skipped" in lines[0]
    assert "Traceback" not in done.stderr


def test_the_mask_check_passes_on_the_cpu_and_names_a_mask_that_leaks(monkeypatch):
    """gpu-check's mask check, run here on the CPU on a small CNN: it passes where the masked
    step keeps masked-out weights, and fails where the step ignores the mask."""
    import torch

    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import gpu_check

    from fairtune.backbones import SmallCNN
    from fairtune.data import FairData
    from fairtune.finetune.importance import fisher_diagonal
    from fairtune.finetune.losses import Objective

    torch.manual_seed(0)
    model, n = SmallCNN(width=4, blocks=2), 32
    data = FairData(
        torch.randn(n, 3, 16, 16),
        torch.randint(0, 2, (n,)).float(),
        torch.randint(0, 2, (n,)),
        ["a", "b"],
    )
    objectives = {"bias": Objective.bias("eodds", 2), "pred": Objective.pred(n_groups=2)}
    importance = fisher_diagonal(model, data, objectives, mode="batch", batch_size=8)
    assert gpu_check.mask_holds(model, data, importance, 8) == ""
    unmasked = gpu_check.Phase.__init__

    def ignore_mask(self, *args, **kwargs):
        unmasked(self, *args, **{**kwargs, "mask": None})

    monkeypatch.setattr(gpu_check.Phase, "__init__", ignore_mask)
    assert "masked-out entries" in gpu_check.mask_holds(model, data, importance, 8)
