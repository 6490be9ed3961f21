"""``compare`` and ``demo``: every method from one model, side by side."""

from __future__ import annotations

import argparse
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fairtune.architectures import (
    architectures_text,
    costly_architectures,
    resolve_architecture,
)
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
from fairtune.cli.study import test_names
from fairtune.console import console
from fairtune.data import FairData, check_external
from fairtune.demo import (
    DemoSettings,
    ImageDemoSettings,
    default_image_arch,
    learning_rate_grids,
    run_demo,
    run_image_demo,
)
from fairtune.errors import FairtuneError
from fairtune.inputs import refuse_overwrite
from fairtune.methods import ALL, method_names
from fairtune.reporting import report
from fairtune.selection.auto import AUTO_SEARCH
from fairtune.selection.comparison import CompareSettings, compare
from fairtune.selection.halving import original_training_rows
from fairtune.selection.handback import SavedModels


def _compare_args(p: argparse.ArgumentParser) -> None:
    add_comparison_inputs(p)
    p.add_argument(
        "--methods",
        nargs="+",
        default=["all"],
        help=f"methods to run, or 'all' (default): {', '.join(method_names(ALL))}",
    )
    p.add_argument(
        "--out",
        required=True,
        help="directory for results.json, results.csv, settings.json and the plot",
    )
    add_compare_options(p)
    add_set_option(p, "METHOD.KEY=VALUE", "bmft.keep=0.25")
    p.add_argument(
        "--save-models",
        metavar="DIR",
        help="write each seed's selected model to DIR/SEED/selected/ (loadable by load_model, "
        "usable by 'fairtune predict'; the starting model, marked as kept, when nothing was "
        "better on held-out data), all at the end or none",
    )
    p.add_argument(
        "--save-every-method",
        action="store_true",
        help="with --save-models: also each method's chosen setting, as DIR/SEED/METHOD/",
    )
    add_image_reading_options(p)


def add_compare_options(p: argparse.ArgumentParser) -> None:
    """Options shared by compare and demo: the fields of :class:`CompareSettings`."""
    add_dataclass_options(p, CompareSettings, skip=("methods", "overrides", "grids"))
    p.add_argument(
        "--grid-set",
        action="append",
        metavar="METHOD.KEY=V1,V2",
        help="with --grid: search these values of a method's setting instead of its grid's, "
        "e.g. --grid-set swift.beta=0.1 --grid-set bmft.impair_lr=1e-4,1e-3 (repeatable; "
        "'fairtune methods NAME' shows each grid)",
    )
    p.add_argument(
        "--wide",
        action="store_true",
        help="print every metric in one table, however wide (a file or a pipe gets that table "
        "anyway; a terminal otherwise gets the headline table, then the others folded to fit)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress: neither the run's line and bars in a terminal nor the line per "
        "finished candidate elsewhere",
    )


def compare_settings(
    args: argparse.Namespace,
    methods: list[str],
    overrides: dict[str, dict[str, Any]] | None = None,
    grids: dict[str, dict[str, list[Any]]] | None = None,
) -> CompareSettings:
    """The command line's compare options; ``--grid-set`` updates ``grids`` key by key."""
    if args.grid_set and not args.grid:
        raise FairtuneError("--grid-set only acts with --grid: add --grid, or drop --grid-set")
    searched = {method: dict(grid) for method, grid in (grids or {}).items()}
    for method, grid in parse_settings(args.grid_set, option="--grid-set", lists=True).items():
        searched.setdefault(method, {}).update(grid)
    given = {"methods": methods, "overrides": overrides or {}, "grids": searched}
    return CompareSettings(**{**dataclass_values(args, CompareSettings), **given})


def compare_command(args: argparse.Namespace) -> None:
    methods = method_names(args.methods)
    settings = compare_settings(args, methods, overrides=parse_settings(args.set))
    # CompareSettings checked every setting (and each method's overrides): before any data
    refuse_overwrite(args.out, [args.model, args.external, *args.test])
    models = _saved_models(args)
    model, config = load_model_here(args.model)
    external, ext_source = load_data(args, args.external, config, "external")
    specs = dict(zip(test_names(args.test), args.test, strict=True))
    tests, sources = {}, {}
    for name, spec in specs.items():
        tests[name], sources[name] = load_data(args, spec, config, "test")
    check_external(external)
    for test in tests.values():
        if _same_data(external, test):
            warnings.warn(
                "the external and test sets are the same data: the methods are measured on the "
                "rows they were fitted on, so the results overstate them; give a separate test "
                "set",
                stacklevel=1,
            )
    if models is not None:
        models.model_config = config
    if not settings.training_rows:  # the budget's unit, and every search's cost's
        settings = replace(settings, training_rows=original_training_rows(config.history))
    rows = compare(model, external, tests, settings, config.head, not args.quiet, models)
    title = f"{args.model}: external {ext_source}"
    about: dict[str, Any] = {"model": args.model}
    if len(tests) == 1:
        title += f", test {next(iter(sources.values()))}"
    else:  # each test set's table names it
        about["tests"] = sources
    saved = None if models is None else f"{models.folder}/<seed>/selected/"
    report.write_comparison(args.out, rows, title, settings, about, args.wide, saved)
    if models is not None:
        console.print(f"models written to {models.folder}/SEED/METHOD/ (see debias.json in each)")


