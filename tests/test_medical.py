"""The published medical sets: synthetic files in each published layout, read by name."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fairtune.cli import main
from fairtune.columns import Columns
from fairtune.datasets import (
    ChestOptions,
    read_chexpert,
    read_fitzpatrick17k,
    read_isic2020,
    read_mimic_cxr,
)
from fairtune.datasets.chest import FINDINGS
from fairtune.datasets.presets import parse_preset
from fairtune.errors import FairtuneError
from fairtune.image_csv import ImageOptions, ImageReading, read_image_csv
from fairtune.images import Decoding
from fairtune.loading import read_preset_images, read_table
from fairtune.modelio import load_model
from fairtune.splits import split_frame

# ---------------------------------------------------------------- published layouts


def _isic(folder: Path) -> Path:
    rows = [
        # image_name, patient_id, sex, age_approx, target
        ("ISIC_0000001", "IP_1", "male", 45.0, 0),
        ("ISIC_0000002", "IP_1", "male", 45.0, 1),
        ("ISIC_0000003", "IP_2", "female", 70.0, 0),
        ("ISIC_0000004", "IP_3", None, 60.0, 0),  # sex blank
        ("ISIC_0000005", "IP_4", "female", None, 1),  # age blank
        ("ISIC_0000006", "IP_5", "male", 59.0, 0),
    ]
    frame = pd.DataFrame(rows, columns=["image_name", "patient_id", "sex", "age_approx", "target"])
    frame.insert(4, "anatom_site_general_challenge", "torso")
    frame.insert(5, "diagnosis", np.where(frame["target"] == 1, "melanoma", "nevus"))
    frame.insert(6, "benign_malignant", np.where(frame["target"] == 1, "malignant", "benign"))
    frame.to_csv(folder / "ISIC_2020_Training_GroundTruth.csv", index=False)
    return folder


def test_isic2020_codes_label_sex_and_age_and_counts_unknowns(tmp_path):
    table = read_isic2020(_isic(tmp_path))
    frame = table.frame
    assert table.label == "malignant" and table.sensitive == ("sex",)
    assert list(frame["image"]) == [
        f"train/ISIC_000000{i}.jpg" for i in (1, 2, 3, 5, 6)
    ]  # row 4's sex is blank
    assert list(frame["malignant"]) == [0, 1, 0, 1, 0]
    assert list(frame["sex"]) == ["male", "male", "female", "female", "male"]
    assert list(frame["patient"]) == ["IP_1", "IP_1", "IP_2", "IP_4", "IP_5"]
    summary = table.summary
    assert (summary.rows_read, summary.kept) == (6, 5)
    assert summary.count("sex unknown (blank)") == 1
    assert summary.count("age unknown (blank age_approx)") == 0  # age not used: kept

    by_age = read_isic2020(tmp_path, sensitive=["age"])
    assert list(by_age.frame["age"]) == [
        "under 60",
        "under 60",
        "60 and over",
        "60 and over",
        "under 60",
    ]
    assert by_age.summary.count("age unknown (blank age_approx)") == 1
    assert by_age.summary.count("sex unknown (blank)") == 0


def _fitzpatrick(folder: Path, column: str = "fitzpatrick_scale") -> Path:
    rows = [
        ("a1", 1, "malignant"),
        ("a2", 3, "benign"),
        ("a3", 4, "non-neoplastic"),
        ("a4", 6, "malignant"),
        ("a5", -1, "malignant"),  # unknown skin type
        ("a6", None, "benign"),  # blank skin type
        ("a7", 2, None),  # no three-partition label
    ]
    frame = pd.DataFrame(rows, columns=["md5hash", column, "three_partition_label"])
    frame.insert(2, "fitzpatrick_centaur", frame[column])
    frame.insert(3, "label", "psoriasis")
    frame.insert(4, "nine_partition_label", "inflammatory")
    frame["qc"] = ""
    frame["url"] = "https://example.org/" + frame["md5hash"] + ".jpg"
    frame["url_alphanum"] = "httpsexampleorg" + frame["md5hash"] + "jpg.jpg"
    frame.to_csv(folder / "fitzpatrick17k.csv", index=False)
    return folder


@pytest.mark.parametrize("column", ["fitzpatrick_scale", "fitzpatrick"])
def test_fitzpatrick17k_binarises_skin_type_and_drops_unknown_types(tmp_path, column):
    table = read_fitzpatrick17k(_fitzpatrick(tmp_path, column))
    frame = table.frame
    assert list(frame["image"]) == ["a1.jpg", "a2.jpg", "a3.jpg", "a4.jpg"]
    assert list(frame["malignant"]) == [1, 0, 0, 1]  # benign and non-neoplastic are 0
    assert list(frame["skin_type"]) == ["I-III", "I-III", "IV-VI", "IV-VI"]
    assert list(frame["patient"]) == ["a1", "a2", "a3", "a4"]
    summary = table.summary
    assert summary.count(f"Fitzpatrick type unknown ({column} -1 or blank)") == 2
    assert summary.count("three_partition_label not one of malignant, benign, non-neoplastic") == 1
    assert (summary.rows_read, summary.kept) == (7, 4)
    assert "dropped 2: Fitzpatrick type unknown" in "\n".join(summary.lines())


_CHEXPERT_ROWS = [
    # Path tail, Sex, Age, Frontal/Lateral, No Finding, Edema
    ("train/patient00001/study1/view1_frontal.jpg", "Female", 68, "Frontal", 1.0, None),
    ("train/patient00001/study1/view2_lateral.jpg", "Female", 68, "Lateral", 1.0, None),
    ("train/patient00002/study1/view1_frontal.jpg", "Male", 41, "Frontal", None, -1.0),
    ("train/patient00003/study1/view1_frontal.jpg", "Unknown", 55, "Frontal", None, 1.0),
    ("train/patient00004/study2/view1_frontal.jpg", "Male", None, "Frontal", None, 0.0),
]


def _chexpert(folder: Path, rows=_CHEXPERT_ROWS, valid=True) -> Path:
    frame = pd.DataFrame(
        [("CheXpert-v1.0-small/" + r[0], *r[1:]) for r in rows],
        columns=["Path", "Sex", "Age", "Frontal/Lateral", "No Finding", "Edema"],
    )
    frame.insert(4, "AP/PA", np.where(frame["Frontal/Lateral"] == "Frontal", "AP", None))
    for finding in FINDINGS:
        if finding not in frame.columns:
            frame[finding] = None
    frame = frame[["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *FINDINGS]]
    frame.to_csv(folder / "train.csv", index=False)
    if valid:
        frame.iloc[:1].assign(
            Path="CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg",
            **{"No Finding": 0.0, "Edema": 1.0},
        ).to_csv(folder / "valid.csv", index=False)
    return folder


def test_chexpert_codes_the_finding_by_the_uncertain_rule(tmp_path):
    _chexpert(tmp_path)
    table = read_chexpert(tmp_path)
    frame = table.frame
    assert table.label == "No Finding" and table.sensitive == ("sex",)
    assert list(frame["image"]) == [
        "train/patient00001/study1/view1_frontal.jpg",
        "train/patient00002/study1/view1_frontal.jpg",
        "train/patient00004/study2/view1_frontal.jpg",
        "valid/patient64541/study1/view1_frontal.jpg",
    ]
    assert list(frame["patient"]) == [
        "patient00001",
        "patient00002",
        "patient00004",
        "patient64541",
    ]
    assert list(frame["No Finding"]) == [1, 0, 0, 0]  # blank is negative
    assert list(frame["Edema"]) == [0, 0, 0, 1]  # U-Zeros: -1 -> 0
    assert list(frame["sex"]) == ["female", "male", "male", "female"]
    assert set(FINDINGS) <= set(frame.columns)
    summary = table.summary
    assert summary.files == ("train.csv", "valid.csv") and summary.rows_read == 6
    assert summary.count("lateral view") == 1
    assert summary.count("sex unknown ('Unknown' or blank)") == 1

    ones = read_chexpert(tmp_path, ChestOptions(finding="Edema", uncertain="ones")).frame
    assert list(ones["Edema"]) == [0, 1, 0, 1]
    drop = read_chexpert(tmp_path, ChestOptions(finding="Edema", uncertain="drop"))
    assert list(drop.frame["Edema"]) == [0, 0, 1]
    assert drop.summary.count("Edema uncertain (-1)") == 1
    assert "No Finding" not in drop.frame.columns  # other findings are not coded under 'drop'

    by_age = read_chexpert(tmp_path, ChestOptions(age_cut=50, frontal_only=False), ["age"])
    assert by_age.summary.count("age unknown (blank)") == 1
    assert by_age.summary.count("lateral view") == 0
    assert list(by_age.frame["age"]) == [
        "50 and over",
        "50 and over",
        "under 50",
        "50 and over",
        "50 and over",
    ]


def _write_gz(path: Path, frame: pd.DataFrame) -> None:
    with gzip.open(path, "wt") as handle:
        frame.to_csv(handle, index=False)


def _mimic(folder: Path) -> Path:
    dicoms = ["d1", "d2", "d3", "d4", "d5"]
    meta = pd.DataFrame(
        {
            "dicom_id": dicoms,
            "subject_id": [10000032, 10000032, 11000011, 12000012, 13000013],
            "study_id": [50000001, 50000001, 50000002, 50000003, 50000004],
            "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
            "ViewPosition": ["PA", "LATERAL", "AP", "PA", "AP"],
            "Rows": 3056,
            "Columns": 2544,
        }
    )
    labels = pd.DataFrame(
        {
            "subject_id": [10000032, 11000011, 13000013],  # study 50000003 has no labels
            "study_id": [50000001, 50000002, 50000004],
            **{f: [None, None, None] for f in FINDINGS},
        }
    )
    labels["No Finding"] = [1.0, None, None]
    labels["Pleural Effusion"] = [None, -1.0, 1.0]
    patients = pd.DataFrame(
        {
            "subject_id": [10000032, 11000011],  # 13000013 is not in MIMIC-IV
            "gender": ["F", "M"],
            "anchor_age": [52, 77],
            "anchor_year": 2180,
            "anchor_year_group": "2014 - 2016",
            "dod": None,
        }
    )
    _write_gz(folder / "mimic-cxr-2.0.0-metadata.csv.gz", meta)
    _write_gz(folder / "mimic-cxr-2.0.0-chexpert.csv.gz", labels)
    (folder / "hosp").mkdir()
    _write_gz(folder / "hosp" / "patients.csv.gz", patients)
    return folder


def test_mimic_cxr_joins_its_tables_and_counts_what_it_drops(tmp_path):
    table = read_mimic_cxr(_mimic(tmp_path), ChestOptions(finding="Pleural Effusion"))
    frame = table.frame
    assert list(frame["image"]) == [
        "files/p10/p10000032/s50000001/d1.jpg",
        "files/p11/p11000011/s50000002/d3.jpg",
    ]
    assert list(frame["Pleural Effusion"]) == [0, 0]  # blank and U-Zeros -1
    assert list(frame["No Finding"]) == [1, 0]
    assert list(frame["sex"]) == ["female", "male"]
    assert list(frame["patient"]) == [10000032, 11000011]
    summary = table.summary
    assert summary.files == (
        "mimic-cxr-2.0.0-metadata.csv.gz",
        "mimic-cxr-2.0.0-chexpert.csv.gz",
        "hosp/patients.csv.gz",
    )
    assert summary.count("study not in mimic-cxr-2.0.0-chexpert.csv.gz") == 1
    assert summary.count("not a frontal view (ViewPosition not PA or AP)") == 1
    assert summary.count("sex unknown (subject not in hosp/patients.csv.gz)") == 1
    assert (summary.rows_read, summary.kept) == (5, 2)
    by_age = read_mimic_cxr(tmp_path, sensitive=["age"])
    assert list(by_age.frame["age"]) == ["under 60", "60 and over"]


def test_readers_refuse_what_is_not_the_published_layout(tmp_path):
    with pytest.raises(FairtuneError, match="not a folder"):
        read_chexpert(tmp_path / "absent")
    with pytest.raises(FairtuneError, match=r"no published layout of chexpert .* train\.csv"):
        read_chexpert(tmp_path)
    pd.DataFrame({"Path": ["x"], "Sex": ["Male"]}).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(FairtuneError, match="lacks column"):
        read_chexpert(tmp_path)
    with pytest.raises(FairtuneError, match="not among this set's: sex, age"):
        read_isic2020(_isic(tmp_path), sensitive=["race"])
    with pytest.raises(FairtuneError, match=r"mimic-cxr-2\.0\.0-metadata\.csv\.gz or"):
        read_mimic_cxr(tmp_path)
    (tmp_path / "m").mkdir()
    (_mimic(tmp_path / "m") / "hosp" / "patients.csv.gz").unlink()
    with pytest.raises(FairtuneError, match=r"patients\.csv"):
        read_mimic_cxr(tmp_path / "m")
    with pytest.raises(FairtuneError, match="uncertain"):
        ChestOptions(uncertain="maybe")


def test_preset_specs():
    spec = parse_preset("chexpert:/data/CheXpert-v1.0-small")
    assert spec is not None and spec.preset.name == "chexpert"
    assert (spec.path, spec.part) == ("/data/CheXpert-v1.0-small", None)
    spec = parse_preset("mimic-cxr:/data/mimic:test")
    assert spec is not None and (spec.path, spec.part) == ("/data/mimic", "test")
    spec = parse_preset("isic2020:/data/a:b")  # not a part: part of the path
    assert spec is not None and (spec.path, spec.part) == ("/data/a:b", None)
    assert parse_preset("adult:test") is None and parse_preset("table.csv") is None
    assert parse_preset("isic2020:") is None


# ---------------------------------------------------------------- patient-level splits


def _many_patients(n_patients: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        sex = rng.choice(["female", "male"])
        for _ in range(rng.integers(1, 5)):
            rows.append((f"P{p:04d}", sex, int(rng.random() < (0.3 if sex == "male" else 0.5))))
    return pd.DataFrame(rows, columns=["patient", "sex", "y"])


def test_patient_split_keeps_each_patient_in_one_part_and_stratifies():
    frame = _many_patients(600)
    parts = split_frame(frame, "y", ["sex"], (0.6, 0.2, 0.2), seed=3, patient="patient")
    seen = [set(part["patient"]) for part in parts]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert sum(len(part) for part in parts) == len(frame)
    n_patients = [len(s) for s in seen]
    assert abs(n_patients[0] / 600 - 0.6) < 0.02 and abs(n_patients[2] / 600 - 0.2) < 0.02
    for part in parts:  # each (sex, label) cell's share roughly as in the whole set
        for sex in ("female", "male"):
            whole = frame.loc[frame.sex == sex, "y"].mean()
            assert abs(part.loc[part.sex == sex, "y"].mean() - whole) < 0.1
    again = split_frame(frame, "y", ["sex"], (0.6, 0.2, 0.2), seed=3, patient="patient")
    assert all(a.index.equals(b.index) for a, b in zip(parts, again, strict=True))
    rows = split_frame(frame, "y", ["sex"], (0.6, 0.2, 0.2), seed=3)
    assert set(rows[0]["patient"]) & set(rows[2]["patient"])  # split by rows: shared patients


def test_patient_split_refuses_too_few_patients():
    frame = pd.DataFrame({"patient": ["a", "a", "b", "b"], "sex": "f", "y": [0, 1, 0, 1]})
    with pytest.raises(FairtuneError, match="fewer than 3 patients"):
        split_frame(frame, "y", ["sex"], patient="patient")
    with pytest.raises(FairtuneError, match="patient column"):
        split_frame(frame, "y", ["sex"], patient="subject")


# ---------------------------------------------------------------- reading images, the CLI


def _image(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), color=shade).save(path)


@pytest.fixture(scope="module")
def chexpert_dir(tmp_path_factory) -> Path:
    """A CheXpert download of 48 patients (a few images each) with tiny JPEGs."""
    root = tmp_path_factory.mktemp("CheXpert-v1.0-small")
    rng = np.random.default_rng(1)
    rows = []
    for p in range(1, 49):
        sex = ["Female", "Male"][p % 2]
        for study in range(1, int(rng.integers(2, 4))):
            healthy = float(rng.random() < 0.5)
            tail = f"train/patient{p:05d}/study{study}/view1_frontal.jpg"
            rows.append((tail, sex, int(rng.integers(20, 90)), "Frontal", healthy or None, -1.0))
            rows.append((tail.replace("1_frontal", "2_lateral"), sex, 50, "Lateral", None, 1.0))
    rows.append(("train/patient00049/study1/view1_frontal.jpg", "Unknown", 40, "Frontal", 1.0, 0))
    _chexpert(root, rows, valid=False)
    for tail, _, _, view, healthy, _ in rows:
        if view == "Frontal":
            _image(root / tail, 200 if healthy else 60)
    return root


def test_a_preset_reads_into_the_same_data_as_a_hand_written_csv(chexpert_dir, tmp_path):
    table = read_table(f"chexpert:{chexpert_dir}", default_part="all")
    options = ImageOptions("image", Decoding(8, 1))
    columns = Columns("No Finding", ["sex"])
    data, report = read_preset_images(table, options, columns)
    assert report["rows_read"] == len(table.frame) == table.preset.summary.kept
    csv = chexpert_dir / "by_hand.csv"
    table.frame[["image", "No Finding", "sex"]].to_csv(csv, index=False)
    by_hand, _ = read_image_csv(csv, options, columns, reading=ImageReading(chexpert_dir))
    assert torch.equal(data.labels, by_hand.labels) and torch.equal(data.groups, by_hand.groups)
    assert data.group_names == by_hand.group_names == ("female", "male")
    assert data.attribute == by_hand.attribute == "sex"
    for i in (0, len(data) - 1):
        assert torch.equal(data.inputs[i], by_hand.inputs[i])


def test_preset_parts_split_by_patient(chexpert_dir):
    parts = [
        read_table(f"chexpert:{chexpert_dir}:{p}").frame for p in ("train", "external", "test")
    ]
    patients = [set(part["patient"]) for part in parts]
    assert not (patients[0] & patients[1]) and not (patients[1] & patients[2])
    whole = read_table(f"chexpert:{chexpert_dir}", default_part="all").frame
    assert sum(len(part) for part in parts) == len(whole)
    assert read_table(f"chexpert:{chexpert_dir}").frame.equals(parts[0])  # default: train


def test_cli_trains_and_evaluates_on_a_chexpert_folder(chexpert_dir, tmp_path, capsys, one_thread):
    model_dir = tmp_path / "model"
    data = f"chexpert:{chexpert_dir}"
    argv = ["train", "--data", data, "--out", str(model_dir), "--epochs", "1"]
    assert main([*argv, "--image-size", "8", "--channels", "1", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "lateral view" in out
    assert "dropped 1: sex unknown ('Unknown' or blank)" in out
    _, config = load_model(model_dir)
    assert config.label == "No Finding" and list(config.sensitive) == ["sex"]
    assert config.images["image_col"] == "image"
    code = main(["evaluate", "--model", str(model_dir), "--data", data, "--n-boot", "5"])
    assert code == 0
    assert f"chexpert:{chexpert_dir}:test" in "".join(capsys.readouterr().out.split())


def test_cli_split_writes_parts_without_shared_patients(chexpert_dir, tmp_path, capsys):
    out = tmp_path / "parts"
    assert main(["split", "--data", f"chexpert:{chexpert_dir}", "--out", str(out)]) == 0
    parts = [pd.read_csv(out / f"{p}.csv") for p in ("train", "external", "test")]
    patients = [set(part["patient"]) for part in parts]
    assert not (patients[0] & patients[2]) and not (patients[0] & patients[1])
    said = " ".join(capsys.readouterr().out.split())
    assert f"read the parts with --image-root {chexpert_dir.resolve()}" in said
    for part in parts:  # the parts' paths resolve from the download folder, as printed
        assert all((chexpert_dir / path).is_file() for path in part["image"])
