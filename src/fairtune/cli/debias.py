"""``methods`` and ``debias``: the methods' settings, and one method applied to a model."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from rich.table import Table

from fairtune.api import debias
from fairtune.auto import AUTO
from fairtune.cli.options import (
    Command,
    add_data_options,
    add_dataclass_options,
    add_image_reading_options,
    add_set_option,
    dataclass_values,
    load_data,
    load_model_here,
    parse_settings,
)
from fairtune.console import console
from fairtune.data import check_external
from fairtune.errors import FairtuneError
from fairtune.evaluation import evaluate_model
from fairtune.inputs import refuse_overwrite
from fairtune.methods import ALL, REGISTRY, method_class, method_names
from fairtune.search import CompareSettings
from fairtune.settings import origin_of


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
    table = Table(
        title=f"{args.name}: {cls.summary}",
        caption="set with --set KEY=VALUE. 'default from': the paper or code a default is "
        "taken from, or 'ours' and why. The grids are ours: wide enough that some point "
        "moves the model on a small external set as on a large one (METHODS.md)",
    )
    for col in ("setting", "default", "default from", "grid (compare --grid)", "meaning"):
        table.add_column(col)
    for f in fields(cls.config_class):
        grid = cls.grid.get(f.name)
        table.add_row(
            f.name,
            str(f.default),
            origin_of(f),
            "" if grid is None else str(grid),
            f.metadata.get("help", ""),
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
        choices=[*sorted(REGISTRY), AUTO],
        help="debiasing method (default: %(default)s); see 'fairtune methods'; 'auto' tries "
        "every method (and keeps the original model unless one is really better on held-out "
        "external data)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="directory for the debiased model, its mask "
        "(mask.safetensors) and debias.json (settings and history)",
    )
    add_set_option(p, "KEY=VALUE", "step1_lr=1e-3")
    p.add_argument("--seed", type=int, help="seed (default: the method's, 0)")
    auto = p.add_argument_group("with --method auto (as in compare)")
    auto.add_argument(
        "--methods",
        nargs="+",
        default=[ALL],
        help="the methods auto tries, or 'all' (default)",
    )
    add_dataclass_options(auto, CompareSettings, skip=AUTO_SKIPS)
    add_image_reading_options(p)


AUTO_SKIPS = ("methods", "seeds", "n_boot", "overrides", "grids")
"""CompareSettings fields that ``debias --method auto`` does not take as options."""


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The method's settings from ``--set`` and ``--seed``; for auto, the compare settings
    with ``--set METHOD.KEY=VALUE`` as per-method overrides."""
    if args.method == AUTO:
        values = dataclass_values(args, CompareSettings)
        values = {k: v for k, v in values.items() if k not in AUTO_SKIPS}
        if args.seed is not None:
            values["seeds"] = [args.seed]
        overrides = parse_settings(args.set)
        return {**values, "methods": method_names(args.methods), "overrides": overrides}
    by_method = parse_settings(args.set, args.method)
    others = sorted(set(by_method) - {args.method})
    if others:
        raise FairtuneError(f"--set names {others}, but this run debiases with {args.method}")
    settings = by_method.get(args.method, {})
    if args.seed is not None:
        settings["seed"] = args.seed
    return settings


def debias_command(args: argparse.Namespace) -> None:
    settings = _settings(args)
    if args.method == AUTO:  # the settings are checked before any data is read
        CompareSettings(**settings)
    else:
        method_class(args.method)(**settings)
    refuse_overwrite(args.out, [args.data, args.model])
    model, config = load_model_here(args.model)
    external, source = load_data(args, args.data, config, "external")
    check_external(external)
    result = debias(model, external, args.method, head=config.head, progress=True, **settings)
    before = evaluate_model(model, external)[0]
    after = evaluate_model(result.model, external)[0]
    config.history = [*config.history, *result.history]
    config.data = {**config.data, "debiased_with": args.method, "external": source}
    result.save(args.out, config)
    if args.method == AUTO:
        console.print(f"auto: {result.info['selection']['reason']}.")
    console.print(
        f"{args.method} took {result.wall_time_s:.1f} s. On the external set it was fitted on "
        f"({len(external)} rows, threshold 0.5; not a verdict): EOdds (mean) "
        f"{before['eodds_mean']:.3f} -> {after['eodds_mean']:.3f}, AUC {before['auc']:.3f} -> "
        f"{after['auc']:.3f}. Model written to {args.out}; judge it on held-out test data with "
        "'fairtune evaluate' or 'fairtune compare'."
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
        "Debias a model on an external set with one method, or with auto (the best on "
        "held-out data, or the original); write the new model.",
        _debias_args,
        debias_command,
    ),
)