def _saved_models(args: argparse.Namespace) -> SavedModels | None:
    """Where --save-models writes, checked before any work; never in or around --out."""
    if args.save_models is None:
        if args.save_every_method:
            raise FairtuneError("--save-every-method needs --save-models DIR")
        return None
    out, folder = Path(args.out).resolve(), Path(args.save_models).resolve()
    if folder == out or out in folder.parents or folder in out.parents:
        raise FairtuneError(
            f"--save-models '{args.save_models}' and --out '{args.out}' overlap: choose apart"
        )
    refuse_overwrite(args.save_models, [args.model, args.external, *args.test])
    return SavedModels(args.save_models, args.save_every_method)


def _same_data(external: FairData, test: FairData) -> bool:
    """Whether the external and test sets are one set: the rows read equal, row by row (the
    same features, or the same image files, and the same labels), whatever they were named."""
    if len(external) != len(test) or not torch.equal(external.labels, test.labels):
        return False
    ours, theirs = external.inputs, test.inputs
    if isinstance(ours, torch.Tensor) and isinstance(theirs, torch.Tensor):
        return torch.equal(ours, theirs)
    paths = [getattr(inputs, "paths", None) for inputs in (ours, theirs)]
    return all(p is not None for p in paths) and list(paths[0]) == list(paths[1])


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo-output", help="report directory (default: %(default)s)")
    p.add_argument(
        "--keep",
        type=float,
        help="share of the women with income >50K kept in the baseline's training "
        f"split; 1 for the representative split (default: {DemoSettings.keep})",
    )
    p.add_argument(
        "--images",
        action="store_true",
        help="the image demo instead: a SYNTHETIC skin-tone lesion set and a CNN "
        "(EfficientNet-Lite0 when the 'pretrained' extra is installed)",
    )
    p.add_argument(
        "--arch",
        default="auto",
        help=f"image demo backbone: {architectures_text(images=True)}, or auto "
        "(EfficientNet-Lite0 when the 'pretrained' extra is installed, else cnn); on a "
        f"backbone costly to fine-tune on a CPU ({', '.join(costly_architectures())}), the "
        "methods that "
        "fine-tune it search two learning rates each, their default and ten times it "
        "(default: %(default)s)",
    )
    add_compare_options(p)
    p.set_defaults(grid=True, search=AUTO_SEARCH)


def demo_command(args: argparse.Namespace) -> None:
    if args.images and args.keep is not None:
        raise FairtuneError("--keep skews the Adult demo; the image demo (--images) has no --keep")
    if not args.images and args.arch != "auto":
        raise FairtuneError("--arch chooses the image demo's backbone: add --images")
    keep = DemoSettings.keep if args.keep is None else args.keep
    if not 0 < keep <= 1:
        raise FairtuneError(f"--keep is a share in (0, 1], not {keep}")
    refuse_overwrite(args.out, [])
    if args.images:
        arch = default_image_arch() if args.arch == "auto" else args.arch
        grids = learning_rate_grids() if resolve_architecture(arch).costly else {}
        settings = compare_settings(args, method_names(ALL), grids=grids)
        run_image_demo(args.out, ImageDemoSettings(arch=arch), settings, not args.quiet, args.wide)
        return
    settings = compare_settings(args, method_names(ALL))
    run_demo(args.out, DemoSettings(keep=keep), settings, not args.quiet, args.wide)


COMMANDS = (
    Command(
        "compare",
        "Run several methods from one model on the same data and report them side by side.",
        _compare_args,
        compare_command,
    ),
    Command(
        "demo",
        "Bundled Adult data (or, with --images, synthetic skin-tone images): train a biased "
        "starting model, debias it with every method, report.",
        _demo_args,
        demo_command,
    ),
)
