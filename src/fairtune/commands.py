"""The sub-commands' handlers: read the input, call the library, print and write the report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fairtune import report
from fairtune.baseline import TrainConfig, train_tabular
from fairtune.cli import add_data_options, add_dataclass_options, command, dataclass_values
from fairtune.data import split_frame
from fairtune.evaluation import evaluate_model
from fairtune.io import atomic_dir, refuse_inputs
from fairtune.loading import PARTS, data_for_model, read_table, resolve_columns
from fairtune.models import load_model, save_model

DATA_HELP = "CSV file or built-in set ('adult', 'german', 'adult:test', ...)"


def _split_args(p: argparse.ArgumentParser) -> None:
    add_data_options(p, DATA_HELP + "; a built-in name means the whole set here")
    p.add_argument("--out", required=True, help="directory for train.csv, external.csv, test.csv")
    p.add_argument(
        "--fractions",
        nargs=3,
        type=float,
        default=[0.6, 0.2, 0.2],
        metavar=("TRAIN", "EXT", "TEST"),
        help="shares of the three parts (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")


@command("split", "Write stratified train / external / test CSVs of a table.", _split_args)
def split_command(args: argparse.Namespace) -> None:
    refuse_inputs(args.out, [args.data])
    table = read_table(args.data, default_part="all")
    label, sensitive = resolve_columns(table, args.label, args.sensitive)
    parts = split_frame(table.frame, label, sensitive, tuple(args.fractions), args.seed)
    with atomic_dir(args.out) as tmp:
        for name, part in zip(PARTS, parts, strict=True):
            part.to_csv(tmp / f"{name}.csv", index=False)
    for name, part in zip(PARTS, parts, strict=True):
        report.console.print(
            f"{name:>8}: {len(part):>6} rows -> {Path(args.out) / (name + '.csv')}"
        )


def _train_args(p: argparse.ArgumentParser) -> None:
    add_data_options(p, DATA_HELP + "; a built-in name means its train part")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument(
        "--features",
        nargs="+",
        help="feature columns (default: all but label and sensitive columns)",
    )
    p.add_argument(
        "--sensitive-as-feature",
        action="store_true",
        help="also give the sensitive column(s) to the model as input",
    )
    add_dataclass_options(p, TrainConfig)


@command(
    "train", "Train a baseline classifier (ERM) on a table and save a model directory.", _train_args
)
def train_command(args: argparse.Namespace) -> None:
    refuse_inputs(args.out, [args.data])
    table = read_table(args.data, default_part="train", split_seed=args.split_seed)
    label, sensitive = resolve_columns(table, args.label, args.sensitive)
    config = TrainConfig(**dataclass_values(args, TrainConfig))
    start = time.perf_counter()
    model, model_config = train_tabular(
        table.frame,
        label,
        sensitive,
        config,
        features=args.features,
        sensitive_as_feature=args.sensitive_as_feature,
        positive=args.positive,
        progress=True,
    )
    model_config.data = {"source": table.source, "rows": len(table.frame), "train": vars(config)}
    save_model(args.out, model, model_config)
    report.console.print(
        f"trained on {len(table.frame)} rows of {table.source} in "
        f"{time.perf_counter() - start:.1f} s; model written to {args.out}"
    )


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    add_data_options(p, DATA_HELP + "; a built-in name means its test part")
    p.add_argument("--model", required=True, help="model directory (from train or debias)")
    p.add_argument("--threshold", type=float, help="decision threshold (default: the model's)")
    p.add_argument("--json", help="also write the metrics as JSON to this file")
    p.add_argument(
        "--n-boot",
        type=int,
        default=200,
        help="bootstrap resamples for 95%% intervals, 0 for none (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")


@command(
    "evaluate",
    "Print accuracy and fairness metrics of a model, overall and per group.",
    _evaluate_args,
)
def evaluate_command(args: argparse.Namespace) -> None:
    if args.json:
        refuse_inputs(args.json, [args.data, args.model])
    model, config = load_model(args.model)
    table = read_table(args.data, default_part="test", split_seed=args.split_seed)
    data = data_for_model(table, config, args.label, args.sensitive)
    threshold = config.threshold if args.threshold is None else args.threshold
    metrics, ci = evaluate_model(model, data, threshold, args.n_boot, args.seed)
    title = f"{args.model} on {table.source} ({len(data)} rows), threshold {threshold:.3f}"
    report.console.print(report.overall_table(metrics, ci, title))
    report.console.print(report.groups_table(metrics, data.attribute))
    if args.json:
        report.write_json(
            args.json, {"model": args.model, "data": table.source, "metrics": metrics, "ci": ci}
        )
        report.console.print(f"metrics written to {args.json}")
