"""The one rule for "is this path an input": what a command reads, checked against its outputs.

A command's inputs are its data specs and its model folder. A data spec reads a
CSV file (and, for an image CSV, the images it names), or, for a published medical
set named ``FORMAT:PATH``, every file of its download folder (its tables and its
images); a built-in set reads no file of the user's. A model folder is read whole.
:func:`refuse_overwrite` checks an output (``--out``, ``--json``, a study's folder)
against all of them before any work: it may not be one, lie inside one, or hold one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from fairtune.datasets.presets import parse_preset
from fairtune.errors import FairtuneError
from fairtune.io import refuse_inputs


def input_paths(specs: Iterable[str | None]) -> list[str]:
    """The files and folders that ``specs`` (data specs and model folders) read: a path as
    given, a ``FORMAT:PATH`` preset's download folder; a built-in set's name stays (it names
    no file, and is skipped by the check)."""
    found: list[str] = []
    for spec in specs:
        if spec is None:
            continue
        preset = None if Path(spec).exists() else parse_preset(spec)
        found.append(str(Path(preset.path).expanduser()) if preset is not None else spec)
    return found


def refuse_overwrite(
    output: str | Path,
    specs: Iterable[str | None],
    directory: bool = True,
    image_root: str | None = None,
) -> None:
    """Fail before any work if ``output`` would overwrite, lie inside or hold a file that one
    of ``specs`` reads (see :func:`input_paths`), or could not be written
    (:func:`fairtune.io.refuse_inputs`; ``directory``: the output is a folder). An output
    file that exists is also refused when a CSV among ``specs`` names it (an image of an
    image CSV, relative to the CSV's folder or ``image_root``)."""
    specs = list(specs)
    refuse_inputs(output, input_paths(specs), directory=directory)
    if directory or not Path(output).is_file():
        return
    for spec in specs:
        if spec is not None and Path(spec).is_file() and _names(Path(spec), output, image_root):
            raise FairtuneError(
                f"output '{output}' would overwrite an image that '{spec}' names: choose another"
            )


def _names(csv: Path, output: str | Path, image_root: str | None) -> bool:
    """Whether a cell of the CSV ``csv`` names the file ``output``: as it is, or relative to
    the CSV's folder or ``image_root``."""
    target = os.path.realpath(output)
    roots = [csv.parent] + ([Path(image_root)] if image_root else [])
    try:
        frame = pd.read_csv(csv, dtype=str, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        return False  # not a CSV fairtune can read: reading it fails later with its reason
    cells = {v.strip() for column in frame.columns for v in frame[column].dropna()}
    return any(os.path.realpath(root / cell) == target for root in roots for cell in cells)
