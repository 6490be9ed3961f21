"""``predict``: every row's score and decision from a saved model, for use downstream."""

from __future__ import annotations

import argparse
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from fairtune.cli.options import (
    DATA_HELP,
    Command,
    add_image_reading_options,
    decision_threshold,
    image_reading,
    image_root,
    load_model_here,
    medical_reading,
)
from fairtune.columns import require_columns
from fairtune.console import console
from fairtune.errors import FairtuneError
from fairtune.image_csv import ImageOptions, image_paths
from fairtune.images import ImageSource
from fairtune.inputs import refuse_overwrite
from fairtune.io import atomic_write_text
from fairtune.loading import IMAGE_ROOT, Table, preset_of, read_table
from fairtune.modelio import ModelConfig
from fairtune.models import batch_proba
from fairtune.tabular import TabularPreprocessor

SCORE, DECISION = "score", "decision"


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory (from train or debias)")
    p.add_argument(
        "--data",
        required=True,
        help=DATA_HELP + " with the model's feature columns, or an image CSV with its image "
        "column; labels and sensitive columns are not needed; a built-in name means its test part",
    )
    p.add_argument("--out", required=True, help="CSV to write: kept columns, score, decision")
    p.add_argument(
        "--keep-columns",
        nargs="+",
        default=[],
        metavar="COLUMN",
        help="columns of the data copied to the output before the score, e.g. an identifier",
    )
    p.add_argument("--threshold", type=float, help="decision threshold (default: the model's)")
    p.add_argument(
        "--batch-size", type=int, default=256, help="rows per batch (default: %(default)s)"
    )
    add_image_reading_options(p)


def predict_command(args: argparse.Namespace) -> None:
    refuse_overwrite(args.out, [args.data, args.model], False, args.image_root)
    if args.batch_size < 1:
        raise FairtuneError(f"--batch-size must be at least 1, not {args.batch_size}")
    clash = [c for c in (SCORE, DECISION) if c in args.keep_columns]
    if clash:
        raise FairtuneError(
            f"--keep-columns names {clash}, which predict writes itself: rename the column "
            "in the data, or leave it out"
        )
    threshold_given = decision_threshold(args.threshold)
    model, config = load_model_here(args.model)
    threshold = config.threshold if threshold_given is None else threshold_given
    table = _read(args, config)
    require_columns(table.frame, args.keep_columns, "kept (--keep-columns)")
    batches, scored = _batches(table, args, config)
    scores = np.full(len(table.frame), np.nan)
    scores[scored] = batch_proba(model, batches).numpy().astype(np.float64)
    out = table.frame[args.keep_columns].reset_index(drop=True)
    out[SCORE] = scores
    out[DECISION] = pd.array(np.where(scores >= threshold, 1, 0), dtype="Int64")
    out.loc[np.isnan(scores), DECISION] = pd.NA
    atomic_write_text(args.out, out.to_csv(index=False))
    console.print(
        f"{len(scored)} rows of {table.source} scored; decisions at threshold {threshold:.3f} "
        f"({int(out[DECISION].sum())} positive); written to {args.out}"
    )


def _read(args: argparse.Namespace, config: ModelConfig) -> Table:
    """The rows to score: a published medical set's test part is the one evaluate reads (split
    on the model's attribute), its images found as evaluate finds them."""
    if preset_of(args.data) is None or config.images is None:
        return read_table(args.data, default_part="test")
    medical = medical_reading(args, config.images.get(IMAGE_ROOT))
    return read_table(args.data, "test", sensitive=list(config.sensitive), medical=medical)


def _batches(
    table: Table, args: argparse.Namespace, config: ModelConfig
) -> tuple[DataLoader | tuple[torch.Tensor, ...], np.ndarray]:
    """The model's inputs for ``table`` in batches (transformed features, or decoded images)
    and the rows they are: all but the unreadable images skipped with --skip-bad-images."""
    frame = table.frame
    every = np.arange(len(frame))
    if config.images is None:
        inputs = TabularPreprocessor.from_dict(config.preprocessing).transform(frame)
        return torch.split(inputs, args.batch_size), every
    options = ImageOptions.from_dict(config.images)
    if table.preset is not None:  # the preset's image column and root
        options = replace(options, image_col=table.preset.image_col)
        csv, root = table.preset.root / table.preset.summary.files[0], table.preset.root
    else:
        csv, root = Path(args.data), image_root(args, config)
    require_columns(frame, [options.image_col], "image")
    reading = image_reading(args, root)
    paths = image_paths(csv, frame[options.image_col], reading)
    source = ImageSource(
        paths, options.decoding, rows=every, origin=f"'{csv.name}'", max_pixels=reading.max_pixels
    )
    if not args.skip_bad_images:
        return DataLoader(source, batch_size=args.batch_size), every
    bad = source.scan(decode=True)
    if bad:
        first = bad[0]
        warnings.warn(
            f"{len(bad)} image(s) could not be read, first '{first['file']}' (row "
            f"{first['row']}): {first['reason']}; their score and decision are left empty",
            stacklevel=2,
        )
    kept = np.setdiff1d(every, [b["index"] for b in bad])
    if len(kept) == 0:
        raise FairtuneError(f"no readable images in '{csv.name}'")
    return DataLoader(source.take(kept), batch_size=args.batch_size), kept


COMMANDS = (
    Command(
        "predict",
        "Write every row's score and decision (at the model's threshold) to a CSV.",
        _predict_args,
        predict_command,
    ),
)
