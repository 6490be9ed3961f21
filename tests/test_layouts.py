"""Every common download layout of the published medical sets, as a user has it on disk.

Each layout (:mod:`_medical_layouts`) is read, split by patient, checked with
``fairtune data check``, trained on and predicted on with ``--data FORMAT:PATH``
alone; then the options a user reaches for: ``--image-root``, the image root a
model saved, the same-data warning, the patient split's refusal.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _medical_layouts import LAYOUTS, Download, build, fitzpatrick, isic2020

from fairtune.cli import main
from fairtune.datasets import ImageRoots, read_fitzpatrick17k, read_isic2020
from fairtune.datasets.presets import PRESETS
from fairtune.errors import FairtuneError
from fairtune.loading import PARTS, read_table

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--epochs", "1", "--image-size", "8", "--batch-size", "64"]


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> dict[str, Path]:
    """Every layout, built once: layout id -> the folder to name."""
    where = tmp_path_factory.mktemp("downloads")
    return {d.id: build(d, where) for d in LAYOUTS}


@pytest.mark.parametrize("download", LAYOUTS, ids=[d.id for d in LAYOUTS])
def test_each_layout_is_read_split_trained_and_predicted_on(
    download: Download, downloads, tmp_path, capsys
):
    spec = f"{download.preset}:{downloads[download.id]}"
    whole = read_table(spec, "all")
    assert download.layout in whole.preset.summary.layout
    assert len(whole.frame) == whole.preset.summary.kept == download.kept
    root = whole.preset.root
    assert all((root / p).is_file() for p in whole.frame["image"])
    parts = [read_table(f"{spec}:{part}").frame for part in PARTS]
    patients = [set(part["patient"]) for part in parts]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert sum(len(part) for part in parts) == len(whole.frame)

    capsys.readouterr()
    assert main(["data", "check", spec]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert f"layout: {download.layout}" in said
    assert f"kept {download.kept}" in said and f"images missing: 0 of {download.kept}" in said
    for part, frame in zip(PARTS, parts, strict=True):
        assert f"{part} │ {len(frame)} │ {frame['patient'].nunique()} │" in said

    model, out = tmp_path / "m", tmp_path / "scores.csv"
    assert main(["train", "--data", spec, "--out", str(model), *TINY]) == 0
    config = json.loads((model / "config.json").read_text())
    assert config["images"]["image_root"] == str(root.resolve())
    assert main(["predict", "--model", str(model), "--data", spec, "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == len(parts[2])  # the test part, as evaluate reads it
    assert "warning" not in capsys.readouterr().err


def test_a_wrong_folder_lists_what_each_layout_looks_for(downloads, tmp_path, capsys):
    kaggle = tmp_path / "kaggle_isic"
    kaggle.mkdir()
    shutil.copy(downloads["isic2020-kaggle"] / "train.csv", kaggle / "train.csv")
    assert main(["data", "check", f"isic2020:{kaggle}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    for looked in (
        "ISIC_2020_Training_GroundTruth_v2.csv or ISIC_2020_Training_GroundTruth.csv",
        "train.csv + jpeg/train/",
        "train.csv + train/",
    ):
        assert looked in err
    assert "Closest: ISIC 2020 on Kaggle" in err
    (tmp_path / "isic_2020_training_groundtruth.csv").write_text("x\n")
    with pytest.raises(FairtuneError, match="Closest file here: 'isic_2020_training_gro"):
        read_isic2020(tmp_path)


def test_image_root_is_honoured_and_saved(tmp_path, capsys):
    """Fitzpatrick17k's CSV in one folder, its images in another named by --image-root: the
    model saves that root, and predict finds the images there without the option."""
    fitzpatrick(tmp_path / "fitz_sub", "images")
    folder, pictures = tmp_path / "fitz_sub", tmp_path / "pictures"
    (folder / "images").rename(pictures)
    spec, model = f"fitzpatrick17k:{folder}", tmp_path / "m"
    assert main(["data", "check", spec]) == 0
    assert "images missing: 24 of 24" in capsys.readouterr().out
    assert main(["train", "--data", spec, "--out", str(model), *TINY]) == 2
    assert "do not exist" in capsys.readouterr().err
    argv = ["train", "--data", spec, "--image-root", str(pictures), "--out", str(model), *TINY]
    assert main(argv) == 0
    assert json.loads((model / "config.json").read_text())["images"]["image_root"] == str(
        pictures.resolve()
    )
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(model), "--data", spec, "--out", str(out)]) == 0
    assert main(["evaluate", "--model", str(model), "--data", spec, "--n-boot", "0"]) == 0
    table = read_fitzpatrick17k(folder, images=ImageRoots(given=pictures))
    assert table.root == pictures and "images <md5hash>.jpg" in table.summary.layout


def test_readers_return_a_frame_to_write(tmp_path):
    table = read_isic2020(isic2020(tmp_path, "train.csv", "jpeg/train"))
    table.to_csv(tmp_path / "mine.csv")
    again = pd.read_csv(tmp_path / "mine.csv")
    assert list(again.columns) == list(table.frame.columns) and len(again) == len(table)
    assert isinstance(table.frame, pd.DataFrame)
    assert PRESETS["isic2020"].files(tmp_path) == [tmp_path / "train.csv"]


def test_the_same_data_warning_compares_the_rows_read(downloads, tmp_path, capsys):
    spec = f"fitzpatrick17k:{downloads['fitzpatrick17k-md5-jpg']}"
    model = tmp_path / "m"
    assert main(["train", "--data", spec, "--out", str(model), *TINY]) == 0
    fast = ["--methods", "llft", "--set", "llft.epochs=1", "--n-boot", "0"]
    capsys.readouterr()
    argv = ["compare", "--model", str(model), "--external", spec, "--test", spec]
    assert main([*argv, "--out", str(tmp_path / "r1"), *fast]) == 0
    assert "same data" not in capsys.readouterr().err  # the external part vs the test part
    same = ["compare", "--model", str(model), "--external", f"{spec}:test", "--test", spec]
    assert main([*same, "--out", str(tmp_path / "r2"), *fast]) == 0
    assert "the external and test sets are the same data" in capsys.readouterr().err


def test_too_few_patients_say_the_rule_and_the_way_out(tmp_path, capsys):
    """Six patients of many images each: no patient-level split; by image it goes, warned."""
    folder = isic2020(tmp_path / "download", "train.csv", "jpeg/train")
    frame = pd.read_csv(folder / "train.csv")
    frame["patient_id"] = "IP_" + (frame.index % 6).astype(str)
    frame.to_csv(folder / "train.csv", index=False)
    spec = f"isic2020:{folder}"
    assert main(["train", "--data", spec, "--out", str(tmp_path / "m"), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.index("read 32 rows of train.csv") < err.index("fewer than 3 patients")
    assert "each patient counts once" in err and "--split-by image" in err
    argv = ["train", "--data", spec, "--split-by", "image", "--out", str(tmp_path / "m"), *TINY]
    assert main(argv) == 0
    assert "patients have images in more than one part" in capsys.readouterr().err
    parts = tmp_path / "parts"
    assert main(["split", "--data", spec, "--split-by", "image", "--out", str(parts)]) == 0
    assert "patients have images in more than one part" in capsys.readouterr().err


@pytest.mark.parametrize("download", LAYOUTS, ids=[d.id for d in LAYOUTS])
def test_a_preset_lists_the_files_it_reads(download: Download, downloads):
    """Every table the reader read is listed (the files a command must never overwrite)."""
    folder = downloads[download.id]
    files = PRESETS[download.preset].files(folder)
    assert files and all(f.is_file() for f in files)
    summary = read_table(f"{download.preset}:{folder}", "all").preset.summary
    listed = {f.name for f in files}
    assert {Path(name).name for name in summary.files} <= listed
