"""The dermoscopy sets of the ISIC archive before 2020: ISIC 2019 and HAM10000 (ISIC 2018).

Both code the diagnosis benign vs malignant as MEDFAIR does: melanoma, basal
cell carcinoma, actinic keratosis / intraepithelial carcinoma and squamous cell
carcinoma are malignant; nevus, benign keratosis, dermatofibroma and vascular
lesions benign. Each reader returns a
:class:`~fairtune.datasets.medical.MedicalTable` (label ``malignant``).
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
from fairtune.datasets.skin import MALIGNANT

ISIC2019_MALIGNANT = ("MEL", "BCC", "AK", "SCC")
ISIC2019_BENIGN = ("NV", "BKL", "DF", "VASC")
ISIC2019_LAYOUTS = (
    Layout(
        "ISIC 2019 challenge archive",
        (("ISIC_2019_Training_GroundTruth.csv",), ("ISIC_2019_Training_Metadata.csv",)),
        ("ISIC_2019_Training_Input", "ISIC_2019_Training_Input/ISIC_2019_Training_Input"),
    ),
)
HAM_MALIGNANT = ("mel", "bcc", "akiec")
HAM_BENIGN = ("nv", "bkl", "df", "vasc")
HAM_LAYOUTS = (
    Layout(
        "HAM10000 (Harvard Dataverse or Kaggle)",
        (("HAM10000_metadata.csv", "HAM10000_metadata"),),
        (
            "HAM10000_images_part_1",
            "HAM10000_images_part_2",
            "ham10000_images_part_1",
            "ham10000_images_part_2",
            "HAM10000_images",
        ),
    ),
)
_SEX = {"female": "female", "male": "male"}


def read_isic2019(
    path: str | Path,
    sensitive: Sequence[str] | None = None,
    age_cut: int = AGE_CUT,
    images: ImageRoots = NO_ROOTS,
) -> MedicalTable:
    """Read the ISIC 2019 Challenge training set (BCN20000, HAM10000 and MSK images).

    ``path`` holds ``ISIC_2019_Training_GroundTruth.csv`` (``image`` and one 0/1
    column per diagnosis: MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK) and
    ``ISIC_2019_Training_Metadata.csv`` (``image``, ``age_approx``,
    ``anatom_site_general``, ``lesion_id``, ``sex``), joined on ``image``; the
    images are ``ISIC_2019_Training_Input/<image>.jpg`` (or below
    ``images.given``, ``--image-root``).

    Task: ``malignant`` = 1 for MEL, BCC, AK or SCC, 0 for NV, BKL, DF or VASC;
    rows with neither (UNK) are dropped and counted. Attributes: ``sex`` and
    ``age`` (``age_approx`` cut at ``age_cut``), as ISIC 2020. Patient: the
    ``lesion_id`` (the set has no patient ids; blank for some images, which are
    then their own).
    """
    folder = folder_of(path)
    found = find_layout(folder, "isic2019", ISIC2019_LAYOUTS, images)
    truth_name, meta_name = found.tables
    truth, meta = read_file(found.path(0)), read_file(found.path(1))
    require(truth, ["image", *ISIC2019_MALIGNANT, *ISIC2019_BENIGN], truth_name)
    require(meta, ["image", "age_approx", "sex"], meta_name)
    refuse_duplicates(truth, ["image"], str(found.path(0)))
    refuse_duplicates(meta, ["image"], str(found.path(1)))
    raw = truth.merge(meta, on="image", how="left", indicator=True)
    lesion = raw["lesion_id"] if "lesion_id" in raw.columns else pd.Series(None, index=raw.index)
    located = images_of(found, images, {"<image>.jpg": raw["image"].astype(str) + ".jpg"})
    malignant = raw[list(ISIC2019_MALIGNANT)].eq(1).any(axis=1)
    benign = raw[list(ISIC2019_BENIGN)].eq(1).any(axis=1)
    frame = pd.DataFrame(
        {
            IMAGE: located.paths,
            MALIGNANT: malignant.astype("int64"),
            SEX: sex_groups(raw["sex"], _SEX),
            AGE: age_groups(raw["age_approx"], age_cut),
            PATIENT: lesion.fillna(raw["image"]),
        }
    )
    drops = Drops()
    frame = drops.keep(frame, raw.pop("_merge") == "both", f"image not in {meta_name}")
    frame = drops.keep(frame, (malignant ^ benign)[frame.index], "diagnosis UNK (or none)")
    layout = f"{found.layout.name}, images {located.where}"
    read = ReadSummary((truth_name, meta_name), len(raw), tuple(drops.counts), layout)
    unknown = {SEX: "sex unknown (blank)", AGE: "age unknown (blank age_approx)"}
    return finish(frame, located.root, read, unknown, Task(MALIGNANT, (SEX, AGE), sensitive))


def read_ham10000(
    path: str | Path,
    sensitive: Sequence[str] | None = None,
    age_cut: int = AGE_CUT,
    images: ImageRoots = NO_ROOTS,
) -> MedicalTable:
    """Read HAM10000 (Tschandl et al. 2018; the ISIC 2018 task 3 training set).

    ``path`` holds ``HAM10000_metadata.csv`` (``HAM10000_metadata`` in the
    Dataverse download): ``lesion_id``, ``image_id``, ``dx``, ``dx_type``,
    ``age``, ``sex``, ``localization``; the images are
    ``<image_id>.jpg`` spread over its two folders, ``HAM10000_images_part_1/``
    and ``HAM10000_images_part_2/`` (each image is looked for in both), or below
    ``images.given`` (``--image-root``).

    Task: ``malignant`` = 1 for ``dx`` mel, bcc or akiec, 0 for nv, bkl, df or
    vasc (other values dropped and counted). Attributes: ``sex`` (female / male;
    'unknown' or blank is unknown) and ``age`` cut at ``age_cut``; ``sensitive``
    picks which (default sex). Patient: ``lesion_id`` (the set has no patient
    ids; a lesion's images stay together).
    """
    folder = folder_of(path)
    found = find_layout(folder, "ham10000", HAM_LAYOUTS, images)
    name = found.tables[0]
    raw = read_file(found.path(0))
    require(raw, ["lesion_id", "image_id", "dx", "age", "sex"], name)
    refuse_duplicates(raw, ["image_id"], str(found.path(0)))
    dx = raw["dx"].astype("string").str.strip()
    located = images_of(found, images, {"<image_id>.jpg": raw["image_id"].astype(str) + ".jpg"})
    frame = pd.DataFrame(
        {
            IMAGE: located.paths,
            MALIGNANT: dx.isin(HAM_MALIGNANT).fillna(False).astype("int64"),
            SEX: sex_groups(raw["sex"], _SEX),
            AGE: age_groups(raw["age"], age_cut),
            PATIENT: raw["lesion_id"],
        }
    )
    drops = Drops()
    known = dx.isin(HAM_MALIGNANT + HAM_BENIGN)
    frame = drops.keep(frame, known, "dx not one of " + ", ".join(HAM_MALIGNANT + HAM_BENIGN))
    frame = drops.keep(frame, frame[PATIENT].notna(), "lesion_id blank")
    layout = f"{found.layout.name}, images {located.where}"
    read = ReadSummary((name,), len(raw), tuple(drops.counts), layout)
    unknown = {SEX: "sex unknown ('unknown' or blank)", AGE: "age unknown (blank)"}
    return finish(frame, located.root, read, unknown, Task(MALIGNANT, (SEX, AGE), sensitive))
