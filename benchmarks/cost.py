"""Debiasing cost against training cost, for every registered method at its defaults.

The papers claim that debiasing costs about 10% of the original training. Here
the baseline MLP is trained on the skewed-Adult training part with
TrainConfig() (20 epochs; "the original training"), and each method debiases it
with the external part; the ratio is the method's wall time (DebiasResult.
wall_time_s) to the baseline's training wall time (train_tabular), both medians
over --repeats.

Beside it, the papers' own measure: the rows the method passed over (epochs, or
FairPrune's rounds, x external rows) against the rows of the original training
(training epochs x training rows).
"""

from __future__ import annotations

from _common import (
    console,
    environment,
    median,
    n_params,
    parser,
    recorded_args,
    set_threads,
    skewed_adult,
    table,
    write_json,
)

from fairtune.erm import TrainConfig
from fairtune.methods import REGISTRY, get_method


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="baseline trainings and debias runs per method (medians)",
    )
    p.add_argument(
        "--methods", nargs="*", default=sorted(REGISTRY), help="methods (default: all registered)"
    )
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    train_times = []
    for _ in range(args.repeats):
        with console.status("training the baseline (TrainConfig defaults)"):
            setup = skewed_adult(args.seed, TrainConfig(seed=args.seed))
        train_times.append(setup.train_seconds)
    train_s = median(train_times)
    train_passes = len(setup.config.history) * setup.train_rows
    results = {}
    for name in args.methods:
        with console.status(f"debiasing with {name}"):
            fits = [
                get_method(name, seed=args.seed).fit(setup.model, setup.external)
                for _ in range(args.repeats)
            ]
        times = [f.wall_time_s for f in fits]
        results[name] = {
            "seconds": times,
            "median_s": median(times),
            "ratio": median(times) / train_s,
            "epochs_run": len(fits[-1].history),
            "epoch_ratio": len(fits[-1].history) * len(setup.external) / train_passes,
            "info": {k: v for k, v in fits[-1].info.items() if isinstance(v, int | float | str)},
        }
    rows = [
        ["baseline training", f"{train_s:.2f}", "100.0%", len(setup.config.history), "100.0%", ""]
    ]
    rows += [
        [
            n,
            f"{r['median_s']:.2f}",
            f"{100 * r['ratio']:.1f}%",
            r["epochs_run"],
            f"{100 * r['epoch_ratio']:.1f}%",
            ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["info"].items()
            ),
        ]
        for n, r in results.items()
    ]
    console.print(
        table(
            f"Debias wall time / training wall time (MLP {tuple(setup.config.arch['hidden'])}, "
            f"{n_params(setup.model):,} params; train {setup.train_rows} rows, external "
            f"{len(setup.external)} rows; {threads} thread(s))",
            [
                "method (defaults)",
                "seconds",
                "% of training",
                "epochs (or rounds) run",
                "rows passed, % of training",
                "info",
            ],
            rows,
        )
    )
    payload = {
        "benchmark": "cost",
        "environment": environment(threads),
        "args": recorded_args(args),
        "train_rows": setup.train_rows,
        "external_rows": len(setup.external),
        "train_seconds": train_times,
        "train_median_s": train_s,
        "train_epoch_seconds": setup.train_epoch_seconds,
        "methods": results,
    }
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
