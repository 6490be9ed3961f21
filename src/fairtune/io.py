"""Atomic output: a file or directory appears whole or not at all, never over an input.

JSON, CSV and PNG files are written through it (:func:`write_json`,
:func:`write_csv`, :func:`save_figure`).

A directory written by :func:`atomic_dir` carries a marker file, :data:`MARKER`,
that lists the files written into it; an existing directory is replaced only
when it is empty or carries one and holds no file besides those listed, so an
output folder given by mistake (a data folder, the project), or one where the
user added a file, is never wiped. Outputs are checked for writability before
any work (:func:`refuse_inputs`), and a failed write (a full disk included)
leaves nothing behind. Under torchrun only the first process (rank 0) writes:
the others write into a temporary place that is thrown away.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from fairtune.distributed import world
from fairtune.errors import FairtuneError

MARKER = ".fairtune-output"
MARKER_HEADER = "written by fairtune; this folder is replaced whole on rewrite; its files:\n"


def refuse_inputs(
    output: str | Path, inputs: Iterable[str | Path | None], directory: bool = True
) -> None:
    """Check an output before any work: fail if it is one of the ``inputs`` (files or
    folders; other names, e.g. built-in data sets, are skipped), lies inside one, or holds
    one, or if :func:`atomic_dir` (``directory``) or :func:`atomic_path` could not write it
    (a folder fairtune did not write, or a place where no file can be created)."""
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
    _check_writable(output)


def _check_writable(output: str | Path) -> None:
    """Fail unless a file can be created where ``output`` will be (its nearest existing
    folder, since the missing ones are created): a probe file, removed at once."""
    parent = Path(output).resolve().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".fairtune-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FairtuneError(
            f"cannot write output '{output}' ({exc.strerror} in '{parent}'): "
            "choose a folder you can write to"
        ) from None


@contextmanager
def _write_errors(output: Path) -> Iterator[None]:
    """Turn a failed write into one line naming ``output``; safetensors' own error (not an
    ``OSError``, e.g. on a full disk) included."""
    try:
        yield
    except SafetensorError as exc:
        reason = re.search(r'message: "([^"]+)"', str(exc))
        raise FairtuneError(
            f"cannot write '{output}': {reason.group(1) if reason else exc}"
        ) from None
    except OSError as exc:
        if exc.filename is None or output.name in str(exc.filename):
            raise FairtuneError(f"cannot write '{output}': {exc.strerror or exc}") from None
        raise


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place if the block succeeds."""
    if world()[0] != 0:
        with _discarded() as tmp:
            yield tmp / "file"
        return
    path = Path(path)
    with _write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # as a plainly created file, not mkstemp's 0600
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


def number(value: Any) -> float:
    """A number read back from JSON that :func:`clean` wrote: null (NaN or an infinity
    there) becomes NaN."""
    return math.nan if value is None else float(value)


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

    Refuses, before any work, to replace an existing directory that holds a file
    fairtune did not write there (none listed in its :data:`MARKER`). Every file
    gets the permissions of a plainly created one, whatever wrote it.
    """
    _check_replaceable(path)
    if world()[0] != 0:
        with _discarded() as tmp:
            yield tmp
        return
    path = Path(path).resolve()
    with _write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # as a plainly created folder, not mkdtemp's 0700
            yield tmp
            written = _files(tmp)
            for name in written:
                os.chmod(tmp / name, 0o666 & ~_umask())  # safetensors writes 0600 files
            (tmp / MARKER).write_text(MARKER_HEADER + "".join(f"{n}\n" for n in written))
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


@contextmanager
def _discarded() -> Iterator[Path]:
    """A temporary folder, removed after: where a process other than rank 0 writes."""
    with tempfile.TemporaryDirectory(prefix="fairtune-rank-") as tmp:
        yield Path(tmp)


def _files(folder: Path) -> list[str]:
    """The files under ``folder`` (relative, '/'-separated, sorted), the marker left out."""
    found = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
    return sorted(name for name in found if name != MARKER)


def _check_replaceable(output: str | Path) -> None:
    """Fail unless :func:`atomic_dir` may write ``output``: new, empty, or written by it."""
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise FairtuneError(f"output '{output}' exists and is not a folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    marker = path / MARKER
    if not marker.is_file() and (path / "config.json").is_file():
        raise FairtuneError(
            f"output folder '{output}' holds no {MARKER} list of the files fairtune wrote "
            "(an earlier fairtune version's output, or files of yours), so nothing in it is "
            "replaced: choose a new folder, or remove that one yourself"
        )
    listed = marker.read_text(errors="replace").splitlines()[1:] if marker.is_file() else []
    foreign = [name for name in _files(path) if name not in listed]
    if foreign or not marker.is_file():
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise FairtuneError(
            f"output folder '{output}' already holds files that fairtune did not write"
            + (f" ({shown})" if shown else "")
            + ": choose a new folder (or move those files out)"
        )


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
