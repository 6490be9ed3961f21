"""Importance shared across a grid: Fisher passes and wall time of the demo's comparison.

Runs the demo's comparison (skewed Adult, every method, ``--grid``, one seed) twice in
one process: first with every grid point computing its own relative importance (as
before the search shared it), then with the search's shared importances. Prints the
Fisher passes of each, their wall times and the ratio; the results must be identical.
"""

from __future__ import annotations

import functools
import time

from _common import console, environment, parser, set_threads, table, write_json

import fairtune.auto as auto
import fairtune.methods.base as base
from fairtune.comparison import CompareSettings
from fairtune.demo import DemoSettings, demo_rows
from fairtune.io import clean
from fairtune.search import SearchContext


def timed_demo(compare: CompareSettings, shared: bool) -> tuple[float, int, list]:
    """Wall time, Fisher passes and result rows of one run of the demo's comparison."""
    passes = []
    fisher = base.fisher_diagonal

    def counted(*args, **kwargs):
        passes.append(1)
        return fisher(*args, **kwargs)

    base.fisher_diagonal = counted
    auto.SearchContext = SearchContext if shared else functools.partial(
        SearchContext, importances=None
    )
    try:
        start = time.perf_counter()
        rows = demo_rows(DemoSettings(), compare)
        return time.perf_counter() - start, len(passes), rows
    finally:
        base.fisher_diagonal, auto.SearchContext = fisher, SearchContext


def _comparable(rows: list) -> object:
    """Rows as results.json holds them (NaN as null, which equals itself), without timings."""

    def untimed(obj: object) -> object:
        if isinstance(obj, dict):
            return {k: untimed(v) for k, v in obj.items() if "time" not in k}
        if isinstance(obj, list):
            return [untimed(v) for v in obj]
        return obj

    return untimed(clean([r.to_dict() for r in rows]))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--no-grid", action="store_true", help="each method's defaults only")
    args = p.parse_args()
    threads = set_threads(args.threads)
    compare = CompareSettings(seeds=[args.seed], grid=not args.no_grid, n_boot=0)
    before = timed_demo(compare, shared=False)
    after = timed_demo(compare, shared=True)
    same = _comparable(before[2]) == _comparable(after[2])
    console.print(
        table(
            "demo comparison, 1 seed" + ("" if args.no_grid else ", --grid"),
            ["", "Fisher passes", "wall time (s)"],
            [
                ["each point its own", before[1], f"{before[0]:.1f}"],
                ["shared", after[1], f"{after[0]:.1f}"],
                ["ratio", f"{before[1] / max(after[1], 1):.1f}x", f"{before[0] / after[0]:.2f}x"],
            ],
        )
    )
    console.print(f"results identical: {same}")
    write_json(
        args.json,
        {
            "environment": environment(threads),
            "fisher_passes": {"before": before[1], "after": after[1]},
            "wall_s": {"before": before[0], "after": after[0]},
            "identical": same,
        },
    )


if __name__ == "__main__":
    main()
