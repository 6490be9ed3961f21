"""``methods`` and ``debias``: the methods' settings, and one method applied to a model."""

from __future__ import annotations

import argparse
from dataclasses import fields

from rich.table import Table

from fairtune.api import debias
from fairtune.architectures import load_model
from fairtune.cli.options import (
    Command,
    add_data_options,
    add_image_reading_options,
    load_data,
    parse_settings,
)
from fairtune.console import console
from fairtune.data import check_external
from fairtune.errors import FairtuneError
from fairtune.evaluation import evaluate_model
from fairtune.io import refuse_inputs
from fairtune.methods import REGISTRY, method_class


def _methods_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="a method, to list its settings")


def methods_command(args: argparse.Namespace) -> None:
    if args.name is None:
        table = Table(title="debiasing methods ('fairtune methods NAME' for settings)")
        table.add_column("name")
        table.add_column("what it does")
        for name, cls in sorted(REGISTRY.items()):
            table.add_row(name, cls.summary)
        console.print(table)
        return
    cls = method_class(args.name)
    table = Table(title=f"{args.name}: {cls.summary}", caption="set with --set KEY=VALUE")
    for col in ("setting", "default", "grid (compare --grid)", "meaning"):
        table.add_column(col)
    for f in fields(cls.config_class):
        grid = cls.grid.get(f.name)
        table.add_row(
            f.name, str(f.default), "" if grid is None else str(grid), f.metadata.get("help", "")
        )
    console.print(table)


def _debias_args(p: argparse.ArgumentParser) -> None:
    add_data_options(
        p, "external set: CSV or built-in set (a built-in name means its external part)"
    )
    p.add_argument("--model", required=True, help="model directory to debias")
    p.add_argument(
        "--method",
        default="swift",
        choices=sorted(REGISTRY),
        help="debiasing method (default: %(default)s); see 'fairtune methods'",
    )
    p.add_argument(
        "--out",
        required=True,
        help="directory for the debiased model, its mask "
        "(mask.safetensors) and debias.json (settings and history)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change a setting of the method, e.g. --set step1_lr=1e-3 (repeatable)",
    )
    p.add_argument("--seed", type=int, help="seed (default: the method's, 0)")
    add_image_reading_options(p)


def debias_command(args: argparse.Namespace) -> None:
    by_method = parse_settings(args.set, args.method)
    others = sorted(set(by_method) - {args.method})
    if others:
        raise FairtuneError(f"--set names {others}, but this run debiases with {args.method}")
    settings = by_method.get(args.method, {})
    if args.seed is not None:
        settings["seed"] = args.seed
    method_class(args.method)(**settings)  # the settings are checked before any data is read
    refuse_inputs(args.out, [args.data, args.model])
    model, config = load_model(args.model)
    external, source = load_data(args, args.data, config, "external")
    check_external(external)
    result = debias(model, external, args.method, head=config.head, progress=True, **settings)
    before = evaluate_model(model, external)[0]
    after = evaluate_model(result.model, external)[0]
    config.history = [*config.history, *result.history]
    config.data = {**config.data, "debiased_with": args.method, "external": source}
    result.save(args.out, config)
    console.print(
        f"{args.method} took {result.wall_time_s:.1f} s. On the external set "
        f"({len(external)} rows, threshold 0.5): EOdds (mean) {before['eodds_mean']:.3f} -> "
        f"{after['eodds_mean']:.3f}, AUC {before['auc']:.3f} -> {after['auc']:.3f}. "
        f"Model written to {args.out}; evaluate it on test data with 'fairtune evaluate'."
    )


COMMANDS = (
    Command(
        "methods",
        "List the debiasing methods, or one method's settings and defaults.",
        _methods_args,
        methods_command,
    ),
    Command(
        "debias",
        "Debias a model with one method on an external set; write the new model.",
        _debias_args,
        debias_command,
    ),
)
