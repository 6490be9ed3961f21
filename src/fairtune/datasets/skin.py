"""The dermatology sets as published: ISIC 2020 and Fitzpatrick17k, in each layout they are
downloaded in.

Each reader takes the download folder and returns a
:class:`~fairtune.datasets.medical.MedicalTable` (label ``malignant``, 1 for a
malignant lesion).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fairtune.datasets.layouts import NO_ROOTS, ImageRoots, Layout, find_layout, images_of
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
    read_file,
    refuse_duplicates,
    require,
    sex_groups,
)
from fairtune.errors import FairtuneError

MALIGNANT = "malignant"
SKIN_TYPE = "skin_type"
ISIC_FILES = ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv")
ISIC_LAYOUTS = (
    Layout(
        "ISIC 2020 challenge archive",
        (ISIC_FILES,),
        ("train", "ISIC_2020_Training_JPEG/train", "ISIC_2020_Training_JPEG"),
    ),
    Layout(
        "ISIC 2020 on Kaggle (siim-isic-melanoma-classification)",
        (("train.csv",),),
        ("jpeg/train",),
        needs_images=True,
    ),
    Layout(
        "ISIC 2020 resized on Kaggle (jpeg-melanoma-256x256, -512x512, -768x768)",
        (("train.csv",),),
        ("train",),
        needs_images=True,
    ),
)
FITZPATRICK_FILE = "fitzpatrick17k.csv"
FITZPATRICK_LAYOUTS = (
    Layout(
        "Fitzpatrick17k repository",
        ((FITZPATRICK_FILE,),),
        (".", "images", "data", "finalfitz17k", "fitzpatrick17k"),
    ),
)
LIGHT, DARK = "I-III", "IV-VI"
THREE_PARTITIONS = ("malignant", "benign", "non-neoplastic")


def read_isic2020(
    path: str | Path,
    sensitive: Sequence[str] | None = None,
    age_cut: int = AGE_CUT,
    images: ImageRoots = NO_ROOTS,
) -> MedicalTable:
    """Read the ISIC 2020 Challenge training set (SIIM-ISIC Melanoma Classification, 2020).

    Layouts (:data:`ISIC_LAYOUTS`, the first found is read): the challenge's
    ground-truth CSV, ``ISIC_2020_Training_GroundTruth_v2.csv`` (duplicates
    removed) or ``ISIC_2020_Training_GroundTruth.csv``, with the
    ``ISIC_2020_Training_JPEG`` archive unpacked (``train/<image_name>.jpg``); the
    Kaggle competition's ``train.csv`` with ``jpeg/train/``; a resized Kaggle copy
    (256, 512 or 768 px) with ``train.csv`` and ``train/``. Columns:
    ``image_name``, ``patient_id``, ``sex``, ``age_approx``, ``target`` (the
    others are not read). ``images.given`` (``--image-root``) is where the images
    are instead.

    Task: ``malignant`` = ``target`` (1 malignant, 0 benign; a blank target is
    dropped, any other value refused). Attributes: ``sex`` (female / male; blank
    is unknown) and ``age`` (``age_approx`` cut at ``age_cut``: 'under 60' / '60
    and over'; blank is unknown); ``sensitive`` picks which (default sex), and only
    its unknowns are dropped. Patient: ``patient_id``.
    """
    folder = folder_of(path)
    found = find_layout(folder, "isic2020", ISIC_LAYOUTS, images)
    name = found.tables[0]
    raw = read_file(found.path(0))
    require(raw, ["image_name", "patient_id", "sex", "age_approx", "target"], name)
    refuse_duplicates(raw, ["image_name"], str(found.path(0)))
    target = pd.to_numeric(raw["target"], errors="coerce")
    odd = raw["target"].notna() & ~target.isin([0, 1])
    if odd.any():
        values = sorted(map(str, raw.loc[odd, "target"].unique()))[:5]
        raise FairtuneError(
            f"'{found.path(0)}': column target holds {values} in {int(odd.sum())} row(s); the "
            "published file has 1 (malignant) or 0 (benign): recode it"
        )
    located = images_of(found, images, {"<image_name>.jpg": raw["image_name"].astype(str) + ".jpg"})
    frame = pd.DataFrame(
        {
            IMAGE: located.paths,
            MALIGNANT: target,
            SEX: sex_groups(raw["sex"], {"female": "female", "male": "male"}),
            AGE: age_groups(raw["age_approx"], age_cut),
            PATIENT: raw["patient_id"],
        }
    )
    drops = Drops()
    frame = drops.keep(frame, frame[MALIGNANT].notna(), "target blank")
    frame = drops.keep(frame, frame[PATIENT].notna(), "patient_id blank")
    frame[MALIGNANT] = frame[MALIGNANT].astype("int64")
    layout = f"{found.layout.name}, images {located.where}"
    read = ReadSummary((name,), len(raw), tuple(drops.counts), layout)
    unknown = {SEX: "sex unknown (blank)", AGE: "age unknown (blank age_approx)"}
    return finish(frame, located.root, read, unknown, Task(MALIGNANT, (SEX, AGE), sensitive))


def read_fitzpatrick17k(
    path: str | Path, sensitive: Sequence[str] | None = None, images: ImageRoots = NO_ROOTS
) -> MedicalTable:
    """Read Fitzpatrick17k (Groh et al. 2021), as in its repository's ``fitzpatrick17k.csv``.

    Columns: ``md5hash``, ``fitzpatrick_scale`` (older releases: ``fitzpatrick``),
    ``fitzpatrick_centaur``, ``label``, ``nine_partition_label``,
    ``three_partition_label``, ``qc``, ``url``, ``url_alphanum``. The repository
    ships URLs only; each image is saved under its md5hash, as ``<md5hash>.jpg``
    or, as the dataset's own scripts save them, ``<md5hash>`` without an
    extension, next to the CSV or in a subfolder (``images/``, ``data/``,
    ``finalfitz17k/``, ``fitzpatrick17k/``) or below ``images.given``
    (``--image-root``).

    Task: ``malignant`` = 1 where ``three_partition_label`` is 'malignant', 0 where
    it is 'benign' or 'non-neoplastic' (other values are dropped and counted).
    Attribute: ``skin_type``, Fitzpatrick types 1-3 'I-III' vs 4-6 'IV-VI'; -1 or
    blank is unknown, dropped and counted. The set has no patient ids: each image
    is its own ``patient`` (its md5hash); an image listed twice is read once.
    """
    folder = folder_of(path)
    found = find_layout(folder, "fitzpatrick17k", FITZPATRICK_LAYOUTS, images)
    name = found.tables[0]
    raw = read_file(found.path(0))
    scale = "fitzpatrick_scale" if "fitzpatrick_scale" in raw.columns else "fitzpatrick"
    require(raw, ["md5hash", scale, "three_partition_label"], name)
    partition = raw["three_partition_label"].astype("string").str.strip()
    types = pd.to_numeric(raw[scale], errors="coerce")
    skin = pd.Series(None, index=raw.index, dtype=object)
    skin[types.between(1, 3)] = LIGHT
    skin[types.between(4, 6)] = DARK
    md5 = raw["md5hash"].astype(str)
    located = images_of(found, images, {"<md5hash>.jpg": md5 + ".jpg", "<md5hash>": md5})
    frame = pd.DataFrame(
        {
            IMAGE: located.paths,
            MALIGNANT: partition.eq("malignant").fillna(False).astype("int64"),
            SKIN_TYPE: skin,
            PATIENT: raw["md5hash"],
        }
    )
    drops = Drops()
    other = "three_partition_label not one of " + ", ".join(THREE_PARTITIONS)
    frame = drops.keep(frame, partition.isin(THREE_PARTITIONS), other)
    repeated = ~frame[PATIENT].duplicated(keep="first")
    frame = drops.keep(frame, repeated, "md5hash repeated: the same image twice, the first kept")
    layout = f"{found.layout.name}, images {located.where}"
    read = ReadSummary((name,), len(raw), tuple(drops.counts), layout)
    unknown = {SKIN_TYPE: f"Fitzpatrick type unknown ({scale} -1 or blank)"}
    return finish(frame, located.root, read, unknown, Task(MALIGNANT, (SKIN_TYPE,), sensitive))
