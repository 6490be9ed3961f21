"""What the benchmarks share: the skewed-Adult set-up, timing, options, tables, JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from fairtune.columns import Columns
from fairtune.data import FairData
from fairtune.datasets import load_adult, skew_groups
from fairtune.erm import TrainConfig, train_tabular
from fairtune.modelio import ModelConfig
from fairtune.splits import split_frame
from fairtune.tabular import TabularPreprocessor, frame_to_data

console = Console(width=120)
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Setup:
    """A baseline model trained on skewed Adult, and the external set to debias it with."""

    model: torch.nn.Module
    config: ModelConfig
    external: FairData
    train_rows: int
    train_seconds: float
    train_epoch_seconds: float


def skewed_adult(seed: int, config: TrainConfig) -> Setup:
    """Adult split 60/20/20 by (income, sex); 90% of the women earning >50K dropped from
    the training part; an MLP trained there (sex as a feature); the external part as data."""
    train, external, _ = split_frame(load_adult(), "income", ["sex"], (0.6, 0.2, 0.2), seed)
    train = skew_groups(train, "income", "sex", "Female", keep=0.1, seed=seed)
    start = time.perf_counter()
    model, model_config = train_tabular(
        train, Columns("income", ["sex"]), config, sensitive_as_feature=True
    )
    seconds = time.perf_counter() - start
    assert model_config.preprocessing is not None
    prep = TabularPreprocessor.from_dict(model_config.preprocessing)
    data = frame_to_data(external, "income", ["sex"], prep, group_names=model_config.group_names)
    epochs = sum(h["seconds"] for h in model_config.history)
    return Setup(model, model_config, data, len(train), seconds, epochs)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Wall times of ``repeats`` calls after one untimed warm-up call, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def median(values: list[float]) -> float:
    return statistics.median(values)


def parser(description: str, seed: int = 0) -> argparse.ArgumentParser:
    """Options every benchmark has: --seed, --threads, --json."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seed", type=int, default=seed, help="seed of split, skew and training")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1: steadier on a shared machine; 0: torch's default)",
    )
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write results here")
    return p


def set_threads(threads: int) -> int:
    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def environment(threads: int) -> dict[str, Any]:
    return {
        "date": date.today().isoformat(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch_threads": threads,
    }


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*(str(v) for v in row))
    return t


def recorded_args(args: argparse.Namespace) -> dict[str, Any]:
    """The command line as a results file records it: a path inside the repository relative
    to it, any other path by its name alone (no machine's folders in a committed file)."""
    root = RESULTS.parents[1]

    def public(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [public(v) for v in value]
        if not isinstance(value, (str, Path)):
            return value
        if not Path(value).is_absolute():
            return str(value)
        path = Path(value).resolve()
        return str(path.relative_to(root)) if path.is_relative_to(root) else path.name

    return {key: public(value) for key, value in vars(args).items()}


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"wrote {path}")
