"""The sub-commands' handlers: read the input, call the library, print and write the report."""

from __future__ import annotations

import argparse
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from rich.table import Table

from fairtune import report
from fairtune.api import debias
from fairtune.architectures import image_arch, load_model
from fairtune.augment import Augment
from fairtune.binarize import parse_binarize
from fairtune.cli import add_data_options, add_dataclass_options, command, dataclass_values
from fairtune.comparison import CompareSettings, compare
from fairtune.console import console
from fairtune.data import Columns, split_frame
from fairtune.demo import (
    DemoSettings,
    ImageDemoSettings,
    default_image_arch,
    learning_rate_grids,
    run_demo,
    run_image_demo,
)
from fairtune.erm import StartingModel, TrainConfig, train_images, train_tabular
from fairtune.errors import FairtuneError
from fairtune.evaluation import evaluate_model
from fairtune.image_csv import ImageOptions, ImageReading, read_image_csv
from fairtune.images import Decoding
from fairtune.io import atomic_dir, refuse_inputs, write_json
from fairtune.loading import PARTS, load_for_model, read_table, resolve_columns
from fairtune.methods import REGISTRY
from fairtune.models import save_model
from fairtune.thresholds import THRESHOLD_RULES

DATA_HELP = "CSV file or built-in set ('adult', 'german', 'adult:test', ...)"


def add_image_reading_options(p: Any) -> None:
    """Options of every command that may read an image CSV."""
    p.add_argument(
        "--image-root", help="folder the image paths are relative to (default: the CSV's folder)"
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip unreadable or missing images and report them, instead of stopping",
    )


def _load(args: argparse.Namespace, spec: str, config: Any, part: str) -> tuple[Any, str]:
    """The data named by ``spec`` (a built-in name means its ``part``), read as the model's."""
    return load_for_model(
        spec,
        config,
        args.label,
        args.sensitive,
        default_part=part,
        split_seed=args.split_seed,
        reading=ImageReading(args.image_root, args.skip_bad_images),
    )


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
        console.print(
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
    p.add_argument(
        "--checkpoint",
        help="start from your own weights: a state dict (.pt, .pth or .safetensors, loaded "
        "safely) for the architecture; with --epochs 0 it is only imported",
    )
    p.add_argument("--head", help="module name of the classification head (default: found)")
    images = p.add_argument_group("image data (an image CSV: one row per image)")
    images.add_argument("--image-col", help="column of image paths; makes --data an image CSV")
    images.add_argument(
        "--image-size",
        type=int,
        default=64,
        help="images are resized to this square size (default: %(default)s)",
    )
    images.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=3,
        help="3 for RGB, 1 for grayscale such as X-rays (default: %(default)s)",
    )
    images.add_argument(
        "--arch",
        default="cnn",
        help="cnn (small built-in), efficientnet_lite0 (ImageNet weights, extra "
        "'pretrained'), torchvision:NAME or timm:NAME (extra 'vision') "
        "(default: %(default)s)",
    )
    images.add_argument(
        "--binarize",
        nargs="+",
        metavar="COL:RULE",
        help="turn a several-valued attribute into two groups, e.g. fitzpatrick:1-3 or age:0-60",
    )
    images.add_argument(
        "--augment",
        action="store_true",
        help="random flips, transposes and small rotations while training",
    )
    add_image_reading_options(images)


@command(
    "train", "Train a baseline classifier (ERM) on a table and save a model directory.", _train_args
)
def train_command(args: argparse.Namespace) -> None:
    refuse_inputs(args.out, [args.data])
    config = TrainConfig(**dataclass_values(args, TrainConfig))
    start = time.perf_counter()
    if args.image_col:
        model, model_config, rows = _train_images(args, config)
        source = args.data
    else:
        model, model_config, rows, source = _train_table(args, config)
    model_config.data = {"source": source, "rows": rows, "train": vars(config)}
    save_model(args.out, model, model_config)
    console.print(
        f"trained on {rows} rows of {source} in "
        f"{time.perf_counter() - start:.1f} s; model written to {args.out}"
    )


def _train_images(args: argparse.Namespace, config: TrainConfig) -> tuple[Any, Any, int]:
    if not args.label or not args.sensitive:
        raise FairtuneError("an image CSV needs --label and --sensitive")
    arch, mean, std = image_arch(args.arch, args.channels)
    options = ImageOptions(
        args.image_col,
        Decoding(args.image_size, args.channels, mean, std),
        parse_binarize(args.binarize) if args.binarize else None,
    )
    columns = Columns(args.label, args.sensitive, args.positive)
    data, read = read_image_csv(
        args.data,
        options,
        columns,
        reading=ImageReading(
            args.image_root,
            args.skip_bad_images,
            augment=Augment(seed=config.seed) if args.augment else None,
        ),
    )
    _say_skipped(read)
    model, model_config = train_images(
        data,
        StartingModel(arch, args.checkpoint, args.head),
        options,
        columns,
        config,
        progress=True,
    )
    return model, model_config, len(data)


