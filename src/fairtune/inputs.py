"""The one rule for "is this path an input": what a command reads, checked against its outputs.

A command's inputs are its data specs and its model folder. A data spec reads a
CSV file, or, for a published medical set named ``FORMAT:PATH``, every file of its
download folder (its tables and its images); a built-in set reads no file of the
user's. A model folder is read whole. :func:`refuse_overwrite` checks an output
(``--out``, ``--json``, a study's folder) against all of them before any work:
it may not be one, lie inside one, or hold one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fairtune.datasets.presets import parse_preset
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
    output: str | Path, specs: Iterable[str | None], directory: bool = True
) -> None:
    """Fail before any work if ``output`` would overwrite, lie inside or hold a file that one
    of ``specs`` reads (see :func:`input_paths`), or could not be written
    (:func:`fairtune.io.refuse_inputs`; ``directory``: the output is a folder)."""
    refuse_inputs(output, input_paths(specs), directory=directory)
