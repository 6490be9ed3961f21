"""The ``fairtune`` command under torchrun: two CPU processes on the loopback interface.

Launched through torchrun's own entry point (``python -m torch.distributed.run``),
as a user would, and compared with a run in one process.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _helpers import CUDA, toy_table
from safetensors.torch import load_file

import fairtune
from fairtune.cli import main, options
from fairtune.io import MARKER

DATA = ["--label", "y", "--sensitive", "sex"]


def free_port() -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(cwd: Path, *argv: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node PROCESSES -m fairtune ARGV`` on loopback, bounded in time."""
    env = {**os.environ, "PYTHONPATH": str(Path(fairtune.__file__).parents[1])}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(processes),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        "-m",
        "fairtune",
        *argv,
    ]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("torchrun")
    df = toy_table(400, jobs=False)
    df[:200].to_csv(path / "train.csv", index=False)
    df[200:].to_csv(path / "external.csv", index=False)
    argv = ["train", "--data", str(path / "train.csv"), *DATA, "--out", str(path / "model")]
    assert main([*argv, "--epochs", "2"]) == 0
    return path


def test_debias_under_torchrun_matches_one_process(trained, monkeypatch):
    # 200 external rows in batches of 64: each process runs the model on its half of every
    # batch (the last one 8 rows), the losses see the whole batch.
    argv = ["debias", "--model", "model", "--data", "external.csv", *DATA, "--method", "bmft"]
    done = torchrun(trained, *argv, "--out", "two")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("bmft took") == 1  # only rank 0 prints
    assert {p.name for p in (trained / "two").iterdir()} == {
        "config.json",
        "model.safetensors",
        "mask.safetensors",
        "debias.json",
        MARKER,
    }
    assert not list(trained.glob(".two.*"))  # no temporary folder left by either process
    monkeypatch.chdir(trained)
    assert main([*argv, "--out", "one"]) == 0
    for file in ("mask.safetensors", "model.safetensors"):
        one, two = (load_file(trained / d / file) for d in ("one", "two"))
        assert one.keys() == two.keys()
        for name in one:
            if file == "mask.safetensors":
                assert torch.equal(two[name], one[name]), name
            else:
                torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-6)
    # The run moved the weights far more than the two runs differ.
    start = load_file(trained / "model" / "model.safetensors")
    assert any((one[n] - start[n]).abs().max() > 1e-2 for n in start if n in one)


def test_train_evaluate_and_compare_under_torchrun_match_one_process(trained, monkeypatch):
    # The other commands, each once in 2 processes and once in this one.
    commands = {
        "train": ["train", "--data", "train.csv", *DATA, "--epochs", "1", "--out"],
        "evaluate": ["evaluate", "--model", "model", "--data", "external.csv", "--json"],
        "compare": [
            *("compare", "--model", "model", "--external", "external.csv", "--test"),
            *("train.csv", *DATA, "--methods", "llft", "--n-boot", "0", "--out"),
        ],
    }
    monkeypatch.chdir(trained)
    for name, argv in commands.items():
        done = torchrun(trained, *argv, f"{name}-two")
        assert done.returncode == 0, done.stderr[-3000:]
        assert main([*argv, f"{name}-one"]) == 0
    one, two = (load_file(trained / d / "model.safetensors") for d in ("train-one", "train-two"))
    for n in one:
        torch.testing.assert_close(two[n], one[n], rtol=1e-5, atol=1e-6)
    one, two = (json.loads((trained / d).read_text()) for d in ("evaluate-one", "evaluate-two"))
    assert two == one  # every process scores every row: the same numbers
    one, two = (
        {r["method"]: r for r in json.loads((trained / d / "results.json").read_text())}
        for d in ("compare-one", "compare-two")
    )
    assert one.keys() == two.keys() == {"baseline", "llft", "threshold_optimizer", "selected"}
    for method in one:
        for key in ("auc", "eodds_mean"):
            a, b = one[method]["metrics_tuned"][key], two[method]["metrics_tuned"][key]
            assert a == pytest.approx(b, abs=1e-5, nan_ok=True), (method, key)


def test_the_cli_loads_models_on_the_process_device(trained, monkeypatch):
    monkeypatch.setattr(options, "process_device", lambda: torch.device("meta"))
    model, _ = options.load_model_here(str(trained / "model"))
    assert {p.device.type for p in model.parameters()} == {"meta"}


@CUDA
def test_cuda_debias_under_torchrun_on_the_gpu(trained, monkeypatch):
    # One process per GPU: this machine may have one. In mixed precision on the GPU, so
    # close to the CPU run, not equal.
    argv = ["debias", "--model", "model", "--data", "external.csv", *DATA, "--method", "bmft"]
    done = torchrun(trained, *argv, "--out", "gpu", processes=torch.cuda.device_count())
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.chdir(trained)
    assert main([*argv, "--out", "cpu"]) == 0
    gpu, cpu = (load_file(trained / d / "mask.safetensors") for d in ("gpu", "cpu"))
    agree = sum(int((gpu[n] == cpu[n]).sum()) for n in cpu)
    assert agree >= 0.99 * sum(t.numel() for t in cpu.values())
    gpu, cpu = (load_file(trained / d / "model.safetensors") for d in ("gpu", "cpu"))
    for name in cpu:
        torch.testing.assert_close(gpu[name], cpu[name], rtol=0, atol=1e-2)


@CUDA
def test_cuda_train_under_torchrun_on_the_gpu(trained):
    # Each process trains on its GPU; the saved weights load back on the CPU.
    argv = ["train", "--data", "train.csv", *DATA, "--epochs", "1", "--out", "gpu-model"]
    done = torchrun(trained, *argv, processes=torch.cuda.device_count())
    assert done.returncode == 0, done.stderr[-3000:]
    weights = load_file(trained / "gpu-model" / "model.safetensors")
    assert weights and {t.device.type for t in weights.values()} == {"cpu"}


def test_a_failure_in_every_process_is_reported_once(trained):
    argv = ["debias", "--model", "model", "--data", "missing.csv", *DATA, "--out", "bad"]
    done = torchrun(trained, *argv)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("fairtune debias:")]
    assert len(errors) == 1 and "error (process" in errors[0] and "missing.csv" in errors[0]
    assert not (trained / "bad").exists()
