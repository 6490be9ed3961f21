"""Where a published set's files are: its known download layouts, and its images.

A set is published in several arrangements (the challenge's own archive, a
Kaggle copy, a resized copy, the download folder or its parent). A
:class:`Layout` names the tables one arrangement has and the folders its
images may be in; :func:`find_layout` picks the first layout whose tables are in
the folder, or fails in one line that lists what each layout looks for and names
the closest match. :func:`locate_images` finds, from a sample of rows, where the
images are below the image root and how they are named.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fairtune.errors import FairtuneError

SAMPLE = 32
"""Rows whose images are looked for to tell where a set's images are."""


@dataclass(frozen=True)
class Layout:
    """One published arrangement of a set's files.

    ``tables``: each table it has, as alternative names (the first present is
    read), relative to ``base`` below the folder given (``.``: the folder
    itself; a subfolder for a layout given by its parent folder). ``images``:
    the folders, below the base, its images may be in; with ``needs_images`` one
    of them must exist (it tells this layout from another with the same tables)
    unless the user names the image root.
    """

    name: str
    tables: tuple[tuple[str, ...], ...]
    images: tuple[str, ...] = (".",)
    base: str = "."
    needs_images: bool = False

    def looked_for(self) -> str:
        """What the layout needs, as printed: ``a.csv (or a.csv.gz) + b.csv + images/``."""
        parts = [" or ".join(self._below(n) for n in names) for names in self.tables]
        if self.needs_images:
            parts.append(" or ".join(self._below(d) + "/" for d in self.images))
        return " + ".join(parts)

    def present(self, folder: Path, image_root_given: bool = False) -> list[str] | None:
        """The table names found (one per table, relative to the base), or None when a table
        or a required image folder is missing."""
        base = folder / self.base
        found = [next((n for n in names if (base / n).is_file()), None) for names in self.tables]
        if None in found:
            return None
        images_here = any((base / d).is_dir() for d in self.images)
        if self.needs_images and not image_root_given and not images_here:
            return None
        return [n for n in found if n is not None]

    def score(self, folder: Path) -> int:
        """How many of its tables and image folders are there: the closest layout has most."""
        base = folder / self.base
        tables = sum(any((base / n).is_file() for n in names) for names in self.tables)
        return tables + int(self.needs_images and any((base / d).is_dir() for d in self.images))

    def _below(self, name: str) -> str:
        return name if self.base == "." else f"{self.base}/{name}"


@dataclass(frozen=True)
class Found:
    """The layout found in a folder: the layout, its base folder and its tables' names."""

    layout: Layout
    base: Path
    tables: tuple[str, ...]

    def path(self, index: int) -> Path:
        """The file of the ``index``-th table."""
        return self.base / self.tables[index]


@dataclass(frozen=True)
class ImageRoots:
    """Where a set's images are looked for besides its layout's own folders.

    ``given``: the user's ``--image-root``, the only place then looked in.
    ``saved``: the image root a model was trained with, looked in only when the
    download folder does not hold the images.
    """

    given: Path | None = None
    saved: Path | None = None


NO_ROOTS = ImageRoots()
"""No image root given or saved: the images are looked for in the layout's own folders."""


def find_layout(
    folder: Path, preset: str, layouts: Sequence[Layout], images: ImageRoots = NO_ROOTS
) -> Found:
    """The first of ``layouts`` present in ``folder``; else a one-line error naming, per layout,
    the files looked for, and the closest match."""
    for layout in layouts:
        tables = layout.present(folder, images.given is not None)
        if tables is not None:
            return Found(layout, folder / layout.base, tuple(tables))
    looked = "; ".join(f"{layout.name}: {layout.looked_for()}" for layout in layouts)
    raise FairtuneError(
        f"no published layout of {preset} found in '{folder}'. Looked for {looked}. "
        + _closest(folder, layouts)
    )


def _closest(folder: Path, layouts: Sequence[Layout]) -> str:
    """The layout with the most of its files present, else the folder's file most like a name
    looked for."""
    best = max(layouts, key=lambda layout: layout.score(folder))
    if best.score(folder):
        return f"Closest: {best.name}, which lacks part of it (give its missing files)."
    names = [n for layout in layouts for group in layout.tables for n in group]
    try:
        here = sorted(os.listdir(folder))[:500]
    except OSError:
        here = []
    for candidate in here:
        if difflib.get_close_matches(candidate, names, n=1, cutoff=0.6):
            return f"Closest file here: '{candidate}' (renamed, or another release?)."
    shown = ", ".join(here[:8]) + (", ..." if len(here) > 8 else "") if here else "nothing"
    return f"The folder holds {shown}: give the set's download folder."


@dataclass(frozen=True)
class Images:
    """Where a set's images were found: the image root, each row's path below it, and how
    they are laid out (as printed)."""

    root: Path
    paths: pd.Series
    where: str


def locate_images(
    roots: Sequence[Path], dirs: Sequence[str], names: dict[str, pd.Series]
) -> Images:
    """Each row's image below the first of ``roots`` that holds a sample of them.

    ``dirs`` are the folders below a root the images may be in and ``names`` the
    ways a row's image may be named (pattern as printed -> each row's file name).
    The patterns are ranked by how many of a sample of rows they find; a set whose
    images are spread over several folders is resolved row by row. When none are
    found the first pattern is kept: the missing files are then reported by name.
    """
    sample = next(iter(names.values())).index[:SAMPLE]
    for root in roots:
        hits = {}
        for d in dirs:
            for pattern, files in names.items():
                below = files if d == "." else d + "/" + files
                hits[(d, pattern)] = (below, sum(_exists(root, p) for p in below[sample]))
        ranked = sorted(hits.items(), key=lambda item: -item[1][1])
        found = [(key, below) for key, (below, n) in ranked if n]
        if not found:
            continue
        (d, pattern), best = found[0]
        if hits[(d, pattern)][1] == len(sample) or len(found) == 1:
            return Images(root, best, _where(d, pattern))
        paths = best.copy()
        for row in paths.index:
            paths[row] = next((b[row] for _, b in found if _exists(root, b[row])), best[row])
        return Images(root, paths, " or ".join(sorted({_where(d, p) for (d, p), _ in found})))
    d, pattern = dirs[0], next(iter(names))
    below = names[pattern] if d == "." else d + "/" + names[pattern]
    return Images(roots[0], below, _where(d, pattern) + " (none found)")


def image_folders(layout: Layout, images: ImageRoots, base: Path) -> tuple[list[Path], list[str]]:
    """The roots to look for images in (the given image root, else the base folder then the
    saved root) and the folders below them (the layout's, then the root itself)."""
    roots = [images.given] if images.given is not None else [base]
    if images.given is None and images.saved is not None:
        roots.append(images.saved)
    return roots, list(dict.fromkeys([*layout.images, "."]))


def _exists(root: Path, path: str) -> bool:
    return os.path.isfile(os.path.join(root, path))


def _where(folder: str, pattern: str) -> str:
    return pattern if folder == "." else f"{folder}/{pattern}"


def images_of(found: Found, images: ImageRoots, names: dict[str, pd.Series]) -> Images:
    """Where the images of the layout ``found`` are (:func:`locate_images`), each row named
    in one of the ways ``names`` gives (pattern -> file names)."""
    roots, dirs = image_folders(found.layout, images, found.base)
    return locate_images(roots, dirs, names)