def _say_skipped(read: dict[str, Any]) -> None:
    if read["bad_rows"]:
        first = read["bad_rows"][0]
        console.print(
            f"skipped {len(read['bad_rows'])} unreadable image(s) of {read['rows_read']}, "
            f"first {first['file']} (row {first['row']}): {first['reason']}"
        )


def _train_table(args: argparse.Namespace, config: TrainConfig) -> tuple[Any, Any, int, str]:
    table = read_table(args.data, default_part="train", split_seed=args.split_seed)
    label, sensitive = resolve_columns(table, args.label, args.sensitive)
    model, model_config = train_tabular(
        table.frame,
        Columns(label, sensitive, args.positive),
        config,
        features=args.features,
        sensitive_as_feature=args.sensitive_as_feature,
        checkpoint=args.checkpoint,
        progress=True,
    )
    return model, model_config, len(table.frame), table.source


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
    add_image_reading_options(p)


@command(
    "evaluate",
    "Print accuracy and fairness metrics of a model, overall and per group.",
    _evaluate_args,
)
def evaluate_command(args: argparse.Namespace) -> None:
    if args.json:
        refuse_inputs(args.json, [args.data, args.model], directory=False)
    model, config = load_model(args.model)
    data, source = _load(args, args.data, config, "test")
    threshold = config.threshold if args.threshold is None else args.threshold
    metrics, ci = evaluate_model(model, data, threshold, args.n_boot, args.seed)
    title = f"{args.model} on {source} ({len(data)} rows), threshold {threshold:.3f}"
    console.print(report.overall_table(metrics, ci, title))
    console.print(report.groups_table(metrics, data.attribute))
    console.print(report.EXPLAIN)
    if args.json:
        write_json(
            args.json, {"model": args.model, "data": source, "metrics": metrics, "ci": ci}
        )
        console.print(f"metrics written to {args.json}")


