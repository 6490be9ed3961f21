"""The chest X-ray sets as published: CheXpert and MIMIC-CXR-JPG.

Both carry the 14 observations of the CheXpert labeler, each 1 (positive), 0
(negative), -1 (uncertain) or blank (not mentioned). A reader codes one chosen
finding as the binary label by an explicit rule for -1 (:class:`ChestOptions`)
and, as the labeler's convention has it, reads blank as negative. With the
U-Zeros or U-Ones rule no row is dropped and every finding is coded alike, so the
table carries all 14 columns (``--label Edema`` picks another finding); with
``drop`` only the chosen finding's column, its uncertain rows dropped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from fairtune.datasets.layouts import NO_ROOTS, Found, ImageRoots, Layout, find_layout, images_of
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
from fairtune.settings import check, setting

FINDINGS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
UNCERTAIN_RULES = ("zeros", "ones", "drop")
MIMIC_FRONTAL = ("PA", "AP")
_UNKNOWN = {SEX: "sex unknown", AGE: "age unknown"}
CHEXPERT_LAYOUTS = (
    Layout("CheXpert v1.0 download folder (full or small)", (("train.csv",),)),
    Layout("CheXpert-v1.0-small's parent folder", (("train.csv",),), base="CheXpert-v1.0-small"),
    Layout("CheXpert-v1.0's parent folder", (("train.csv",),), base="CheXpert-v1.0"),
)
_MIMIC_TABLES = (
    ("mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.0.0-metadata.csv"),
    ("mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.0.0-chexpert.csv"),
)
_MIMIC_210 = ("mimic-cxr-2.1.0-test-set-labeled.csv",)
MIMIC_LAYOUTS = (
    Layout("MIMIC-CXR-JPG 2.1.0", (*_MIMIC_TABLES, _MIMIC_210)),
    Layout("MIMIC-CXR-JPG 2.0.0", _MIMIC_TABLES),
    Layout("MIMIC-CXR-JPG 2.1.0 (its parent folder)", (*_MIMIC_TABLES, _MIMIC_210), base="2.1.0"),
    Layout("MIMIC-CXR-JPG 2.0.0 (its parent folder)", _MIMIC_TABLES, base="2.0.0"),
)


@dataclass(frozen=True)
class ChestOptions:
    """How a chest X-ray set's labels and attributes are read."""

    finding: str = setting(
        "No Finding", "the observation to predict (as MEDFAIR does: No Finding)", choices=FINDINGS
    )
    uncertain: str = setting(
        "zeros",
        "uncertain (-1) labels: 'zeros' negative (U-Zeros, as MEDFAIR), 'ones' positive "
        "(U-Ones), 'drop' leaves their rows out",
        choices=UNCERTAIN_RULES,
    )
    age_cut: int = setting(AGE_CUT, "age groups: under this age, and this age and over", low=1)
    frontal_only: bool = setting(True, "keep frontal views only")

    def __post_init__(self) -> None:
        check(self)


