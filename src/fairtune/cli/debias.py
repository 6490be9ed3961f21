"""``methods`` and ``debias``: the methods' settings, and one method applied to a model."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from rich.table import Table

from fairtune.api import debias
from fairtune.cli.options import (
    Command,
    add_data_options,
    add_dataclass_options,
    add_image_reading_options,
    add_objective_option,
    add_set_option,
    dataclass_values,
    load_data,
    load_model_here,
    parse_settings,
)
from fairtune.console import console
from fairtune.data import check_external
from fairtune.errors import FairtuneError
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.evidence import EvidenceRule
from fairtune.inputs import refuse_overwrite
from fairtune.methods import ALL, REGISTRY, method_class, method_names
from fairtune.selection.auto import AUTO, AUTO_SEARCH
from fairtune.selection.halving import original_training_rows
from fairtune.selection.records import ChoiceRecord
from fairtune.selection.search import CompareSettings
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
    add_objective_option(p, "; sets the method's bias loss unless --set bias_kind=... does")
    auto = p.add_argument_group(
        "held-out evidence (--holdout, --auc-tolerance, --threshold-rule), and --method auto "
        "(as in compare; its search defaults to halving)"
    )
    auto.add_argument(
        "--methods",
        nargs="+",
        default=[ALL],
        help="the methods auto tries, or 'all' (default)",
    )
    add_dataclass_options(auto, CompareSettings, skip=AUTO_SKIPS)
    p.set_defaults(search=AUTO_SEARCH)
    add_image_reading_options(p)


AUTO_SKIPS = ("methods", "seeds", "objective", "n_boot", "overrides", "grids")
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
        chosen = {"methods": method_names(args.methods), "objective": args.objective}
        return {**values, **chosen, "overrides": overrides}
    by_method = parse_settings(args.set, args.method)
    others = sorted(set(by_method) - {args.method})
    if others:
        raise FairtuneError(f"--set names {others}, but this run debiases with {args.method}")
    kind = method_class(args.method).bias_kind_for(args.objective)
    settings = {"bias_kind": kind, **by_method.get(args.method, {})}
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
    if args.method == AUTO and not settings.get("training_rows"):
        settings["training_rows"] = original_training_rows(config.history)
    criterion = Criterion(args.objective, args.auc_tolerance, args.threshold_rule)
    extra = {} if args.method == AUTO else {"evidence": EvidenceRule(args.holdout, criterion)}
    result = debias(
        model, external, args.method, head=config.head, progress=True, **extra, **settings
    )
    config.history = [*config.history, *result.history]
    config.data = {**config.data, "debiased_with": args.method, "external": source}
    result.save(args.out, config)
    if args.method == AUTO:
        console.print(f"auto ({result.info['selection']['rule']}): {_auto_line(result.info)}")
    else:
        for note in method_class(args.method).notes(result.info):
            console.print(f"{args.method}: {note}.")
    console.print(
        f"{args.method} took {result.wall_time_s:.1f} s; {result.evidence.text()}. Model written "
        f"to {args.out}; judge it on test data with 'fairtune evaluate' or 'fairtune compare'."
    )


def _auto_line(info: dict[str, Any]) -> str:
    """What auto chose (or kept) and what its search cost, in one sentence."""
    record = ChoiceRecord.from_dict(info["selection"])
    spent = record.cost.text() if record.cost is not None else "no search cost recorded"
    kept = "; the original model is written, marked as kept" if info["kept_original"] else ""
    return f"{record.reason}; {spent}{kept}."


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
