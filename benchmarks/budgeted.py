"""The budgeted search against the grid: the same protocols, seeds and models, both searches
in one run.

For each of ``quality.py``'s protocols (or those named) and each search (``grid``:
every grid point in full; ``halving``: successive halving within ``--budget`` times
the original training's rows), ``compare`` runs every method and the ``selected``
row. Per search the table gives the rows the whole search passed as a multiple of
the original training's rows (summed over seeds, over the seeds' trainings), the wall
time and its ratio to the grid's in this run, and, for the selected model on test
data at its threshold t, the cut in EOdds (mean) against the baseline of the same
seed (as a % of the baseline's), the AUC change and the selection regret (mean over
seeds). Test intervals are off (``n_boot=0``): they are the same for both searches.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, console, environment, set_threads, table, write_json
from quality import BASELINE, PROTOCOLS

from fairtune.selection.comparison import CompareSettings
from fairtune.selection.results import SELECTED, ResultRow

SEARCHES = ("grid", "halving")


def figures(rows: list[ResultRow], wall_s: float) -> dict[str, Any]:
    """The selected row's figures over seeds, and what the search cost."""
    base = {r.seed: r for r in rows if r.method == BASELINE}
    chosen = sorted((r for r in rows if r.method == SELECTED), key=lambda r: r.seed)
    base_eodds = np.array([base[r.seed].metrics_tuned.eodds_mean for r in chosen])
    eodds = np.array([r.metrics_tuned.eodds_mean for r in chosen])
    auc = np.array([r.metrics_tuned.auc - base[r.seed].metrics_tuned.auc for r in chosen])
    costs = [r.selection.cost for r in chosen]
    rows_passed = sum(c.rows for c in costs)
    training = sum(c.rows / c.cost_vs_training for c in costs)
    return {
        "seeds": [r.seed for r in chosen],
        "cost_vs_training": rows_passed / training,
        "wall_s": wall_s,
        "cut": float(np.mean(base_eodds - eodds)),
        "cut_percent": float(100 * np.mean(base_eodds - eodds) / np.mean(base_eodds)),
        "auc_change": float(np.mean(auc)),
        "regret": float(np.nanmean([r.selection.regret for r in chosen])),
        "chosen": [r.selection.method for r in chosen],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--budget", type=float, default=CompareSettings().budget)
    p.add_argument("--searches", nargs="+", default=list(SEARCHES), choices=SEARCHES)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=str(RESULTS / "budgeted.json"))
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    results: dict[str, Any] = {}
    lines = []
    for name in args.protocols:
        title, run = PROTOCOLS[name]
        results[name] = {}
        for search in args.searches:
            settings = CompareSettings(
                seeds=args.seeds, grid=True, search=search, budget=args.budget, n_boot=0
            )
            start = time.perf_counter()
            rows = run(settings)
            results[name][search] = figures(rows, time.perf_counter() - start)
            console.print(f"{name} {search}: {results[name][search]}")
        grid_wall = results[name].get("grid", {}).get("wall_s", float("nan"))
        for search in args.searches:
            f = results[name][search]
            lines.append(
                [
                    name,
                    search,
                    f"{f['cost_vs_training']:.2f}x",
                    f"{f['wall_s']:.0f} s ({f['wall_s'] / grid_wall:.2f})",
                    f"{f['cut']:.3f} ({f['cut_percent']:.0f}%)",
                    f"{f['auc_change']:+.3f}",
                    f"{f['regret']:.3f}",
                    ", ".join(f["chosen"]),
                ]
            )
        console.print(f"{name}: {title}")
    columns = ["protocol", "search", "rows/training", "wall (vs grid)", "cut at t", "dAUC"]
    console.print(
        table(
            f"grid against halving (budget {args.budget:g}x), seeds {args.seeds}",
            [*columns, "regret", "chosen"],
            lines,
        )
    )
    payload = {"environment": environment(threads), "budget": args.budget, "results": results}
    write_json(Path(args.json), payload)
    return payload


if __name__ == "__main__":
    main()