def parse_settings(
    pairs: list[str] | None, method: str | None = None, option: str = "--set", lists: bool = False
) -> dict[str, Any]:
    """``KEY=VALUE`` (or ``METHOD.KEY=VALUE``) pairs, typed by the method's config fields.

    With ``lists``, VALUE is a comma-separated list and each setting maps to the
    list of its typed values (``--grid-set``).
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or (lists and not all(raw.split(","))):
            shape = "METHOD.KEY=V1,V2,..." if lists else "KEY=VALUE"
            raise FairtuneError(f"{option} '{pair}' must look like {shape}")
        name, _, field_name = key.rpartition(".") if "." in key else (method, "", key)
        if name is None:
            raise FairtuneError(f"{option} '{pair}': name the method, e.g. swift.{key}=...")
        if name not in REGISTRY:
            raise FairtuneError(
                f"{option} '{pair}': unknown method '{name}'; choose from {sorted(REGISTRY)}"
            )
        types = {f.name: f.type for f in fields(REGISTRY[name].config_class)}
        if field_name not in types:
            raise FairtuneError(
                f"{name} has no setting '{field_name}'; see 'fairtune methods {name}'"
            )
        kind = {"int": int, "float": float, "bool": _boolean}.get(str(types[field_name]), str)
        try:
            values = [kind(v) for v in raw.split(",")] if lists else kind(raw)
        except ValueError:
            raise FairtuneError(
                f"{option} '{pair}': '{raw}' is not a {types[field_name]}"
                + (" or a comma-separated list of them" if lists else "")
            ) from None
        out.setdefault(name, {})[field_name] = values
    return out


def _boolean(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ValueError(raw)


def _methods_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="a method, to list its settings")


@command(
    "methods", "List the debiasing methods, or one method's settings and defaults.", _methods_args
)
def methods_command(args: argparse.Namespace) -> None:
    if args.name is None:
        table = Table(title="debiasing methods ('fairtune methods NAME' for settings)")
        table.add_column("name")
        table.add_column("what it does")
        for name, cls in sorted(REGISTRY.items()):
            table.add_row(name, cls.summary)
        console.print(table)
        return
    if args.name not in REGISTRY:
        raise FairtuneError(f"unknown method '{args.name}'; choose from {sorted(REGISTRY)}")
    cls = REGISTRY[args.name]
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


@command(
    "debias",
    "Debias a model with one method on an external set; write the new model.",
    _debias_args,
)
def debias_command(args: argparse.Namespace) -> None:
    refuse_inputs(args.out, [args.data, args.model])
    model, config = load_model(args.model)
    external, source = _load(args, args.data, config, "external")
    by_method = parse_settings(args.set, args.method)
    others = sorted(set(by_method) - {args.method})
    if others:
        raise FairtuneError(f"--set names {others}, but this run debiases with {args.method}")
    settings = by_method.get(args.method, {})
    if args.seed is not None:
        settings["seed"] = args.seed
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


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory every method starts from")
    p.add_argument(
        "--external",
        required=True,
        help="external set (CSV or e.g. 'adult:external') the methods fine-tune on",
    )
    p.add_argument(
        "--test", required=True, help="test set (CSV or e.g. 'adult:test'); used only to measure"
    )
    p.add_argument("--label", help="label column (default: the model's)")
    p.add_argument("--sensitive", nargs="+", help="sensitive column(s) (default: the model's)")
    p.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of a built-in set's 60/20/20 split (default: %(default)s)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=["all"],
        help=f"methods to run, or 'all' (default): {', '.join(sorted(REGISTRY))}",
    )
    p.add_argument(
        "--out",
        required=True,
        help="directory for results.json, results.csv, settings.json and the plot",
    )
    add_compare_options(p)
    p.add_argument(
        "--set",
        action="append",
        metavar="METHOD.KEY=VALUE",
        help="change a method's setting, e.g. --set bmft.keep=0.25 (repeatable)",
    )
    add_image_reading_options(p)


def add_compare_options(p: argparse.ArgumentParser) -> None:
    """Options shared by compare and demo."""
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0],
        help="seeds; with several, tables show mean±std (default: %(default)s)",
    )
    p.add_argument(
        "--grid",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="try each method's grid of key settings and select on held-out external data "
        "(default: off; demo: on)",
    )
    p.add_argument(
        "--grid-set",
        action="append",
        metavar="METHOD.KEY=V1,V2",
        help="with --grid: search these values of a method's setting instead of its grid's, "
        "e.g. --grid-set swift.beta=0.1 --grid-set bmft.impair_lr=1e-4,1e-3 (repeatable; "
        "'fairtune methods NAME' shows each grid)",
    )
    p.add_argument(
        "--tuner",
        choices=("grid", "optuna"),
        default="grid",
        help="with --grid: try every grid point, or let optuna's TPE sampler search the grid's "
        "ranges (learning rates on a log scale; extra 'tune') (default: %(default)s)",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=12,
        help="optuna trials per method and seed (default: %(default)s)",
    )
    p.add_argument(
        "--threshold-rule",
        default="positive_rate",
        choices=THRESHOLD_RULES,
        help="how the second threshold is chosen on held-out external data: keep "
        "the starting model's positive rate, best balanced accuracy, or 0.5 "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=0.3,
        help="share of the external set held out for thresholds and selection "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--auc-tolerance",
        type=float,
        default=0.01,
        help="selection keeps settings whose held-out AUC is within this of the "
        "starting model's (default: %(default)s)",
    )
    p.add_argument(
        "--n-boot",
        type=int,
        default=200,
        help="bootstrap resamples for intervals on the test set (default: %(default)s)",
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
    return CompareSettings(
        methods=methods,
        seeds=args.seeds,
        grid=args.grid,
        tuner=args.tuner,
        trials=args.trials,
        holdout=args.holdout,
        auc_tolerance=args.auc_tolerance,
        threshold_rule=args.threshold_rule,
        n_boot=args.n_boot,
        overrides=overrides or {},
        grids=searched,
    )


@command(
    "compare",
    "Run several methods from one model on the same data and report them side by side.",
    _compare_args,
)
def compare_command(args: argparse.Namespace) -> None:
    refuse_inputs(args.out, [args.model, args.external, args.test])
    model, config = load_model(args.model)
    external, ext_source = _load(args, args.external, config, "external")
    test, test_source = _load(args, args.test, config, "test")
    methods = sorted(REGISTRY) if args.methods == ["all"] else args.methods
    settings = compare_settings(args, methods, overrides=parse_settings(args.set))
    rows = compare(model, external, test, settings, head=config.head, progress=True)
    title = f"{args.model}: external {ext_source}, test {test_source}"
    report.write_comparison(args.out, rows, title, settings, {"model": args.model})


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
        help="image demo backbone: cnn (small, built in), efficientnet_lite0 (ImageNet weights; "
        "to fit a CPU, the methods that fine-tune its backbone search two learning rates "
        "each, their default and ten times it), or auto (EfficientNet-Lite0 when the "
        "'pretrained' extra is installed, else cnn) (default: %(default)s)",
    )
    add_compare_options(p)
    p.set_defaults(grid=True)


@command(
    "demo",
    "Bundled Adult data (or, with --images, synthetic skin-tone images): train a biased "
    "baseline, debias it with every method, report.",
    _demo_args,
)
def demo_command(args: argparse.Namespace) -> None:
    if args.images and args.keep is not None:
        raise FairtuneError("--keep skews the Adult demo; the image demo (--images) has no --keep")
    if not args.images and args.arch != "auto":
        raise FairtuneError("--arch chooses the image demo's backbone: add --images")
    keep = DemoSettings.keep if args.keep is None else args.keep
    if not 0 < keep <= 1:
        raise FairtuneError(f"--keep is a share in (0, 1], not {keep}")
    refuse_inputs(args.out, [])
    if args.images:
        arch = default_image_arch() if args.arch == "auto" else args.arch
        grids = learning_rate_grids() if arch == "efficientnet_lite0" else {}
        settings = compare_settings(args, sorted(REGISTRY), grids=grids)
        run_image_demo(args.out, ImageDemoSettings(arch=arch), settings)
        return
    run_demo(args.out, DemoSettings(keep=keep), compare_settings(args, sorted(REGISTRY)))
