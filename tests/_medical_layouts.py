"""Small synthetic download folders of the published medical sets, one per common layout.

Each builder writes the set's tables as published (the columns a reader needs and
a few it ignores) and tiny images, for ``PATIENTS`` patients spread evenly over
the (label, group) cells so a patient-level 60/20/20 split works; a patient has
one or two images. :data:`LAYOUTS` lists every layout with the layout name its
reader reports.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from fairtune.datasets.chest import FINDINGS

PATIENTS = 24


@dataclass(frozen=True)
class Person:
    """One synthetic patient: id number, label, sex, age and image count."""

    n: int
    label: int
    sex: str
    age: int
    images: int


def people(count: int | None = None) -> list[Person]:
    """``count`` patients (default :data:`PATIENTS`, read at call time) cycling through the
    four (sex, label) cells, one or two images each."""
    count = PATIENTS if count is None else count
    return [
        Person(
            i,
            i % 2,
            ("female", "male")[(i // 2) % 2],
            (35, 70)[(i // 4) % 2] + i % 3,
            1 + i % 3 % 2,
        )
        for i in range(count)
    ]


def image(path: Path, shade: int) -> None:
    """A tiny JPEG, saved under ``path`` as given (with or without an extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.new("RGB", (12, 12), color=(shade, 255 - shade, (shade * 7) % 256))
    rgb.save(path, format="JPEG")


def write_gz(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        frame.to_csv(handle, index=False)


def _shade(person: Person, k: int) -> int:
    return (180 if person.label else 60) + 10 * k


# ---------------------------------------------------------------- ISIC 2020


def _isic2020_rows() -> list[dict]:
    rows = []
    for p in people():
        for k in range(p.images):
            rows.append(
                {
                    "image_name": f"ISIC_{p.n * 10 + k:07d}",
                    "patient_id": f"IP_{p.n:07d}",
                    "sex": p.sex,
                    "age_approx": float(p.age),
                    "anatom_site_general_challenge": "torso",
                    "diagnosis": "melanoma" if p.label else "nevus",
                    "benign_malignant": "malignant" if p.label else "benign",
                    "target": p.label,
                    "_shade": _shade(p, k),
                }
            )
    return rows


def isic2020(folder: Path, table: str, images: str) -> Path:
    """ISIC 2020: ``table`` (the challenge's ground truth or Kaggle's train.csv) and the
    images in ``images`` below ``folder``."""
    frame = pd.DataFrame(_isic2020_rows())
    for name, shade in zip(frame["image_name"], frame.pop("_shade"), strict=True):
        image(folder / images / f"{name}.jpg", shade)
    if table == "train.csv":  # Kaggle's copy adds the tfrecord and size columns
        frame = frame.assign(tfrecord=0, width=6000, height=4000)
    frame.to_csv(folder / table, index=False)
    return folder


# ---------------------------------------------------------------- ISIC 2019, HAM10000


def isic2019(folder: Path) -> Path:
    """ISIC 2019: one-hot ground truth, metadata with lesion ids, ISIC_2019_Training_Input/."""
    truth, meta = [], []
    classes = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
    for p in people():
        for k in range(p.images):
            name = f"ISIC_{p.n * 10 + k:07d}"
            dx = ("MEL", "BCC")[k % 2] if p.label else ("NV", "BKL")[k % 2]
            truth.append({"image": name, **{c: float(c == dx) for c in classes}})
            meta.append(
                {
                    "image": name,
                    "age_approx": float(p.age),
                    "anatom_site_general": "anterior torso",
                    "lesion_id": f"BCN_{p.n:07d}",
                    "sex": p.sex,
                }
            )
            image(folder / "ISIC_2019_Training_Input" / f"{name}.jpg", _shade(p, k))
    pd.DataFrame(truth).to_csv(folder / "ISIC_2019_Training_GroundTruth.csv", index=False)
    pd.DataFrame(meta).to_csv(folder / "ISIC_2019_Training_Metadata.csv", index=False)
    return folder


def ham10000(folder: Path, metadata: str = "HAM10000_metadata.csv") -> Path:
    """HAM10000: the metadata and its images spread over its two folders."""
    rows = []
    for p in people():
        for k in range(p.images):
            name = f"ISIC_{p.n * 10 + k:07d}"
            rows.append(
                {
                    "lesion_id": f"HAM_{p.n:07d}",
                    "image_id": name,
                    "dx": ("mel", "bcc")[k % 2] if p.label else ("nv", "bkl")[k % 2],
                    "dx_type": "histo",
                    "age": float(p.age),
                    "sex": p.sex,
                    "localization": "back",
                }
            )
            part = f"HAM10000_images_part_{1 + (p.n + k) % 2}"
            image(folder / part / f"{name}.jpg", _shade(p, k))
    pd.DataFrame(rows).to_csv(folder / metadata, index=False)
    return folder


# ---------------------------------------------------------------- Fitzpatrick17k


def fitzpatrick(folder: Path, images: str = ".", extension: str = ".jpg") -> Path:
    """Fitzpatrick17k: the repository's CSV, each image saved under its md5hash (with
    ``extension``, possibly none) in ``images``."""
    rows = []
    for p in people():
        md5 = hashlib.md5(f"image {p.n}".encode()).hexdigest()
        skin = (2, 5)[(p.n // 2) % 2]
        rows.append(
            {
                "md5hash": md5,
                "fitzpatrick_scale": skin,
                "fitzpatrick_centaur": skin,
                "label": "melanoma" if p.label else "psoriasis",
                "nine_partition_label": "malignant melanoma" if p.label else "inflammatory",
                "three_partition_label": "malignant" if p.label else "non-neoplastic",
                "qc": "",
                "url": f"https://example.org/{md5}.jpg",
                "url_alphanum": f"httpsexampleorg{md5}jpg.jpg",
            }
        )
        image(folder / images / f"{md5}{extension}", _shade(p, 0))
    pd.DataFrame(rows).to_csv(folder / "fitzpatrick17k.csv", index=False)
    return folder


# ---------------------------------------------------------------- CheXpert, MIMIC-CXR


def chexpert(folder: Path, version: str = "CheXpert-v1.0-small") -> Path:
    """CheXpert: train.csv and valid.csv whose Path starts with ``version``, images below."""
    rows = []
    for p in people():
        for study in range(1, p.images + 1):
            for view, lateral in (("view1_frontal", False), ("view2_lateral", True)):
                tail = f"train/patient{p.n + 1:05d}/study{study}/{view}.jpg"
                row = {
                    "Path": f"{version}/{tail}",
                    "Sex": p.sex.title(),
                    "Age": p.age,
                    "Frontal/Lateral": "Lateral" if lateral else "Frontal",
                    "AP/PA": None if lateral else "AP",
                    **{f: None for f in FINDINGS},
                    "No Finding": 1.0 if p.label else None,
                    "Edema": None if p.label else -1.0,
                }
                rows.append(row)
                if not lateral:
                    image(folder / tail, _shade(p, study))
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / "train.csv", index=False)
    frame.iloc[:0].to_csv(folder / "valid.csv", index=False)
    return folder


def mimic(folder: Path, version: str = "2.0.0", patients: Path | None = None) -> Path:
    """MIMIC-CXR-JPG ``version``: the gzip tables, files/ and MIMIC-IV's patients table (in
    ``hosp/``, or at ``patients``)."""
    meta, labels, people_rows = [], [], []
    for p in people():
        subject = 10000000 + p.n * 1000
        people_rows.append(
            {
                "subject_id": subject,
                "gender": p.sex[0].upper(),
                "anchor_age": p.age,
                "anchor_year": 2180,
                "anchor_year_group": "2014 - 2016",
                "dod": None,
            }
        )
        for k in range(p.images):
            study, dicom = 50000000 + p.n * 10 + k, f"{p.n:04d}{k}-dicom"
            meta.append(
                {
                    "dicom_id": dicom,
                    "subject_id": subject,
                    "study_id": study,
                    "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
                    "ViewPosition": "PA",
                    "Rows": 3056,
                    "Columns": 2544,
                }
            )
            labels.append(
                {
                    "subject_id": subject,
                    "study_id": study,
                    **{f: None for f in FINDINGS},
                    "No Finding": 1.0 if p.label else None,
                }
            )
            path = f"files/p{str(subject)[:2]}/p{subject}/s{study}/{dicom}.jpg"
            image(folder / path, _shade(p, k))
    write_gz(folder / "mimic-cxr-2.0.0-metadata.csv.gz", pd.DataFrame(meta))
    write_gz(folder / "mimic-cxr-2.0.0-chexpert.csv.gz", pd.DataFrame(labels))
    write_gz(folder / "mimic-cxr-2.0.0-split.csv.gz", pd.DataFrame(meta)[["dicom_id"]])
    if version == "2.1.0":
        pd.DataFrame(labels[:2]).to_csv(folder / "mimic-cxr-2.1.0-test-set-labeled.csv")
    write_gz(patients or folder / "hosp" / "patients.csv.gz", pd.DataFrame(people_rows))
    return folder


def _physionet(root: Path) -> Path:
    """PhysioNet's wget tree: mimic-cxr-jpg/2.1.0 beside mimiciv/2.2/hosp; the set's folder."""
    folder = root / "physionet.org" / "files" / "mimic-cxr-jpg" / "2.1.0"
    folder.mkdir(parents=True)
    patients = root / "physionet.org" / "files" / "mimiciv" / "2.2" / "hosp" / "patients.csv.gz"
    return mimic(folder, "2.1.0", patients)


@dataclass(frozen=True)
class Download:
    """A layout to build: its id, the preset, the builder (a fresh folder -> the folder to
    give as FORMAT:PATH) and the layout name the reader must report."""

    id: str
    preset: str
    build: Callable[[Path], Path]
    layout: str
    kept: int


_IMAGES = sum(p.images for p in people())
LAYOUTS = [
    Download(
        "isic2020-challenge",
        "isic2020",
        lambda d: isic2020(d, "ISIC_2020_Training_GroundTruth.csv", "train"),
        "ISIC 2020 challenge archive, images train/<image_name>.jpg",
        _IMAGES,
    ),
    Download(
        "isic2020-challenge-v2",
        "isic2020",
        lambda d: isic2020(
            d, "ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_JPEG/train"
        ),
        "ISIC 2020 challenge archive, images ISIC_2020_Training_JPEG/train/<image_name>.jpg",
        _IMAGES,
    ),
    Download(
        "isic2020-kaggle",
        "isic2020",
        lambda d: isic2020(d, "train.csv", "jpeg/train"),
        "ISIC 2020 on Kaggle (siim-isic-melanoma-classification), images jpeg/train/",
        _IMAGES,
    ),
    *(
        Download(
            f"isic2020-kaggle-{size}",
            "isic2020",
            lambda d: isic2020(d, "train.csv", "train"),
            "ISIC 2020 resized on Kaggle",
            _IMAGES,
        )
        for size in (256, 512, 768)
    ),
    Download(
        "isic2019",
        "isic2019",
        isic2019,
        "ISIC 2019 challenge archive, images ISIC_2019_Training_Input/<image>.jpg",
        _IMAGES,
    ),
    Download(
        "ham10000",
        "ham10000",
        ham10000,
        "HAM10000 (Harvard Dataverse or Kaggle), images HAM10000_images_part_1/<image_id>.jpg "
        "or HAM10000_images_part_2/<image_id>.jpg",
        _IMAGES,
    ),
    Download(
        "ham10000-dataverse",
        "ham10000",
        lambda d: ham10000(d, "HAM10000_metadata"),
        "HAM10000 (Harvard Dataverse or Kaggle)",
        _IMAGES,
    ),
    Download(
        "fitzpatrick17k-md5-jpg",
        "fitzpatrick17k",
        fitzpatrick,
        "Fitzpatrick17k repository, images <md5hash>.jpg",
        PATIENTS,
    ),
    Download(
        "fitzpatrick17k-md5",
        "fitzpatrick17k",
        lambda d: fitzpatrick(d, extension=""),
        "Fitzpatrick17k repository, images <md5hash>",
        PATIENTS,
    ),
    Download(
        "fitzpatrick17k-subfolder",
        "fitzpatrick17k",
        lambda d: fitzpatrick(d, "images"),
        "Fitzpatrick17k repository, images images/<md5hash>.jpg",
        PATIENTS,
    ),
    Download(
        "chexpert-small",
        "chexpert",
        chexpert,
        "CheXpert v1.0 download folder (full or small): CheXpert-v1.0-small",
        _IMAGES,
    ),
    Download(
        "chexpert-full",
        "chexpert",
        lambda d: chexpert(d, "CheXpert-v1.0"),
        "CheXpert v1.0 download folder (full or small): CheXpert-v1.0,",
        _IMAGES,
    ),
    Download(
        "chexpert-parent",
        "chexpert",
        lambda d: chexpert(d / "CheXpert-v1.0-small").parent,
        "CheXpert-v1.0-small's parent folder: CheXpert-v1.0-small",
        _IMAGES,
    ),
    Download("mimic-cxr-2.0.0", "mimic-cxr", mimic, "MIMIC-CXR-JPG 2.0.0, images", _IMAGES),
    Download(
        "mimic-cxr-2.1.0-physionet",
        "mimic-cxr",
        _physionet,
        "MIMIC-CXR-JPG 2.1.0, images",
        _IMAGES,
    ),
]


def build(download: Download, where: Path) -> Path:
    """The layout built in a fresh folder below ``where``."""
    folder = where / download.id
    folder.mkdir(parents=True)
    if download.id == "chexpert-parent":
        (folder / "CheXpert-v1.0-small").mkdir()
    return download.build(folder)