def read_chexpert(
    path: str | Path,
    options: ChestOptions = ChestOptions(),
    sensitive: Sequence[str] | None = None,
    images: ImageRoots = NO_ROOTS,
) -> MedicalTable:
    """Read CheXpert v1.0 (Irvin et al. 2019; the full or the 'small' download) as published.

    ``path`` is the folder holding ``train.csv`` (and ``valid.csv``, read too when
    present), or its parent folder (:data:`CHEXPERT_LAYOUTS`), with columns
    ``Path``, ``Sex``, ``Age``, ``Frontal/Lateral``, ``AP/PA`` and the 14
    observations. ``Path`` starts with the download's own folder name
    (``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``);
    images are read from the download folder onwards (``train/patient00001/...``),
    or below ``images.given`` (``--image-root``).

    Task: ``options.finding`` coded by ``options.uncertain`` (default: No Finding,
    U-Zeros), blank negative; lateral views dropped unless
    ``options.frontal_only`` is off. Attributes: ``sex`` (Female / Male;
    'Unknown' or blank dropped when used) and ``age`` (``Age`` cut at
    ``options.age_cut``); ``sensitive`` picks which (default sex). Patient: the
    ``patientNNNNN`` part of ``Path``. A ``Path`` listed twice is refused.
    """
    found = find_layout(folder_of(path), "chexpert", CHEXPERT_LAYOUTS, images)
    raw, files, valid = read_file(found.path(0)), [found.tables[0]], chexpert_valid(found)
    if valid is not None:
        raw = pd.concat([raw, read_file(valid)], ignore_index=True)
        files.append("valid.csv")
    require(raw, ["Path", "Sex", "Age", "Frontal/Lateral", options.finding], ", ".join(files))
    refuse_duplicates(raw, ["Path"], " + ".join(str(found.base / f) for f in files))
    drops = Drops()
    patient = raw["Path"].astype(str).str.extract(r"(patient\d+)", expand=False)
    raw = drops.keep(raw, patient.notna(), "no patientNNNNN in Path")
    if options.frontal_only:
        raw = drops.keep(raw, raw["Frontal/Lateral"] == "Frontal", "lateral view")
    labels, raw = _code_findings(raw, options, drops)
    written = raw["Path"].astype(str)
    names = {"<Path below the download folder>": written.map(_inside_download), "<Path>": written}
    located = images_of(found, images, names)
    frame = pd.DataFrame(
        {
            IMAGE: located.paths,
            **labels,
            SEX: sex_groups(raw["Sex"], {"Female": "female", "Male": "male"}),
            AGE: age_groups(raw["Age"], options.age_cut),
            PATIENT: patient[raw.index],
        }
    )
    version = PurePosixPath(written.iloc[0]).parts[0] if len(written) else "no rows"
    layout = f"{found.layout.name}: {version}, images {located.where}"
    read = ReadSummary(tuple(files), len(patient), tuple(drops.counts), layout)
    unknown = {SEX: "sex unknown ('Unknown' or blank)", AGE: "age unknown (blank)"}
    task = Task(options.finding, (SEX, AGE), sensitive)
    return finish(frame, located.root, read, unknown, task)


def read_mimic_cxr(
    path: str | Path,
    options: ChestOptions = ChestOptions(),
    sensitive: Sequence[str] | None = None,
    images: ImageRoots = NO_ROOTS,
) -> MedicalTable:
    """Read MIMIC-CXR-JPG 2.0.0 or 2.1.0 (Johnson et al. 2019) with sex and age from MIMIC-IV.

    ``path`` (the version's folder, or its parent: :data:`MIMIC_LAYOUTS`) holds
    ``mimic-cxr-2.0.0-metadata.csv`` and ``mimic-cxr-2.0.0-chexpert.csv`` (or
    their published ``.gz``; 2.1.0 keeps these names and adds
    ``mimic-cxr-2.1.0-test-set-labeled.csv``), joined on ``subject_id`` +
    ``study_id`` (images of a study without labels are dropped), the images under
    ``files/p{first two digits of subject_id}/p{subject_id}/s{study_id}/{dicom_id}.jpg``
    (or below ``images.given``, ``--image-root``), and MIMIC-IV's
    ``patients.csv(.gz)`` (in the folder, its ``hosp/`` or ``core/`` folder, or
    PhysioNet's ``../../mimiciv/VERSION/hosp/``) for ``gender`` and
    ``anchor_age`` by ``subject_id``. A study listed twice in the labels, or an
    image twice in the metadata, is refused.

    Task: as :func:`read_chexpert` (``options``); views other than PA and AP
    (``ViewPosition``) dropped unless ``options.frontal_only`` is off.
    Attributes: ``sex`` (gender F / M) and ``age`` (``anchor_age`` cut at
    ``options.age_cut``); a subject missing from ``patients`` has both unknown.
    Patient: ``subject_id``.
    """
    found = find_layout(folder_of(path), "mimic-cxr", MIMIC_LAYOUTS, images)
    (meta_name, labels_name), keys = found.tables[:2], ["subject_id", "study_id"]
    meta, labels = read_file(found.path(0)), read_file(found.path(1))
    patients, patients_name = _patients(found)
    require(meta, ["dicom_id", *keys, "ViewPosition"], meta_name)
    require(labels, [*keys, options.finding], labels_name)
    require(patients, ["subject_id", "gender", "anchor_age"], patients_name)
    refuse_duplicates(meta, ["dicom_id"], str(found.path(0)))
    refuse_duplicates(labels, keys, str(found.path(1)))
    drops = Drops()
    raw = meta.merge(labels, on=keys, how="left", indicator=True, validate="many_to_one")
    raw = drops.keep(raw, raw.pop("_merge") == "both", f"study not in {labels_name}")
    if options.frontal_only:
        frontal = raw["ViewPosition"].isin(MIMIC_FRONTAL)
        raw = drops.keep(raw, frontal, "not a frontal view (ViewPosition not PA or AP)")
    coded, raw = _code_findings(raw, options, drops)
    people = patients.drop_duplicates("subject_id").set_index("subject_id")
    subject = raw["subject_id"].astype("int64")
    files = [
        f"files/p{str(s)[:2]}/p{s}/s{t}/{d}.jpg"
        for s, t, d in zip(subject, raw["study_id"], raw["dicom_id"], strict=True)
    ]
    where = "files/pXX/pSUBJECT/sSTUDY/DICOM.jpg"
    located = images_of(found, images, {where: pd.Series(files, index=raw.index, dtype=object)})
    frame = pd.DataFrame(
        {
            IMAGE: located.paths,
            **coded,
            SEX: sex_groups(subject.map(people["gender"]), {"F": "female", "M": "male"}),
            AGE: age_groups(subject.map(people["anchor_age"]), options.age_cut),
            PATIENT: subject,
        }
    )
    layout = f"{found.layout.name}, images {located.where}"
    read = ReadSummary(
        (meta_name, labels_name, patients_name), len(meta), tuple(drops.counts), layout
    )
    unknown = {a: f"{_UNKNOWN[a]} (subject not in {patients_name})" for a in (SEX, AGE)}
    task = Task(options.finding, (SEX, AGE), sensitive)
    return finish(frame, located.root, read, unknown, task)


