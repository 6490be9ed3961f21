"""A grid that does not repeat work: shared importances and features, and --jobs.

Runs the demo's comparison (skewed Adult, every method, ``--grid``, one seed: what
``fairtune demo --seeds 0`` runs, the baseline's training included) three times in
one process:

- before: every grid point computes its own relative importance and every head-only
  phase its own backbone features (as before the search shared them), one job;
- shared: the search's shared importances and features, one job;
- after: shared, and ``--jobs`` worker processes (default 2).

Prints the Fisher passes and feature passes of the one-job runs (each worker keeps a
method's caches, so the workers run the same passes), the wall times, the ratios
before/after and shared/after (the speed-up of the jobs alone), and each method's
search time, which bounds what the jobs can gain: one method's search is one unit of
work. CPU times (this process and its workers) show what the workers cost beyond the
work itself, whatever else the machine runs. The results of the three runs must be
identical (NaN compared as null, timings left out); with ``--threads 1`` every process
computes with one thread.
"""

from __future__ import annotations

import functools
import resource
import time
from dataclasses import dataclass, replace

from _common import console, environment, parser, set_threads, table, write_json

import fairtune.finetune.training as training
import fairtune.methods.base as base
import fairtune.selection.auto as auto
from fairtune.demo import DemoSettings, demo_rows
from fairtune.io import clean
from fairtune.selection.comparison import CompareSettings
from fairtune.selection.records import SearchRecord
from fairtune.selection.results import SELECTED
from fairtune.selection.search import SearchContext


@dataclass
class DemoRun:
    """One run of the demo's comparison: wall and CPU time (this process and its workers),
    the passes counted in this process, the result rows."""

    wall_s: float
    cpu_s: float
    fisher_passes: int
    feature_passes: int
    rows: list


def timed_demo(compare: CompareSettings, shared: bool) -> DemoRun:
    """Run the demo's comparison, counting the Fisher and feature passes of this process."""
    passes = {"fisher": 0, "features": 0}
    fisher, features = base.fisher_diagonal, training._head_inputs

    def counting(kind, fn):
        def counted(*args, **kwargs):
            passes[kind] += 1
            return fn(*args, **kwargs)

        return counted

    base.fisher_diagonal = counting("fisher", fisher)
    training._head_inputs = counting("features", features)
    auto.SearchContext = (
        SearchContext
        if shared
        else functools.partial(SearchContext, importances=None, features=None)
    )
    try:
        start, cpu = time.perf_counter(), _cpu_seconds()
        rows = demo_rows(DemoSettings(), compare)
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        return DemoRun(wall, cpu, passes["fisher"], passes["features"], rows)
    finally:
        base.fisher_diagonal, training._head_inputs = fisher, features
        auto.SearchContext = SearchContext


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished child processes (the workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _comparable(rows: list) -> object:
    """Rows as results.json holds them (NaN as null, which equals itself), without timings."""

    def untimed(obj: object) -> object:
        if isinstance(obj, dict):
            return {k: untimed(v) for k, v in obj.items() if "time" not in k}
        if isinstance(obj, list):
            return [untimed(v) for v in obj]
        return obj

    return untimed(clean([r.to_dict() for r in rows]))


def search_seconds(rows: list) -> dict[str, float]:
    """Each method's search time (every setting tried), from the rows."""
    return {
        r.method: r.selection.search_time_s
        for r in rows
        if isinstance(r.selection, SearchRecord) and r.method != SELECTED
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--no-grid", action="store_true", help="each method's defaults only")
    p.add_argument("--jobs", type=int, default=2, help="worker processes of the last run")
    args = p.parse_args()
    threads = set_threads(args.threads)
    compare = CompareSettings(seeds=[args.seed], grid=not args.no_grid, n_boot=0)
    before = timed_demo(compare, shared=False)
    shared = timed_demo(compare, shared=True)
    after = timed_demo(replace(compare, jobs=args.jobs), shared=True)
    same = _comparable(before.rows) == _comparable(shared.rows) == _comparable(after.rows)
    jobs = f"shared, --jobs {args.jobs}"
    console.print(
        table(
            "demo comparison, 1 seed" + ("" if args.no_grid else ", --grid"),
            ["", "Fisher passes", "feature passes", "wall time (s)", "CPU time (s)"],
            [
                ["before: each point its own, --jobs 1", before.fisher_passes,
                 before.feature_passes, f"{before.wall_s:.1f}", f"{before.cpu_s:.1f}"],
                ["shared, --jobs 1", shared.fisher_passes, shared.feature_passes,
                 f"{shared.wall_s:.1f}", f"{shared.cpu_s:.1f}"],
                [f"after: {jobs}", "(in workers)", "(in workers)", f"{after.wall_s:.1f}",
                 f"{after.cpu_s:.1f}"],
                ["ratio before / after", "", "", f"{before.wall_s / after.wall_s:.2f}x",
                 f"{before.cpu_s / after.cpu_s:.2f}x"],
                ["ratio shared / after (the jobs alone)", "", "",
                 f"{shared.wall_s / after.wall_s:.2f}x", f"{shared.cpu_s / after.cpu_s:.2f}x"],
            ],
        )
    )  # fmt: skip
    seconds = search_seconds(shared.rows)
    total, longest = sum(seconds.values()), max(seconds.values())
    bound = total / max(total / args.jobs, longest)
    console.print(
        table(
            "search time per method (shared, --jobs 1)",
            ["method", "seconds"],
            [[m, f"{s:.1f}"] for m, s in seconds.items()]
            + [["all", f"{total:.1f}"], [f"bound on their speed-up with {args.jobs} jobs",
                                         f"{bound:.2f}x"]],
        )
    )  # fmt: skip
    console.print(f"results identical: {same}")
    write_json(
        args.json,
        {
            "environment": environment(threads),
            "jobs": args.jobs,
            "fisher_passes": {"before": before.fisher_passes, "shared": shared.fisher_passes},
            "feature_passes": {"before": before.feature_passes, "shared": shared.feature_passes},
            "wall_s": {"before": before.wall_s, "shared": shared.wall_s, "after": after.wall_s},
            "cpu_s": {"before": before.cpu_s, "shared": shared.cpu_s, "after": after.cpu_s},
            "search_s": seconds,
            "identical": same,
        },
    )


if __name__ == "__main__":
    main()
