"""Cost and agreement of three ways to get I_bias and I_pred (METHODS.md, importance).

(a) a plain two-pass loop as the authors' code does it: per batch one forward and
    backward for L_bias, another for L_pred, squared gradients averaged over batches;
(b) fisher_diagonal(mode="batch"): one forward per batch for both losses;
(c) fisher_diagonal(mode="per_sample"): squared per-sample gradients (vmap).

On the skewed-Adult model (MLP 64,32) and a wider one (256,256). Prints the
median time per sample, the ratios b/a and c/a, max |a - b|, and how the BMFT
masks built from (b) and (c) and a random mask of the same density overlap.
"""

from __future__ import annotations

import numpy as np
import torch
from _common import (
    Setup,
    console,
    environment,
    median,
    n_params,
    parser,
    recorded_args,
    set_threads,
    skewed_adult,
    table,
    timed,
    write_json,
)
from torch import Tensor, nn

from fairtune.data import FairData
from fairtune.erm import TrainConfig
from fairtune.finetune.importance import fisher_diagonal
from fairtune.finetune.losses import Objective
from fairtune.finetune.masks import hard_mask, random_mask, relative_importance
from fairtune.models import ModelSplit, evaluating, logits

Importance = dict[str, dict[str, Tensor]]
WAYS = {"a": "two-pass loop", "b": "fisher batch", "c": "fisher per_sample"}


def two_pass(
    model: nn.Module, data: FairData, objectives: dict[str, Objective], bs: int
) -> Importance:
    """(a): for each batch and each loss, its own forward and backward pass."""
    params = dict(model.named_parameters())
    sums = {k: {n: torch.zeros_like(p) for n, p in params.items()} for k in objectives}
    batches = 0
    with evaluating(model):
        for x, y, a in data.loader(bs):
            for k, objective in objectives.items():
                model.zero_grad(set_to_none=True)
                objective(logits(model, x), y, a).backward()
                for n, p in params.items():
                    if p.grad is not None:
                        sums[k][n] += p.grad.square()
            batches += 1
    model.zero_grad(set_to_none=True)
    return {k: {n: s / batches for n, s in v.items()} for k, v in sums.items()}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    try:
        from scipy.stats import spearmanr
    except ImportError:  # ranks by numpy (ties broken by order)
        rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
        return float(np.corrcoef(rx, ry)[0, 1])
    return float(spearmanr(x, y).statistic)


def bench(setup: Setup, repeats: int, batch_size: int, seed: int) -> dict:
    model, data = setup.model, setup.external
    objectives = {
        "bias": Objective.bias("eodds", data.n_groups),
        "pred": Objective.pred(n_groups=data.n_groups),
    }
    runs = {
        "a": lambda: two_pass(model, data, objectives, batch_size),
        "b": lambda: fisher_diagonal(model, data, objectives, batch_size=batch_size),
        "c": lambda: fisher_diagonal(
            model, data, objectives, mode="per_sample", batch_size=batch_size
        ),
    }
    times: dict[str, list[float]] = {}
    fisher: dict[str, Importance] = {}
    for way, run in runs.items():
        times[way], fisher[way] = timed(run, repeats)
    diff = max(
        float((fisher["a"][k][n] - fisher["b"][k][n]).abs().max())
        for k in objectives
        for n in fisher["a"][k]
    )
    scale = max(float(t.abs().max()) for v in fisher["a"].values() for t in v.values())

    backbone = ModelSplit.of(model).backbone_params()
    r = {w: relative_importance(fisher[w]["bias"], fisher[w]["pred"]) for w in ("b", "c")}
    masks = {w: hard_mask(r[w], backbone, keep=0.5) for w in ("b", "c")}
    shapes = {n: p.shape for n, p in model.named_parameters() if n in backbone}
    masks["random"] = random_mask(shapes, masks["b"].density(), seed=seed)
    flat = {w: torch.cat([r[w][n].flatten() for n in backbone]).double().numpy() for w in r}
    n = len(data)
    return {
        "hidden": list(setup.config.arch["hidden"]),
        "params": n_params(model),
        "external_rows": n,
        "batch_size": batch_size,
        "seconds": times,
        "median_s": {w: median(t) for w, t in times.items()},
        "us_per_sample": {w: 1e6 * median(t) / n for w, t in times.items()},
        "ratio_b_a": median(times["b"]) / median(times["a"]),
        "ratio_c_a": median(times["c"]) / median(times["a"]),
        "max_abs_diff_a_b": diff,
        "max_abs_a": scale,
        "mask_density": {w: m.density() for w, m in masks.items()},
        "jaccard_b_c": masks["b"].jaccard(masks["c"]),
        "jaccard_b_random": masks["b"].jaccard(masks["random"]),
        "spearman_R_b_c": spearman(flat["b"], flat["c"]),
    }


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    p.add_argument("--batch-size", type=int, default=64, help="rows per batch (authors: 64)")
    p.add_argument("--epochs", type=int, default=10, help="baseline training epochs")
    p.add_argument(
        "--wide", type=int, nargs="*", default=[256, 256], help="hidden sizes of the wider MLP"
    )
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    results = []
    for hidden in ((64, 32), tuple(args.wide)):
        if not hidden:
            continue
        config = TrainConfig(hidden=hidden, epochs=args.epochs, seed=args.seed)
        with console.status(f"training MLP {hidden}"):
            setup = skewed_adult(args.seed, config)
        with console.status(f"timing importance on MLP {hidden}"):
            results.append(bench(setup, args.repeats, args.batch_size, args.seed))
    rows = [
        [
            f"MLP {tuple(r['hidden'])}, {r['params']:,} params",
            f"({w}) {label}",
            f"{r['median_s'][w]:.3f}",
            f"{r['us_per_sample'][w]:.1f}",
            f"{r['median_s'][w] / r['median_s']['a']:.2f}",
        ]
        for r in results
        for w, label in WAYS.items()
    ]
    console.print(
        table(
            f"I_bias + I_pred over the external set ({results[0]['external_rows']} rows, "
            f"batch {args.batch_size}; median of {args.repeats}; {threads} thread(s))",
            ["model", "way", "median s", "µs / sample", "ratio to (a)"],
            rows,
        )
    )
    checks = [
        [
            f"MLP {tuple(r['hidden'])}",
            f"{r['max_abs_diff_a_b']:.2e} (max |I| {r['max_abs_a']:.2e})",
            f"{r['mask_density']['b']:.3f} / {r['mask_density']['c']:.3f}",
            f"{r['jaccard_b_c']:.3f}",
            f"{r['jaccard_b_random']:.3f}",
            f"{r['spearman_R_b_c']:.3f}",
        ]
        for r in results
    ]
    console.print(
        table(
            "Agreement: BMFT hard masks (keep 0.5 of backbone weights by R)",
            [
                "model",
                "max |a − b|",
                "density b / c",
                "Jaccard b–c",
                "Jaccard b–random",
                "Spearman R b–c",
            ],
            checks,
        )
    )
    payload = {
        "benchmark": "importance",
        "environment": environment(threads),
        "args": recorded_args(args),
        "results": results,
    }
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
