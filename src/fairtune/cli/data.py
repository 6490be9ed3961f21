"""``data check``: what fairtune reads from a published set's download folder, before any run.

The first thing to run on a fresh download: which layout was found, the rows
read, dropped (per reason) and kept, the images missing, and the groups and
labels of each part of the split the other commands use. A folder in no known
layout gets the one-line error that lists what each layout looks for.
"""

from __future__ import annotations

import argparse
import os

import pandas as pd
from rich.table import Table as RichTable

from fairtune.cli.options import (
    Command,
    add_split_seed,
    medical_reading,
    split_of,
)
from fairtune.columns import group_values
from fairtune.console import console
from fairtune.datasets.medical import MedicalTable
from fairtune.datasets.presets import PRESETS, formats_help
from fairtune.errors import FairtuneError
from fairtune.loading import PARTS, preset_of, preset_parts, read_table

SHOWN_MISSING = 3


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("check",), help="check: read the set and say what it holds")
    p.add_argument(
        "spec",
        metavar="FORMAT:DIR",
        help="a published set's download folder; FORMAT one of: "
        + formats_help().replace("%", "%%"),
    )
    p.add_argument(
        "--sensitive",
        nargs="+",
        help="the set's sensitive attribute(s) to group by (default: the set's first)",
    )
    p.add_argument(
        "--image-root", help="folder the images are in (default: found below the download folder)"
    )
    add_split_seed(p)


def data_command(args: argparse.Namespace) -> None:
    spec = preset_of(args.spec)
    if spec is None:
        raise FairtuneError(
            f"'{args.spec}' names no published set: give FORMAT:DIR, FORMAT one of "
            f"{', '.join(PRESETS)}"
        )
    table = read_table(args.spec, "all", args.split_seed, args.sensitive, medical_reading(args))
    medical = table.preset
    if medical is None:  # a file of that name won over the preset
        raise FairtuneError(f"'{args.spec}' is a file, not FORMAT:DIR")
    console.print(f"{spec.preset.name}: {spec.preset.description}")
    for line in medical.summary.lines():
        console.print(line)
    console.print(f"image root: {medical.root.resolve()}")
    console.print(_missing(medical))
    split = split_of(args)
    parts = preset_parts(medical, split)
    unit = "image" if split.by_image else "patient"
    console.print(
        f"parts: 60/20/20 by {unit} (--split-seed {split.seed}), label '{medical.label}', "
        f"groups by {' & '.join(medical.sensitive)}"
    )
    console.print(_parts_table(medical, parts))


def _missing(medical: MedicalTable) -> str:
    """How many of the kept rows' image files are not there, with the first few."""
    paths = medical.frame[medical.image_col].astype(str)
    absent = [p for p in paths if not os.path.isfile(medical.root / p)]
    if not absent:
        return f"images missing: 0 of {len(paths)}"
    first = ", ".join(absent[:SHOWN_MISSING]) + (", ..." if len(absent) > SHOWN_MISSING else "")
    return f"images missing: {len(absent)} of {len(paths)} (first: {first})"


def _parts_table(medical: MedicalTable, parts: tuple[pd.DataFrame, ...]) -> RichTable:
    """Rows, patients and (group, label) counts of each part."""
    cells = sorted(
        set(
            zip(
                group_values(medical.frame, medical.sensitive),
                medical.frame[medical.label],
                strict=True,
            )
        )
    )
    table = RichTable("part", "rows", "patients", *(f"{g} / {y}" for g, y in cells))
    for name, part in zip(PARTS, parts, strict=True):
        pairs = pd.Series(
            list(zip(group_values(part, medical.sensitive), part[medical.label], strict=True))
        )
        counts = pairs.value_counts()
        table.add_row(
            name,
            str(len(part)),
            str(part[medical.patient].nunique()),
            *(str(int(counts.get(cell, 0))) for cell in cells),
        )
    return table


def _cells(frame: pd.DataFrame, medical: MedicalTable) -> list[tuple[str, object]]:
    """Each row's (group, label)."""
    groups = group_values(frame, medical.sensitive)
    return list(zip(groups, frame[medical.label], strict=True))


COMMANDS = (
    Command(
        "data",
        "Check a published medical set's download folder: the layout found, rows read, "
        "dropped and kept, images missing, groups and labels per part.",
        _args,
        data_command,
    ),
)
