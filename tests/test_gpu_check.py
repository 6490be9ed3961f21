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
