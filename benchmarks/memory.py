"""Peak memory of debiasing (SWiFT, BMFT) against plain full fine-tuning (fullft).

A baseline MLP (default hidden 512,512, so that parameter-sized buffers show) is
trained on skewed Adult and saved with its external set. Each method then runs
in a fresh child process that loads them and runs ``fit`` once untimed on 512
rows (so that lazy imports and first-call set-up are not counted), then:

- resets the peak resident set size (``/proc/self/clear_refs``), runs ``fit``
  and reads the new peak (``VmHWM``): "peak − start" is the memory ``fit`` adds;
- runs ``fit`` again under tracemalloc: the peak of Python-side allocations
  (tensor storage is not traced).

Not ``getrusage(RUSAGE_CHILDREN).ru_maxrss``: on Linux a child's ru_maxrss
includes the parent's resident size at fork (exec keeps the old high-water
mark), so it reports the parent, not the method. Every phase runs
--epochs-per-step epochs (default 1): the peak is reached in the first epoch.
Ratios are to fullft.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import torch
from _common import (
    console,
    environment,
    n_params,
    parser,
    recorded_args,
    set_threads,
    skewed_adult,
    table,
    write_json,
)

from fairtune.data import FairData
from fairtune.erm import TrainConfig
from fairtune.methods import get_method
from fairtune.modelio import load_model, save_model

# name shown -> (registered method, settings, its epoch settings)
VARIANTS: dict[str, tuple[str, dict, tuple[str, ...]]] = {
    "fullft": ("fullft", {}, ("epochs",)),
    "bmft": ("bmft", {}, ("impair_epochs", "repair_epochs")),
    "swift": ("swift", {}, ("step1_epochs", "step2_epochs")),
    "bmft per_sample": ("bmft", {"importance": "per_sample"}, ("impair_epochs", "repair_epochs")),
    "swift per_sample": ("swift", {"importance": "per_sample"}, ("step1_epochs", "step2_epochs")),
}
KIB = 1024


def proc_status(key: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status (Linux only)")


def child(directory: Path, variant: str, seed: int, epochs: int) -> dict:
    """Run one method on the saved model and data; report this process's memory."""
    model, _ = load_model(directory / "model")
    saved = torch.load(directory / "external.pt", weights_only=True)
    data = FairData(saved["inputs"], saved["labels"], saved["groups"], saved["group_names"])
    name, settings, epoch_keys = VARIANTS[variant]
    settings = {**settings, **dict.fromkeys(epoch_keys, epochs)}
    get_method(name, seed=seed, **settings).fit(model, data.subset(range(512)))  # warm-up
    gc.collect()
    start = proc_status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := RSS now
    result = get_method(name, seed=seed, **settings).fit(model, data)
    peak = proc_status("VmHWM")
    gc.collect()
    tracemalloc.start()
    get_method(name, seed=seed, **settings).fit(model, data)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "rss_start_kib": start,
        "rss_peak_kib": peak,
        "extra_kib": peak - start,
        "tracemalloc_peak_bytes": traced,
        "wall_time_s": result.wall_time_s,
        "settings": settings,
    }


def spawn(directory: Path, variant: str, seed: int, threads: int, epochs: int) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", variant]
    command += ["--dir", str(directory), "--seed", str(seed), "--threads", str(threads)]
    command += ["--epochs-per-step", str(epochs)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child '{variant}' failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 512], help="MLP hidden sizes")
    p.add_argument("--epochs", type=int, default=3, help="baseline training epochs")
    p.add_argument("--epochs-per-step", type=int, default=1, help="epochs of every method phase")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.dir, args.child, args.seed, args.epochs_per_step)))
        return {}
    config = TrainConfig(hidden=tuple(args.hidden), epochs=args.epochs, seed=args.seed)
    with console.status(f"training MLP {tuple(args.hidden)}"):
        setup = skewed_adult(args.seed, config)
    d = setup.external
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        save_model(directory / "model", setup.model, setup.config)
        saved = {"inputs": d.inputs, "labels": d.labels, "groups": d.groups}
        torch.save({**saved, "group_names": list(d.group_names)}, directory / "external.pt")
        for variant in args.variants:
            with console.status(f"{variant} in a child process"):
                results[variant] = spawn(
                    directory, variant, args.seed, threads, args.epochs_per_step
                )
    base = results.get("fullft")

    def ratio(r: dict, key: str) -> str:
        return f"{r[key] / base[key]:.2f}" if base and base[key] else "–"

    rows = [
        [
            variant,
            f"{r['rss_start_kib'] / KIB:.1f}",
            f"{r['rss_peak_kib'] / KIB:.1f}",
            f"{r['extra_kib'] / KIB:.1f}",
            ratio(r, "extra_kib"),
            ratio(r, "rss_peak_kib"),
            f"{r['tracemalloc_peak_bytes'] / KIB**2:.2f}",
            ratio(r, "tracemalloc_peak_bytes"),
            f"{r['wall_time_s']:.1f}",
        ]
        for variant, r in results.items()
    ]
    console.print(
        table(
            f"Peak memory of fit, fresh process each (MLP {tuple(args.hidden)}, "
            f"{n_params(setup.model):,} params; external {len(d)} rows; "
            f"{args.epochs_per_step} epoch(s) per phase; {threads} thread(s); MiB)",
            [
                "method",
                "RSS at start",
                "RSS peak",
                "peak − start",
                "ratio",
                "peak ratio",
                "tracemalloc peak",
                "ratio",
                "fit s",
            ],
            rows,
        )
    )
    payload = {
        "benchmark": "memory",
        "environment": environment(threads),
        "args": recorded_args(args),
        "params": n_params(setup.model),
        "external_rows": len(d),
        "results": results,
    }
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
