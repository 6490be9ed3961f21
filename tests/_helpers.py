"""Data and checks several test files share."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fairtune.data import FairData
from fairtune.finetune.masks import Mask

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
"""Marks a test that needs a CUDA GPU (skipped without one)."""


def random_data(
    n: int, seed: int, *, dtype: torch.dtype = torch.float32, global_rng: bool = False
) -> FairData:
    """n rows of 5 normal features, random labels and two random groups 'a' and 'b'.

    Drawn from a generator seeded with ``seed``; with ``global_rng`` torch's global
    generator is seeded and drawn from instead (the same numbers, but later draws
    from it in the test then continue from where this data left it).
    """
    if global_rng:
        torch.manual_seed(seed)
        g = None
    else:
        g = torch.Generator().manual_seed(seed)
    return FairData(
        torch.randn(n, 5, generator=g, dtype=dtype),
        torch.randint(0, 2, (n,), generator=g).float(),
        torch.randint(0, 2, (n,), generator=g),
        ["a", "b"],
    )


def biased_data(
    n: int, seed: int = 0, skew: float = 1.0, noise: tuple[float, ...] = (0.5, 0.5)
) -> FairData:
    """6 features; the label follows x0, x1 and the group; x5 encodes the group.

    ``noise`` is the label noise per group (its length is the number of groups,
    named g0, g1, ...); ``skew`` keeps that share of group 1's positives (a skewed
    training set).
    """
    g = torch.Generator().manual_seed(seed)
    n_groups = len(noise)
    x = torch.randn(n, 6, generator=g)
    a = torch.randint(0, n_groups, (n,), generator=g)
    sigma = torch.tensor(noise)[a]
    logit = 1.5 * x[:, 0] + 0.5 * x[:, 1] + 0.5 * (a == 0).float() - 0.3
    y = (logit + sigma * torch.randn(n, generator=g) > 0).float()
    x[:, 5] = 2 * a.float() / max(1, n_groups - 1) - 1
    keep = ~((a == 1) & (y == 1) & (torch.rand(n, generator=g) > skew))
    return FairData(x[keep], y[keep], a[keep], [f"g{i}" for i in range(n_groups)])


def toy_table(n: int, jobs: bool = True) -> pd.DataFrame:
    """A small table for the CLI: numeric x1, x2, (a categorical job,) sex and a label y
    that follows x1 and favours Male; seeded."""
    rng = np.random.default_rng(0)
    columns = {"x1": rng.normal(size=n), "x2": rng.normal(size=n)}
    if jobs:
        columns["job"] = rng.choice(["a", "b", "c"], n)
    columns["sex"] = rng.choice(["Female", "Male"], n)
    df = pd.DataFrame(columns)
    df["y"] = ((df.x1 + 0.8 * (df.sex == "Male") + rng.normal(0, 0.5, n)) > 0.4).astype(int)
    return df


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


def calls_counted(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[int]:
    """Wrap ``owner.name`` so that every call appends 1 to the list returned (how many
    times a pass ran), the call itself unchanged."""
    calls: list[int] = []
    wrapped = getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return wrapped(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def compare_argv(workdir: Path, out: Path, *options: str) -> list[str]:
    """``fairtune compare`` on the ``workdir`` fixture's model and parts, writing to ``out``,
    with ``options`` after."""
    return [
        "compare",
        "--model",
        str(workdir / "model"),
        "--external",
        str(workdir / "parts" / "external.csv"),
        "--test",
        str(workdir / "parts" / "test.csv"),
        "--out",
        str(out),
        *options,
    ]

FAST = {
    "bias_gd": {"epochs": 2},
    "bmft": {"impair_epochs": 2, "repair_epochs": 2},
    "fairprune": {"max_rounds": 2},
    "fullft": {"epochs": 2},
    "llft": {"epochs": 2},
    "random_mask": {"impair_epochs": 2, "repair_epochs": 2},
    "swift": {"step1_epochs": 2, "step2_epochs": 2},
    "constrained": {"epochs": 2},
    "distill": {"epochs": 2},
}
"""Few epochs per method, so that a test over every method runs in seconds; a method not
listed runs its defaults."""
