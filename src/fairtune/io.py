"""Atomic output: a file or directory appears whole or not at all, never over an input.

JSON, CSV and PNG files are written through it (:func:`write_json`,
:func:`write_csv`, :func:`save_figure`).

A directory written by :func:`atomic_dir` carries a marker file, :data:`MARKER`;
an existing directory is replaced only when it carries one too (or is empty),
so an output folder given by mistake (a data folder, the project) is never
wiped.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fairtune.errors import FairtuneError

MARKER = ".fairtune-output"


def refuse_inputs(
    output: str | Path, inputs: Iterable[str | Path | None], directory: bool = True
) -> None:
    """Check an output before any work: fail if it is one of the ``inputs`` (files or
    folders; other names, e.g. built-in data sets, are skipped), lies inside one, or holds
    one, or if :func:`atomic_dir` (``directory``) or :func:`atomic_path` could not write it."""
    out = Path(output).resolve()
    for item in inputs:
        if item is None or not Path(item).exists():
            continue
        src = Path(item).resolve()
        if out == src or out in src.parents or (src.is_dir() and src in out.parents):
            raise FairtuneError(
                f"output '{output}' would overwrite the input '{item}': choose another"
            )
    if directory:
        _check_replaceable(output)
    elif Path(output).is_dir():
        raise FairtuneError(f"output '{output}' is a folder: name a file")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # as a plainly created file, not mkstemp's 0600
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def clean(obj: Any) -> Any:
    """JSON-ready copy: NaN and infinities become null, tuples become lists."""
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically, NaN as null."""
    atomic_write_text(path, json.dumps(clean(obj), indent=2) + "\n")


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write flat dict rows as CSV, atomically; columns in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(clean(rows))
    atomic_write_text(path, buffer.getvalue())


def save_figure(fig: Any, path: str | Path) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``path`` as a whole.

    Refuses, before any work, to replace an existing directory that holds files
    and no :data:`MARKER` (fairtune did not write it).
    """
    _check_replaceable(path)
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # as a plainly created folder, not mkdtemp's 0700
    (tmp / MARKER).write_text("written by fairtune; this folder is replaced whole on rewrite\n")
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_replaceable(output: str | Path) -> None:
    """Fail unless :func:`atomic_dir` may write ``output``: new, empty, or written by it."""
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise FairtuneError(f"output '{output}' exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file():
        raise FairtuneError(
            f"output folder '{output}' already holds files that fairtune did not write: "
            "choose a new folder (or empty that one)"
        )


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
