"""``FORMAT:PATH`` data presets: a published medical set read from its download folder.

:data:`PRESETS` maps a format name (``isic2020``, ``isic2019``, ``ham10000``,
``fitzpatrick17k``, ``chexpert``, ``mimic-cxr``) to its reader and the layouts
it knows; :func:`parse_preset` recognises a ``--data`` value naming one,
``FORMAT:PATH`` with an optional ``:PART`` (``chexpert:/data/CheXpert-v1.0-small:test``).
:func:`formats_help` is the list the command line's help prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fairtune.datasets.chest import (
    CHEXPERT_LAYOUTS,
    MIMIC_LAYOUTS,
    chexpert_valid,
    mimic_patients,
    read_chexpert,
    read_mimic_cxr,
)
from fairtune.datasets.dermoscopy import (
    HAM_LAYOUTS,
    ISIC2019_LAYOUTS,
    read_ham10000,
    read_isic2019,
)
from fairtune.datasets.layouts import NO_ROOTS, Found, ImageRoots, Layout, find_layout
from fairtune.datasets.medical import MedicalTable, folder_of
from fairtune.datasets.skin import (
    FITZPATRICK_LAYOUTS,
    ISIC_LAYOUTS,
    read_fitzpatrick17k,
    read_isic2020,
)
from fairtune.splits import PART_NAMES


@dataclass(frozen=True)
class Preset:
    """A published set: its reader (folder, sensitive attributes, image roots -> table), the
    layouts it is published in and what it reads."""

    name: str
    read: Callable[[str | Path, Sequence[str] | None, ImageRoots], MedicalTable]
    description: str
    layouts: tuple[Layout, ...]
    extra: Callable[[Found], Path | None] = lambda found: None

    def files(self, path: str | Path, images: ImageRoots = NO_ROOTS) -> list[Path]:
        """The table files this preset reads in the download folder ``path`` (its images,
        below the image root, are named by the rows read): what must not be overwritten."""
        found = find_layout(folder_of(path), self.name, self.layouts, images)
        extra = self.extra(found)
        return [found.path(i) for i in range(len(found.tables))] + ([extra] if extra else [])


PRESETS: dict[str, Preset] = {
    "isic2020": Preset(
        "isic2020",
        lambda path, sensitive, images: read_isic2020(path, sensitive, images=images),
        "ISIC 2020 training set (challenge archive, Kaggle, resized Kaggle): malignant; "
        "sex, age (cut at 60)",
        ISIC_LAYOUTS,
    ),
    "isic2019": Preset(
        "isic2019",
        lambda path, sensitive, images: read_isic2019(path, sensitive, images=images),
        "ISIC 2019 training set with its metadata CSV: malignant (MEL, BCC, AK, SCC); "
        "sex, age (cut at 60)",
        ISIC2019_LAYOUTS,
    ),
    "ham10000": Preset(
        "ham10000",
        lambda path, sensitive, images: read_ham10000(path, sensitive, images=images),
        "HAM10000 (ISIC 2018 task 3), metadata and its two image folders: malignant (mel, bcc, "
        "akiec); sex, age (cut at 60)",
        HAM_LAYOUTS,
    ),
    "fitzpatrick17k": Preset(
        "fitzpatrick17k",
        read_fitzpatrick17k,
        "Fitzpatrick17k, images <md5hash>(.jpg) here or in a subfolder: malignant vs benign / "
        "non-neoplastic; skin type I-III vs IV-VI",
        FITZPATRICK_LAYOUTS,
    ),
    "chexpert": Preset(
        "chexpert",
        lambda path, sensitive, images: read_chexpert(path, sensitive=sensitive, images=images),
        "CheXpert v1.0, full or small: No Finding (U-Zeros), frontal views; sex, age (cut at 60)",
        CHEXPERT_LAYOUTS,
        chexpert_valid,
    ),
    "mimic-cxr": Preset(
        "mimic-cxr",
        lambda path, sensitive, images: read_mimic_cxr(path, sensitive=sensitive, images=images),
        "MIMIC-CXR-JPG 2.0.0 or 2.1.0 + MIMIC-IV patients: No Finding (U-Zeros), PA/AP views; "
        "sex, age (cut at 60)",
        MIMIC_LAYOUTS,
        mimic_patients,
    ),
}


@dataclass(frozen=True)
class PresetSpec:
    """A ``--data`` value naming a preset: the preset, its folder and the part (None: the
    command's default part)."""

    preset: Preset
    path: str
    part: str | None


def parse_preset(spec: str) -> PresetSpec | None:
    """The preset ``spec`` names (``FORMAT:PATH[:PART]``), or None when it names none."""
    name, sep, rest = spec.partition(":")
    if not sep or name not in PRESETS or not rest:
        return None
    path, sep, part = rest.rpartition(":")
    if sep and part in PART_NAMES and path:
        return PresetSpec(PRESETS[name], path, part)
    return PresetSpec(PRESETS[name], rest, None)


def formats_help(separator: str = "; ") -> str:
    """The published formats, one ``NAME:DIR`` per preset with what it reads, for ``--help``
    (joined by ``separator``)."""
    return separator.join(f"{name}:DIR ({p.description})" for name, p in PRESETS.items())
