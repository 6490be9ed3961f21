"""``split`` and ``train``: parts of a table, and the starting model trained on one."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from fairtune.architectures import architectures_text, image_arch
from fairtune.augment import Augment
from fairtune.binarize import parse_binarize
from fairtune.checkpoints import Checkpoint
from fairtune.cli.options import (
    DATA_HELP,
    IMAGE_ROOT,
    Command,
    add_data_options,
    add_dataclass_options,
    add_image_reading_options,
    dataclass_values,
    image_reading,
    medical_reading,
)
from fairtune.columns import Columns, require_columns
from fairtune.console import console
from fairtune.erm import StartingModel, TrainConfig, train_images, train_tabular
from fairtune.errors import FairtuneError
from fairtune.image_csv import ImageOptions, ImageReading, image_paths, read_image_csv
from fairtune.images import Decoding
from fairtune.inputs import refuse_overwrite
from fairtune.io import atomic_dir
from fairtune.loading import (
    Table,
    preset_of,
    read_preset_images,
    read_table,
    resolve_columns,
    warn_shared_patients,
)
from fairtune.modelio import save_model
from fairtune.splits import PARTS, split_frame


def _split_args(p: argparse.ArgumentParser) -> None:
    add_data_options(p, DATA_HELP + "; a built-in name means the whole set here")
    files = ", ".join(f"{part}.csv" for part in PARTS)
    p.add_argument("--out", required=True, help=f"directory for {files}")
    p.add_argument(
        "--fractions",
        nargs=3,
        type=float,
        default=[0.6, 0.2, 0.2],
        metavar=("TRAIN", "EXT", "TEST"),
        help="shares of the three parts (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    p.add_argument(
        "--image-col",
        help="column of image paths (an image CSV): checked before the split, and the image "
        "root to read the parts with is printed (a medical set's own: automatic)",
    )
    p.add_argument(
        "--image-root", help="folder the image paths are relative to (default: the CSV's folder)"
    )
    p.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept image paths that lead outside the image root",
    )
    p.add_argument(
        "--patient",
        help="patient id column: all of a patient's rows go to one part "
        "(default: none; a medical set's own)",
    )


def split_command(args: argparse.Namespace) -> None:
    refuse_overwrite(args.out, [args.data])
    medical = medical_reading(args)
    table = read_table(args.data, "all", sensitive=args.sensitive, medical=medical)
    _say_read(table)
    label, sensitive = resolve_columns(table, args.label, args.sensitive)
    frame, patient = table.frame, args.patient
    if table.preset:
        args.image_col, args.image_root = table.preset.image_col, str(table.preset.root)
        patient = patient or (None if medical.by_image else table.preset.patient)
    if args.image_col:
        _check_paths(frame, args)
    parts = split_frame(frame, label, sensitive, tuple(args.fractions), args.seed, patient)
    if table.preset and medical.by_image:
        warn_shared_patients(parts, table.preset.patient)
    with atomic_dir(args.out) as tmp:
        for name, part in zip(PARTS, parts, strict=True):
            part.to_csv(tmp / f"{name}.csv", index=False)
    for name, part in zip(PARTS, parts, strict=True):
        console.print(f"{name:>8}: {len(part):>6} rows -> {Path(args.out) / (name + '.csv')}")


def _check_paths(frame: pd.DataFrame, args: argparse.Namespace) -> None:
    """Check the image paths before splitting (present, inside the image root) and tell the
    image root the parts are read with: the parts keep the paths as written."""
    require_columns(frame, [args.image_col], "image")
    csv_path = Path(args.image_root or args.data).resolve()  # a preset names no CSV file
    reading = ImageReading(args.image_root, allow_outside_root=args.allow_outside_root)
    image_paths(csv_path, frame[args.image_col], reading)
    root = Path(args.image_root).resolve() if args.image_root else csv_path.parent
    console.print(
        f"image paths stay relative to {root}: read the parts with --image-root {root} "
        "(train saves it for the later commands)"
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
        "safely) for the architecture, also inside a Lightning .ckpt or under DataParallel's "
        "'module.' prefix; with --epochs 0 it is only imported",
    )
    p.add_argument("--head", help="module name of the classification head (default: found)")
    p.add_argument(
        "--head-output",
        type=int,
        metavar="INDEX",
        help="the checkpoint's classifier has several outputs (e.g. CheXpert's 14 labels): keep "
        "output INDEX (0-based) as the one logit; with 2 outputs, softmax's class INDEX "
        "(default: a fresh head)",
    )
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="read a checkpoint that is a whole pickled model: unpickling runs code from the "
        "file, so only for a file you trust (default: tensors only, weights_only=True)",
    )
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
        help=f"{architectures_text(images=True)} (default: %(default)s)",
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


def train_command(args: argparse.Namespace) -> None:
    refuse_overwrite(args.out, [args.data])
    config = TrainConfig(**dataclass_values(args, TrainConfig))
    args.checkpoint = _checkpoint(args)
    start = time.perf_counter()
    if args.image_col or preset_of(args.data):
        model, model_config, rows = _train_images(args, config)
        source = args.data
    else:
        model, model_config, rows, source = _train_table(args, config)
    model_config.data = {"source": source, "rows": rows, "train": vars(config)}
    if args.image_col and args.image_root:
        model_config.images[IMAGE_ROOT] = str(Path(args.image_root).resolve())
    save_model(args.out, model, model_config)
    console.print(
        f"trained on {rows} rows of {source} in "
        f"{time.perf_counter() - start:.1f} s; model written to {args.out}"
    )


def _checkpoint(args: argparse.Namespace) -> Checkpoint | None:
    """The --checkpoint to start from, read as --head-output and --trust-pickle say."""
    if args.checkpoint is None:
        if args.head_output is not None or args.trust_pickle:
            raise FairtuneError("--head-output and --trust-pickle need a --checkpoint to read")
        return None
    if args.head_output is not None and args.head_output < 0:
        raise FairtuneError(f"--head-output is a 0-based output index, not {args.head_output}")
    return Checkpoint(args.checkpoint, args.head_output, args.trust_pickle)


def _train_images(args: argparse.Namespace, config: TrainConfig) -> tuple[Any, Any, int]:
    table = None
    label, sensitive, image_col = args.label, args.sensitive, args.image_col
    if preset_of(args.data):
        medical = medical_reading(args)
        table = read_table(args.data, "train", args.split_seed, args.sensitive, medical)
        _say_read(table)
        label, sensitive = resolve_columns(table, args.label, args.sensitive)
        image_col = table.preset.image_col
    elif not args.label or not args.sensitive:
        raise FairtuneError("an image CSV needs --label and --sensitive")
    arch, mean, std = image_arch(args.arch, args.channels, args.image_size)
    options = ImageOptions(
        image_col,
        Decoding(args.image_size, args.channels, mean, std),
        parse_binarize(args.binarize) if args.binarize else None,
    )
    columns = Columns(label, sensitive, args.positive)
    reading = image_reading(
        args, args.image_root, Augment(seed=config.seed) if args.augment else None
    )
    if table is not None:
        data, read = read_preset_images(table, options, columns, reading=reading)
    else:
        data, read = read_image_csv(args.data, options, columns, reading=reading)
    _say_skipped(read)
    model, model_config = train_images(
        data,
        StartingModel(arch, args.checkpoint, args.head),
        options,
        columns,
        config,
        progress=True,
    )
    if table is not None:  # where the preset found the images: the later commands look there
        model_config.images[IMAGE_ROOT] = str(table.preset.root.resolve())
    return model, model_config, len(data)


def _say_read(table: Table) -> None:
    """What a published medical set's reader read, dropped (one line per reason) and kept."""
    if table.preset:
        for line in table.preset.summary.lines():
            console.print(line)


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


COMMANDS = (
    Command(
        "split",
        f"Write stratified {' / '.join(PARTS)} CSVs of a table.",
        _split_args,
        split_command,
    ),
    Command(
        "train",
        "Train a starting classifier (ERM) on a table and save a model directory.",
        _train_args,
        train_command,
    ),
)
