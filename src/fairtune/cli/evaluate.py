"""``evaluate``: a model's accuracy and fairness metrics, overall and per group."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from fairtune.cli.options import (
    DATA_HELP,
    Command,
    add_data_options,
    add_image_reading_options,
    decision_threshold,
    load_data,
    load_model_here,
)
from fairtune.console import console
from fairtune.errors import FairtuneError
from fairtune.evaluation.evaluate import evaluate_model
from fairtune.inputs import refuse_overwrite
from fairtune.io import clean, write_json
from fairtune.reporting import report


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    add_data_options(p, DATA_HELP + "; a built-in name means its test part")
    p.add_argument("--model", required=True, help="model directory (from train or debias)")
    p.add_argument("--threshold", type=float, help="decision threshold (default: the model's)")
    p.add_argument(
        "--json",
        help="also write the metrics as JSON to this file; '-': to standard output "
        "(the tables then go to standard error)",
    )
    p.add_argument(
        "--n-boot",
        type=int,
        default=200,
        help="bootstrap resamples for 95%% intervals, 0 for none (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    add_image_reading_options(p)


def evaluate_command(args: argparse.Namespace) -> None:
    if args.n_boot < 0:
        raise FairtuneError(f"--n-boot must be 0 (no intervals) or more, not {args.n_boot}")
    decision_threshold(args.threshold)
    to_stdout = args.json == "-"
    if args.json and not to_stdout:
        refuse_overwrite(args.json, [args.data, args.model], False, args.image_root)
    out = Console(stderr=True, width=console.width) if to_stdout else console
    model, config = load_model_here(args.model)
    data, source = load_data(args, args.data, config, "test")
    threshold = config.threshold if args.threshold is None else args.threshold
    found = evaluate_model(model, data, threshold, args.n_boot, args.seed)
    metrics, ci = found.metrics, found.intervals
    title = f"{args.model} on {source} ({len(data)} rows), threshold {threshold:.3f}"
    out.print(report.overall_table(metrics, ci, title))
    out.print(report.groups_table(metrics, data.attribute))
    out.print(report.EXPLAIN)
    record = {
        "model": args.model,
        "data": source,
        "metrics": metrics.to_dict(),
        "ci": None if ci is None else ci.to_dict(),
    }
    if to_stdout:
        sys.stdout.write(json.dumps(clean(record), indent=2) + "\n")
    elif args.json:
        write_json(args.json, record)
        console.print(f"metrics written to {args.json}")


COMMANDS = (
    Command(
        "evaluate",
        "Print accuracy and fairness metrics of a model, overall and per group.",
        _evaluate_args,
        evaluate_command,
    ),
)
