"""compare --jobs: the methods fitted in worker processes, with the results of one job.

The threads are pinned to one (``one_thread``): the workers then get
max(1, 1 // 2) = 1 thread each, as the parent has, so every float rounds alike and
the results must be equal to the last bit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import biased_data
from PIL import Image
from torch import nn

import fairtune.selection.search
from fairtune.backbones import SmallCNN
from fairtune.cli import main
from fairtune.data import FairData, holdout_split
from fairtune.errors import FairtuneError
from fairtune.images import Decoding, ImageSource
from fairtune.io import clean
from fairtune.models import MLP
from fairtune.selection.comparison import CompareSettings, compare
from fairtune.selection.search import SearchContext
from fairtune.selection.workers import WATCH_THREAD, SearchPool, SearchTask, longest_first

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = {
    "methods": ["llft", "bmft", "fairprune"],
    "seeds": [0, 1],
    "grid": True,
    "n_boot": 5,
    "grids": {
        "llft": {"lr": [1e-3, 1e-2], "min_steps": [0]},
        "bmft": {"impair_lr": [1e-3], "keep": [0.25, 0.5], "min_steps": [0]},
        "fairprune": {"beta": [0.5], "step": [0.005]},
    },
    "overrides": {"llft": {"epochs": 2}, "bmft": {"impair_epochs": 1, "repair_epochs": 1}},
}


def untimed(rows: list) -> object:
    """Rows as results.json holds them (NaN as null, equal to itself), without timings."""

    def drop(obj: object) -> object:
        if isinstance(obj, dict):
            return {k: drop(v) for k, v in obj.items() if "time" not in k}
        if isinstance(obj, list):
            return [drop(v) for v in obj]
        return obj

    return drop(clean([r.to_dict() for r in rows]))


@pytest.fixture(scope="module")
def pool():
    with SearchPool(2) as workers:
        yield workers


def test_two_jobs_give_the_rows_of_one(start_model, monkeypatch):
    external, test = biased_data(300, seed=2), biased_data(200, seed=3)
    one = compare(start_model, external, test, CompareSettings(**SETTINGS))

    def not_here(task: SearchTask) -> None:
        raise AssertionError(f"{task.what()} was fitted in the parent process")

    monkeypatch.setattr(SearchTask, "run", not_here)  # the spawned workers import their own
    two = compare(start_model, external, test, CompareSettings(**SETTINGS, jobs=2))
    assert untimed(two) == untimed(one)
    methods = [(r.method, r.seed) for r in two]
    per_seed = ["baseline", *SETTINGS["methods"], "threshold_optimizer", "selected"]
    assert methods == [(m, s) for s in (0, 1) for m in per_seed]
    bmft = two[2].selection.tried
    assert [t.setting for t in bmft] == [
        {"impair_lr": 1e-3, "keep": k, "min_steps": 0} for k in (0.25, 0.5)
    ]


def test_two_jobs_give_the_rows_of_one_with_halving_and_its_final_rung(start_model):
    """The final rung fits in the parent process, with a worker's threads."""
    external, test = biased_data(300, seed=2), biased_data(200, seed=3)
    overrides = {**SETTINGS["overrides"], "llft": {"epochs": 9}}
    settings = {**SETTINGS, "search": "halving", "training_rows": 8000, "overrides": overrides}
    one = compare(start_model, external, test, CompareSettings(**settings))
    two = compare(start_model, external, test, CompareSettings(**settings, jobs=2))
    assert untimed(two) == untimed(one)
    llft = [r.selection.tried for r in one if r.method == "llft"]
    # two settings cut short, then the better one trained in full by the final rung
    assert [len(tried) for tried in llft] == [3, 3]
    assert all(tried[2].setting in (tried[0].setting, tried[1].setting) for tried in llft)


def _context(model: nn.Module, data: FairData, settings: CompareSettings) -> SearchContext:
    fit, held = holdout_split(data, settings.holdout, seed=0)
    return SearchContext(model, fit, held, settings, 0, 0.5, None, False)


