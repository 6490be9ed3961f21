"""Run the benchmarks with small defaults; results go to benchmarks/results/*.json.

The quality benchmark (tens of minutes) runs only when named: ``--only quality``.
"""

from __future__ import annotations

import argparse
import os

import cost
import images
import importance
import memory
import quality
from _common import RESULTS, console


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seed", type=int, default=0, help="seed passed to every benchmark")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument(
        "--only",
        nargs="*",
        default=["importance", "cost", "memory", "images"],
        choices=["importance", "cost", "memory", "images", "quality"],
        help="run only these (default: all but quality)",
    )
    args = p.parse_args(argv)
    common = ["--seed", str(args.seed), "--threads", str(args.threads)]
    runs = {
        "importance": (importance.main, ["--repeats", "3"]),
        "cost": (cost.main, ["--repeats", "1"]),
        "memory": (memory.main, []),
        "images": (images.main, ["--repeats", "3"]),
        "quality": (quality.main, []),
    }
    for name in args.only:
        main_, extra = runs[name]
        console.rule(name)
        out = os.path.relpath(RESULTS / f"{name}.json")  # no machine path in the results
        # quality takes a list of seeds: the one seed given here
        own = ["--seeds", *common[1:]] if name == "quality" else common
        main_([*own, *extra, "--json", out])


if __name__ == "__main__":
    main()