def _code_findings(
    raw: pd.DataFrame, options: ChestOptions, drops: Drops
) -> tuple[dict[str, pd.Series], pd.DataFrame]:
    """The label columns (0/1) by the uncertain rule, blank negative, and the rows kept: with
    'drop', the chosen finding's uncertain rows are dropped and only its column is coded."""
    values = pd.to_numeric(raw[options.finding], errors="coerce")
    if options.uncertain == "drop":
        raw = drops.keep(raw, values != -1, f"{options.finding} uncertain (-1)")
        names = [options.finding]
    else:
        names = [f for f in FINDINGS if f in raw.columns]
    uncertain = 1 if options.uncertain == "ones" else 0
    coded = {}
    for name in names:
        numbers = pd.to_numeric(raw[name], errors="coerce").fillna(0)
        odd = sorted(set(numbers) - {-1, 0, 1})
        if odd:
            raise FairtuneError(f"'{name}' holds {odd[:5]}; the labeler writes 1, 0, -1 or blank")
        coded[name] = numbers.replace(-1, uncertain).astype("int64")
    return coded, raw


def _inside_download(path: str) -> str:
    """A CheXpert ``Path`` relative to the download folder: its first part (the folder's own
    name, e.g. ``CheXpert-v1.0-small``) removed, unless it starts at ``train``/``valid``."""
    parts = PurePosixPath(path).parts
    return str(PurePosixPath(*parts[1:])) if parts[0] not in ("train", "valid") else path


def _patients(found: Found) -> tuple[pd.DataFrame, str]:
    """MIMIC-IV's patients table and its name as printed (relative to the download folder)."""
    path = mimic_patients(found)
    if path is None:
        raise FairtuneError(
            f"MIMIC-IV's patients.csv(.gz) not found in '{found.base}' (nor its hosp/ or core/, "
            "nor ../../mimiciv/VERSION/hosp/): it gives the sex and age of MIMIC-CXR's subjects"
        )
    return read_file(path), os.path.relpath(path, found.base).replace(os.sep, "/")


def mimic_patients(found: Found) -> Path | None:
    """MIMIC-IV's patients.csv(.gz): in the folder, its ``hosp/`` (2.x) or ``core/`` (1.0), or
    PhysioNet's ``mimiciv/VERSION/hosp/`` beside ``mimic-cxr-jpg/VERSION`` (newest first)."""
    base = found.base
    beside = sorted((base.parent.parent / "mimiciv").glob("*/hosp"), reverse=True)
    for folder in [base, base / "hosp", base / "core", *beside]:
        for name in ("patients.csv", "patients.csv.gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def chexpert_valid(found: Found) -> Path | None:
    """CheXpert's ``valid.csv`` beside ``train.csv``, when present."""
    path = found.base / "valid.csv"
    return path if path.is_file() else None
