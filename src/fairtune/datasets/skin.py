"""The dermatology sets as published: ISIC 2020 and Fitzpatrick17k.

Each reader takes the download folder and returns a
:class:`~fairtune.datasets.medical.MedicalTable` (label ``malignant``, 1 for a
malignant lesion).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fairtune.datasets.medical import (
    AGE,
    AGE_CUT,
    IMAGE,
    PATIENT,
    SEX,
    Drops,
    MedicalTable,
    ReadSummary,
    Task,
    age_groups,
    finish,
    folder_of,
    read_csv,
    require,
    sex_groups,
)
from fairtune.errors import FairtuneError

MALIGNANT = "malignant"
SKIN_TYPE = "skin_type"
ISIC_FILES = ("ISIC_2020_Training_GroundTruth.csv", "ISIC_2020_Training_GroundTruth_v2.csv")
FITZPATRICK_FILE = "fitzpatrick17k.csv"
LIGHT, DARK = "I-III", "IV-VI"
THREE_PARTITIONS = ("malignant", "benign", "non-neoplastic")


def read_isic2020(
    path: str | Path, sensitive: Sequence[str] | None = None, age_cut: int = AGE_CUT
) -> MedicalTable:
    """Read the ISIC 2020 Challenge training set (SIIM-ISIC Melanoma Classification, 2020).

    Follows the challenge's ground-truth CSV, ``ISIC_2020_Training_GroundTruth.csv``
    (or the later ``..._v2.csv`` with duplicates removed): ``image_name``,
    ``patient_id``, ``sex``, ``age_approx``, ``anatom_site_general_challenge``,
    ``diagnosis``, ``benign_malignant``, ``target``; images are
    ``train/<image_name>.jpg`` under ``path`` (the ``ISIC_2020_Training_JPEG``
    archive unpacked).

    Task: ``malignant`` = ``target`` (1 malignant, 0 benign). Attributes: ``sex``
    (female / male; blank is unknown) and ``age`` (``age_approx`` cut at
    ``age_cut``: 'under 60' / '60 and over'; blank is unknown); ``sensitive``
    picks which (default sex), and only its unknowns are dropped. Patient:
    ``patient_id``.
    """
    folder = folder_of(path)
    raw, name = _first_found(folder, ISIC_FILES)
    require(raw, ["image_name", "patient_id", "sex", "age_approx", "target"], name)
    frame = pd.DataFrame(
        {
            IMAGE: "train/" + raw["image_name"].astype(str) + ".jpg",
            MALIGNANT: pd.to_numeric(raw["target"], errors="coerce"),
            SEX: sex_groups(raw["sex"], {"female": "female", "male": "male"}),
            AGE: age_groups(raw["age_approx"], age_cut),
            PATIENT: raw["patient_id"],
        }
    )
    drops = Drops()
    frame = drops.keep(frame, frame[MALIGNANT].isin([0, 1]), "target not 0 or 1")
    frame = drops.keep(frame, frame[PATIENT].notna(), "patient_id blank")
    frame[MALIGNANT] = frame[MALIGNANT].astype("int64")
    read = ReadSummary((name,), len(raw), tuple(drops.counts))
    unknown = {SEX: "sex unknown (blank)", AGE: "age unknown (blank age_approx)"}
    return finish(frame, folder, read, unknown, Task(MALIGNANT, (SEX, AGE), sensitive))


def read_fitzpatrick17k(path: str | Path, sensitive: Sequence[str] | None = None) -> MedicalTable:
    """Read Fitzpatrick17k (Groh et al. 2021), as in its repository's ``fitzpatrick17k.csv``.

    Columns: ``md5hash``, ``fitzpatrick_scale`` (older releases: ``fitzpatrick``),
    ``fitzpatrick_centaur``, ``label``, ``nine_partition_label``,
    ``three_partition_label``, ``qc``, ``url``, ``url_alphanum``; images are
    ``<md5hash>.jpg`` under ``path`` (the repository ships URLs only: save each
    image under its md5hash).

    Task: ``malignant`` = 1 where ``three_partition_label`` is 'malignant', 0 where
    it is 'benign' or 'non-neoplastic' (other values are dropped and counted).
    Attribute: ``skin_type``, Fitzpatrick types 1-3 'I-III' vs 4-6 'IV-VI'; -1 or
    blank is unknown, dropped and counted. The set has no patient ids: each image
    is its own ``patient`` (its md5hash).
    """
    folder = folder_of(path)
    raw, name = read_csv(folder, FITZPATRICK_FILE)
    scale = "fitzpatrick_scale" if "fitzpatrick_scale" in raw.columns else "fitzpatrick"
    require(raw, ["md5hash", scale, "three_partition_label"], name)
    partition = raw["three_partition_label"].astype("string").str.strip()
    types = pd.to_numeric(raw[scale], errors="coerce")
    skin = pd.Series(None, index=raw.index, dtype=object)
    skin[types.between(1, 3)] = LIGHT
    skin[types.between(4, 6)] = DARK
    frame = pd.DataFrame(
        {
            IMAGE: raw["md5hash"].astype(str) + ".jpg",
            MALIGNANT: partition.eq("malignant").fillna(False).astype("int64"),
            SKIN_TYPE: skin,
            PATIENT: raw["md5hash"],
        }
    )
    drops = Drops()
    other = "three_partition_label not one of " + ", ".join(THREE_PARTITIONS)
    frame = drops.keep(frame, partition.isin(THREE_PARTITIONS), other)
    read = ReadSummary((name,), len(raw), tuple(drops.counts))
    unknown = {SKIN_TYPE: f"Fitzpatrick type unknown ({scale} -1 or blank)"}
    return finish(frame, folder, read, unknown, Task(MALIGNANT, (SKIN_TYPE,), sensitive))


def _first_found(folder: Path, names: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """The first of ``names`` present in ``folder``."""
    for name in names:
        if (folder / name).is_file():
            return read_csv(folder, name)
    raise FairtuneError(f"none of {', '.join(names)} found in '{folder}'")