def _images(tmp_path: Path, n: int = 24) -> FairData:
    """n 8x8 PNG files on disk, read lazily; label and group alternate."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(paths[-1])
    labels = torch.tensor([i % 2 for i in range(n)], dtype=torch.float32)
    groups = torch.tensor([(i // 2) % 2 for i in range(n)])
    return FairData(ImageSource(paths, Decoding(8)), labels, groups, ["a", "b"])


def test_images_read_from_disk_are_fitted_in_a_worker_as_here(pool, tmp_path):
    torch.manual_seed(0)
    model = SmallCNN(in_channels=3, width=4, blocks=2)
    settings = CompareSettings(methods=["llft"], overrides={"llft": {"epochs": 1}}, n_boot=0)
    task = SearchTask("llft", _context(model, _images(tmp_path), settings), 0.5)
    assert not isinstance(task.context.fit.inputs, torch.Tensor)  # read lazily
    there = pool.run([task])[0].candidates[0]
    here = task.run().candidates[0]
    assert torch.equal(there.scores, here.scores)
    for name, value in here.result.model.state_dict().items():
        assert torch.equal(value, there.result.model.state_dict()[name]), name


class Fragile(nn.Module):
    """An MLP whose forward pass in training mode raises ``error``."""

    def __init__(self, error: type[Exception]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = MLP(6, (8,))
        self.error = error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise self.error("boom in training")
        return self.net(x)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FairtuneError, "boom in training"),  # bad input: its own line, as with one job
        (
            RuntimeError,
            "fitting fullft (seed 0) failed in a worker process: RuntimeError: boom in "
            "training (run with one job to see where)",
        ),
    ],
)
def test_a_workers_error_is_one_line_naming_its_task(pool, error, expected):
    settings = CompareSettings(methods=["fullft"], overrides={"fullft": {"epochs": 1}})
    task = SearchTask("fullft", _context(Fragile(error), biased_data(200, seed=1), settings), 0.5)
    with pytest.raises(FairtuneError) as caught:
        pool.run([task])
    assert str(caught.value) == expected
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_several_jobs_are_refused_under_torchrun(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(fairtune.selection.search, "world", lambda: (0, 2))
    CompareSettings(jobs=1)  # one job is what torchrun's processes run
    code = main(["demo", "--jobs", "2", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "under torchrun use one job" in err and not (tmp_path / "d").exists()


def test_the_searches_that_fit_the_most_settings_start_first(start_model):
    settings = CompareSettings(**{**SETTINGS, "methods": ["fairprune", "llft", "bmft", "swift"]})
    context = _context(start_model, biased_data(60, seed=0), settings)
    tasks = [SearchTask(m, context, 0.5) for m in settings.methods]
    # fairprune 1 point, llft 2 lrs x its 2 betas, bmft 2, swift its own grid of 12
    assert [settings.tries(m) for m in settings.methods] == [1, 4, 2, 12]
    assert longest_first(tasks) == [3, 1, 2, 0]
    assert CompareSettings(methods=["swift"]).tries("swift") == 1  # no grid: the defaults


def _process_table() -> dict[int, tuple[int, str]]:
    """Every process now: pid -> (parent pid, state), read from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid: int) -> set[int]:
    """The live (not zombie) processes below ``pid``."""
    table = _process_table()
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, state) in table.items():
            if ppid == parent and state != "Z" and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _threads(pid: int) -> list[str]:
    """The names of the threads of ``pid``."""
    names = []
    for task in Path(f"/proc/{pid}/task").glob("*/comm"):
        with contextlib.suppress(OSError):
            names.append(task.read_text().strip())
    return names


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_kill_9_of_the_parent_leaves_no_worker_behind(tmp_path):
    """compare --jobs 2 killed outright: its workers and the resource tracker end within 10 s."""
    model = tmp_path / "m"
    assert main(["train", "--data", "german", "--out", str(model), "--epochs", "1"]) == 0
    argv = [
        *(sys.executable, "-m", "fairtune", "compare", "--model", str(model)),
        *("--external", "german:external", "--test", "german:test", "--out", str(tmp_path / "o")),
        *("--methods", "llft", "bmft", "--jobs", "2", "--n-boot", "0"),
        *("--set", "llft.epochs=100000", "bmft.impair_epochs=100000"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env
    )
    try:
        deadline = time.monotonic() + 300
        workers: set[int] = set()
        while len(workers) < 2:  # both workers set up (their start imports torch: slow)
            assert parent.poll() is None, f"compare ended first (status {parent.returncode})"
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.5)
            workers = {p for p in _descendants(parent.pid) if WATCH_THREAD in _threads(p)}
        below = _descendants(parent.pid)
        assert any("resource_tracker" in _cmdline(p) for p in below), below
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in below) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {p: _cmdline(p) for p in below if _alive(p)}
        assert not left, f"still running 10 s after the parent was killed: {left}"
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(parent.pid, signal.SIGKILL)  # the session started above, and only it
        parent.wait(timeout=30)
