"""``study``: the studies the papers call for, from one model, over seeds."""

from __future__ import annotations

import argparse
from pathlib import Path

from fairtune.cli.options import (
    Command,
    add_comparison_inputs,
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
from fairtune.inputs import refuse_overwrite
from fairtune.studies import KINDS, StudySettings, run_study
from fairtune.studies.points import KIND_HELP
from fairtune.studies.tables import mask_table, summary_tables


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "kind",
        choices=KINDS,
        help="; ".join(f"{kind}: {text}" for kind, text in KIND_HELP.items()),
    )
    add_comparison_inputs(p)
    p.add_argument("--out", required=True, help="directory for study.json and study.png")
    add_dataclass_options(p, StudySettings, skip=("overrides",))
    add_set_option(p, "METHOD.KEY=VALUE", "bmft.impair_epochs=2")
    add_image_reading_options(p)


def test_names(specs: list[str]) -> list[str]:
    """A name per ``--test``: its file name (or built-in spec), numbered where names repeat."""
    names = [Path(spec).stem if Path(spec).suffix else spec for spec in specs]
    if len(set(names)) == len(names):
        return names
    return [f"{i + 1}:{name}" for i, name in enumerate(names)]


def study_command(args: argparse.Namespace) -> None:
    given = {"overrides": parse_settings(args.set)}
    settings = StudySettings(**{**dataclass_values(args, StudySettings), **given})
    refuse_overwrite(args.out, [args.model, args.external, *args.test])
    model, config = load_model_here(args.model)
    external, ext_source = load_data(args, args.external, config, "external")
    check_external(external)
    names = test_names(args.test)
    specs = dict(zip(names, args.test, strict=True))
    tests = {name: load_data(args, spec, config, "test")[0] for name, spec in specs.items()}
    study = run_study(args.kind, model, external, tests, settings, head=config.head)
    title = f"{args.kind} study: {Path(args.model).name}, external {Path(ext_source).name}"
    about = {"model": args.model, "external": ext_source, "tests": specs}
    study.write(args.out, title, about)
    mask = args.kind == "mask"
    for table in [mask_table(study.records)] if mask else summary_tables(study.summary()):
        console.print(table)
    print(
        f"study '{args.kind}': {len(study.records)} records in {args.out}/study.json, "
        f"figure {args.out}/study.png"
    )


COMMANDS = (
    Command(
        "study",
        "Run one of the studies the papers call for (K, steps, external-set size, learning "
        "rate, masks) over seeds: study.json and a figure.",
        _args,
        study_command,
    ),
)
