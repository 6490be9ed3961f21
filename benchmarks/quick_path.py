"""The quick path on a user's own BatchNorm MLP: one method at its defaults, then ``auto``.

A user's model (an MLP with BatchNorm, not fairtune's) is trained on the demo's
skewed Adult training split; 400 rows of the external split are all the user has.
``fairtune.debias`` runs each named method at its defaults, and ``method="auto"``
(budgeted search, the original's training rows as the unit). Per run the table
gives the held-out evidence the result carries (EOdds (mean) at t and AUC, before
-> after, on the 30% of the 400 rows it never trained on), which warning was raised
(``WorseModelWarning``, or ``WeakEvidenceWarning`` when those rows cannot rule out an AUC
fall beyond the tolerance), and the test split's EOdds (mean) at t and AUC
before and after (t chosen on the 400 external rows by compare's default rule): the
question is whether a result that got worse on test said so.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import RESULTS, console, environment, recorded_args, set_threads, table, write_json
from torch import nn

import fairtune
from fairtune.datasets import load_adult, skew_groups
from fairtune.erm import TrainConfig, fit_erm
from fairtune.evaluation.evaluate import evaluate_scores
from fairtune.evaluation.evidence import WeakEvidenceWarning, WorseModelWarning
from fairtune.evaluation.thresholds import choose_threshold
from fairtune.models import predict_proba
from fairtune.splits import split_frame
from fairtune.tabular import TabularPreprocessor, feature_columns, frame_to_data

LABEL, ATTRIBUTE, GROUP = "income", "sex", "Female"
SAID = (WorseModelWarning, WeakEvidenceWarning)
"""The warnings a result that may be worse gives: worse on held-out rows, or too few rows."""


class UsersMLP(nn.Module):
    """A user's own tabular model: Linear-BatchNorm-ReLU blocks and a one-logit head."""

    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_in, 64), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def on_test(model: nn.Module, held: Any, test: Any, rate: float) -> dict[str, float]:
    """EOdds (mean) at t and AUC on test; t chosen on ``held`` (the user's external rows) by
    compare's default rule (the starting model's positive rate ``rate`` at 0.5)."""
    y = held.labels.numpy().astype(np.int64)
    t = choose_threshold(y, predict_proba(model, held).numpy(), "positive_rate", rate)
    m = evaluate_scores(test, predict_proba(model, test), t).metrics
    return {"eodds_t": m.eodds_mean, "auc": m.auc}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["swift", "bmft", "llft", "auto"])
    p.add_argument("--external-rows", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=str(RESULTS / "quick_path.json"))
    args = p.parse_args(argv)
    set_threads(args.threads)
    frame = load_adult()
    train, external, test = split_frame(frame, LABEL, [ATTRIBUTE], (0.6, 0.2, 0.2), args.seed)
    train = skew_groups(train, LABEL, ATTRIBUTE, GROUP, 0.1, args.seed)
    external = external.sample(args.external_rows, random_state=args.seed)
    prep = TabularPreprocessor.fit(train, feature_columns(train, LABEL, [ATTRIBUTE], None, True))
    names = sorted(train[ATTRIBUTE].unique())
    train_d, ext_d, test_d = (
        frame_to_data(part, LABEL, [ATTRIBUTE], prep, names) for part in (train, external, test)
    )
    torch.manual_seed(args.seed)
    model = UsersMLP(train_d.inputs.shape[1])
    history = fit_erm(model, train_d, TrainConfig(epochs=10, seed=args.seed))
    rows = sum(r.get("rows", 0) for r in history if r.get("phase") == "train")
    rate = float((predict_proba(model, ext_d) >= 0.5).float().mean())
    start = on_test(model, ext_d, test_d, rate)
    out: list[dict[str, Any]] = []
    for method in args.methods:
        extra = {"training_rows": rows} if method == "auto" else {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fairtune.debias(model, ext_d, method=method, **extra)
        evidence = result.evidence
        after = on_test(result.model, ext_d, test_d, rate)
        out.append(
            {
                "method": method,
                "held_out": evidence.text() if evidence else None,
                "warned": next(
                    (w.category.__name__ for w in caught if issubclass(w.category, SAID)), None
                ),
                "test_before": start,
                "test_after": after,
                "chosen": result.config.get("selected") if method == "auto" else None,
            }
        )
    columns = ("method", "warned", "test EOdds t", "test AUC", "held-out evidence")
    lines = [
        (
            r["method"] + (f" ({r['chosen']})" if r["chosen"] else ""),
            r["warned"] or "no",
            f"{r['test_before']['eodds_t']:.3f} -> {r['test_after']['eodds_t']:.3f}",
            f"{r['test_before']['auc']:.3f} -> {r['test_after']['auc']:.3f}",
            r["held_out"] or "",
        )
        for r in out
    ]
    title = f"a user's BatchNorm MLP, {args.external_rows} external rows"
    console.print(table(title, list(columns), [list(line) for line in lines]))
    payload = {"environment": environment(args.threads), "args": recorded_args(args), "runs": out}
    write_json(Path(args.json), payload)
    return {"runs": out}


if __name__ == "__main__":
    main()
