"""How far one threshold can go: the best group offset of the starting model's own scores, at
the threshold the comparison's rule chooses, against fairlearn's group thresholds.

For the skewed tabular protocols of ``quality.py`` (and each seed), on the same parts and
the same held-out split as ``compare``: the logits of the protected group are shifted by an
offset d (a grid over [-``--reach``, ``--reach``]); at each d the threshold t is chosen on
the held-out part by the comparison's rule (``positive_rate``: the starting model's
positive rate at 0.5 there), and the d with the lowest held-out EOdds (mean) at t is kept
(among the offsets that leave every group more than one decision there; "degen. t" counts
the seeds whose kept offset gives a group (almost) one decision on test).
That shifted model is what a model with the attribute among its inputs could become by
learning one weight: deterministic group thresholds at the start's positive rate. Its test
EOdds (mean) at t is printed beside the start's and beside ``ThresholdOptimizer``'s (fitted
on the fit part, as the reference row of ``compare``), which randomises between two
thresholds per group and picks its own positive rate. The ratio to the group thresholds is
the "within 2x" of the issue's bar, for the best any group offset of these scores reaches.
On ``adult_no_sex`` the model cannot read the attribute, so there the offset is a group
threshold that needs it at prediction: a bound, not something the model can learn.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, console, environment, set_threads, table, write_json
from quality import ADULT_NO_SEX, ADULT_RACE, TabularProtocol, tabular_parts

from fairtune.data import FairData
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.metrics import binary_metrics
from fairtune.evaluation.operating import degenerate
from fairtune.evaluation.thresholds import choose_threshold
from fairtune.models import predict_proba
from fairtune.selection.references import threshold_optimizer_row
from fairtune.selection.search import CompareSettings, fit_and_held

PROTOCOLS: dict[str, TabularProtocol] = {
    "adult_sex": replace(ADULT_NO_SEX, attribute_as_input=True),  # the demo's set-up
    "adult_race": ADULT_RACE,
    "adult_no_sex": ADULT_NO_SEX,
}


@dataclass(frozen=True)
class AtRate:
    """Scores judged at the threshold the positive-rate rule chooses: EOdds (mean), AUC,
    the threshold (a probability) and whether some group gets (almost) one decision."""

    eodds: float
    auc: float
    threshold: float
    degenerate: bool


def at_rate(data: FairData, logits: np.ndarray, rate: float, t: float | None = None) -> AtRate:
    """``logits`` on ``data`` at ``t``, or at the threshold the positive-rate rule chooses
    there for ``rate``."""
    scores = 1 / (1 + np.exp(-logits))
    y, g, names = data.labels.numpy(), data.groups.numpy(), data.group_names
    t = choose_threshold(y, scores, "positive_rate", rate) if t is None else t
    m = binary_metrics(y, scores, g, names, t)
    flat = degenerate(scores, g, names, t).flagged
    return AtRate(float(m["eodds_mean"]), float(m["auc"]), t, flat)


def one_seed(protocol: TabularProtocol, frame: Any, seed: int, offsets: np.ndarray) -> dict:
    """The start, the best group offset chosen on held-out (among those that leave no group
    with one decision), and the group thresholds, on test."""
    parts = tabular_parts(protocol, frame, seed)
    holdout = CompareSettings().holdout
    fit, held = fit_and_held(parts.external, holdout, seed)
    protected = parts.external.group_names.index(protocol.group)

    def logits(data: FairData) -> np.ndarray:
        p = np.clip(predict_proba(parts.model, data).numpy().astype(float), 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    held_logits, test_logits = logits(held), logits(parts.test)
    rate = float((held_logits >= 0).mean())  # the start's positive rate at 0.5 on held-out
    on_held = [
        at_rate(held, held_logits + d * (held.groups.numpy() == protected), rate)
        for d in offsets
    ]
    sound = [i for i, r in enumerate(on_held) if not r.degenerate]
    best = min(sound, key=lambda i: on_held[i].eodds)
    d = float(offsets[best])
    start = at_rate(held, held_logits, rate)
    moved = test_logits + d * (parts.test.groups.numpy() == protected)
    test_offset = at_rate(parts.test, moved, rate, on_held[best].threshold)
    test_start = at_rate(parts.test, test_logits, rate, start.threshold)
    reference = threshold_optimizer_row(parts.model, fit, parts.test, seed, 0, Criterion())
    return {
        "seed": seed,
        "offset": d,
        "held_offset": on_held[best].eodds,
        "degenerate_offsets": len(offsets) - len(sound),
        "start": test_start.eodds,
        "group_offset": test_offset.eodds,
        "group_offset_degenerate_on_test": test_offset.degenerate,
        "auc_start": test_start.auc,
        "auc_offset": test_offset.auc,
        "group_thresholds": reference.metrics_tuned.eodds_mean,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--reach", type=float, default=8.0, help="largest |offset| tried, in logits")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=str(RESULTS / "group_offset.json"))
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    offsets = np.linspace(-args.reach, args.reach, round(args.reach / 0.05) * 2 + 1)
    results: dict[str, Any] = {}
    lines = []
    for name in args.protocols:
        protocol = PROTOCOLS[name]
        frame = protocol.load()
        seeds = [one_seed(protocol, frame, seed, offsets) for seed in args.seeds]
        mean = {k: float(np.mean([s[k] for s in seeds])) for k in seeds[0] if k != "seed"}
        results[name] = {"seeds": seeds, "mean": mean}
        ratio = mean["group_offset"] / mean["group_thresholds"]
        chosen = ", ".join(f"{s['offset']:+.2f}" for s in seeds)
        lines.append(
            [
                name,
                f"{mean['start']:.3f}",
                f"{mean['group_offset']:.3f} ({chosen})",
                f"{sum(s['group_offset_degenerate_on_test'] for s in seeds)}/{len(seeds)}",
                f"{mean['auc_offset'] - mean['auc_start']:+.3f}",
                f"{mean['group_thresholds']:.3f}",
                f"{ratio:.1f}x",
            ]
        )
    columns = [
        "protocol",
        "start",
        "best group offset (d per seed)",
        "degen. t",
        "ΔAUC",
        "group thresholds",
        "offset / thresholds",
    ]
    title = f"test EOdds (mean) at t, mean of seeds {args.seeds}"
    console.print(table(title, columns, lines))
    payload = {"environment": environment(threads), "args": vars(args), "results": results}
    write_json(Path(args.json), payload)
    return payload


if __name__ == "__main__":
    main()
