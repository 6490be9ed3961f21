"""``FORMAT:PATH`` data presets: a published medical set read from its download folder.

:data:`PRESETS` maps a format name (``isic2020``, ``fitzpatrick17k``,
``chexpert``, ``mimic-cxr``) to its reader; :func:`parse_preset` recognises a
``--data`` value naming one, ``FORMAT:PATH`` with an optional ``:PART``
(``chexpert:/data/CheXpert-v1.0-small:test``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fairtune.datasets.chest import read_chexpert, read_mimic_cxr
from fairtune.datasets.medical import MedicalTable
from fairtune.datasets.skin import read_fitzpatrick17k, read_isic2020
from fairtune.splits import PART_NAMES


@dataclass(frozen=True)
class Preset:
    """A published set: its reader (folder, sensitive attributes -> table) and what it reads."""

    name: str
    read: Callable[[str | Path, Sequence[str] | None], MedicalTable]
    description: str


PRESETS: dict[str, Preset] = {
    "isic2020": Preset(
        "isic2020",
        lambda path, sensitive: read_isic2020(path, sensitive),
        "ISIC 2020 training set: malignant vs benign; sex, age (cut at 60)",
    ),
    "fitzpatrick17k": Preset(
        "fitzpatrick17k",
        read_fitzpatrick17k,
        "Fitzpatrick17k: malignant vs benign / non-neoplastic; skin type I-III vs IV-VI",
    ),
    "chexpert": Preset(
        "chexpert",
        lambda path, sensitive: read_chexpert(path, sensitive=sensitive),
        "CheXpert v1.0: No Finding (U-Zeros), frontal views; sex, age (cut at 60)",
    ),
    "mimic-cxr": Preset(
        "mimic-cxr",
        lambda path, sensitive: read_mimic_cxr(path, sensitive=sensitive),
        "MIMIC-CXR-JPG 2.0.0 + MIMIC-IV patients: No Finding (U-Zeros), PA/AP views; sex, age",
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
