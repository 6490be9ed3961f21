"""Bad inputs and faults, as a hostile but realistic user tries them: one table of cases.

Each case runs the CLI in-process and states the exit code, a fragment of the one
line it must print (an error, or a warning in the CLI's own format), the files that
must come through unchanged and the leftovers that must not exist. A full disk is
tried on a small tmpfs where the machine allows mounting one, and everywhere with
writers that fail as a full disk does.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import math
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import biased_data
from _medical_layouts import isic2020, mimic
from PIL import Image
from safetensors import SafetensorError
from torch import nn

import fairtune
from fairtune.backbones import SmallCNN
from fairtune.cli import build_parser, main
from fairtune.cli.options import one_value_per_set
from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.evaluation.measurement import Metrics
from fairtune.images import MAX_PIXELS, Decoding, ImageSource
from fairtune.io import MARKER
from fairtune.methods import DebiasResult
from fairtune.models import MLP
from fairtune.selection.results import summarise

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--method", "llft", "--set", "epochs=1"]
COMPARE = "compare --model {w}/m --external german:external --test german:test --out {w}/o "
STUDY = "--model {w}/m --external german:external --test german:test --out {w}/o "
MASKED = ["--method", "swift", "--set", "step1_epochs=1", "--set", "step2_epochs=1"]
IMG_ARGV = (
    "train --data {w}/img/set.csv --image-col file --label y --sensitive g --arch cnn "
    "--out {w}/o --epochs 0 --image-size 8 "
)


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` ({w}: the work folder), the exit ``code``, a ``fragment`` of
    its message, files that must be ``unchanged`` and leftovers (globs) that must be
    ``absent`` afterwards."""

    id: str
    what: str
    argv: str
    code: int
    fragment: str
    unchanged: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


CASES = [
    # data loss: an --out holding files fairtune did not write is refused, never emptied
    Case(
        "out-earlier-output-with-user-file",
        "train --out an earlier model folder where the user added notes.txt",
        "train --data german --out {w}/m_notes --epochs 1",
        2,
        "fairtune did not write (notes.txt)",
        unchanged=("m_notes/notes.txt", "m_notes/model.safetensors"),
    ),
    Case(
        "out-data-folder",
        "split --out a folder of the user's files",
        "split --data german --out {w}/mine",
        2,
        "fairtune did not write",
        unchanged=("mine/keep.txt",),
    ),
    Case(
        "out-unwritable",
        "train --out below a file (no folder can be made): found before any work",
        "train --data german --out {w}/table.csv/m --epochs 1",
        2,
        "cannot write output",
        unchanged=("table.csv",),
    ),
    # tracebacks before: every setting checked by the same code, one line
    Case(
        "seed-negative",
        "debias --seed -1",
        "debias --data german --model {w}/m --out {w}/o --seed -1",
        2,
        "setting 'seed' must be >= 0, not -1",
        absent=("o",),
    ),
    Case(
        "set-seed-negative",
        "debias --set seed=-5",
        "debias --data german --model {w}/m --out {w}/o --set seed=-5",
        2,
        "setting 'seed' must be >= 0, not -5",
        absent=("o",),
    ),
    Case(
        "seeds-negative",
        "compare --seeds -1",
        "compare --model {w}/m --external german:external --test german:test --out {w}/o "
        "--methods llft --seeds -1",
        2,
        "setting 'seeds' must be >= 0",
        absent=("o",),
    ),
    Case(
        "batch-size-zero",
        "debias --set batch_size=0",
        "debias --data german --model {w}/m --out {w}/o --set batch_size=0",
        2,
        "setting 'batch_size' must be >= 1, not 0",
    ),
    Case(
        "train-batch-size-zero",
        "train --batch-size 0",
        "train --data german --out {w}/o --batch-size 0",
        2,
        "train setting 'batch_size' must be >= 1, not 0",
    ),
    Case(
        "hidden-negative",
        "train --hidden -3",
        "train --data german --out {w}/o --hidden -3",
        2,
        "train setting 'hidden' must be >= 1",
        absent=("o",),
    ),
    Case(
        "hidden-zero",
        "train --hidden 0",
        "train --data german --out {w}/o --hidden 0",
        2,
        "train setting 'hidden' must be >= 1",
    ),
    Case(
        "config-hidden-negative",
        "a model whose config.json has hidden [-5, 32]",
        "evaluate --data german --model {w}/m_hidden",
        2,
        "cannot be built",
    ),
    Case(
        "config-threshold-text",
        'a model whose config.json has threshold "abc"',
        "evaluate --data german --model {w}/m_threshold",
        2,
        "setting 'threshold' must be a number, not 'abc'",
    ),
    Case(
        "config-random-bytes",
        "a model whose config.json is random bytes",
        "evaluate --data german --model {w}/m_bytes",
        2,
        "is damaged",
    ),
    Case(
        "swift-beta-out-of-range",
        "swift beta=5 (a negative loss weight)",
        "debias --data german --model {w}/m --out {w}/o --method swift --set beta=5",
        2,
        "swift setting 'beta' must be in [0, 1], not 5.0",
    ),
    Case(
        "auc-tolerance-negative",
        "compare --auc-tolerance -1",
        "compare --model {w}/m --external german:external --test german:test --out {w}/o "
        "--methods llft --auc-tolerance -1",
        2,
        "setting 'auc_tolerance' must be in [0, 1]",
    ),
    # silent nonsense before: refused
    Case(
        "label-copy-column",
        "the label column twice (income and income.1): a label leak",
        "train --data {w}/label_copy.csv --label credit_risk --sensitive sex --out {w}/o",
        2,
        "equal the label 'credit_risk' in every row",
    ),
    Case(
        "duplicated-header",
        "a header naming the label column twice",
        "train --data {w}/dup_header.csv --label credit_risk --sensitive sex --out {w}/o",
        2,
        "names column(s) ['credit_risk'] more than once",
    ),
    Case(
        "sensitive-is-label",
        "--sensitive equal to --label",
        "train --data {w}/table.csv --label credit_risk --sensitive credit_risk --out {w}/o",
        2,
        "named both as the label and as a sensitive attribute",
    ),
    Case(
        "train-one-class",
        "training labels all one class",
        "train --data {w}/one_class.csv --label credit_risk --sensitive sex --out {w}/o",
        2,
        "the training labels are all one class (1)",
        absent=("o",),
    ),
    Case(
        "external-one-class",
        "external labels all one class: no 'AUC nan -> nan', no model written",
        "debias --data {w}/external_one_class.csv --model {w}/m --out {w}/o",
        2,
        "the external labels are all one class (0)",
        absent=("o",),
    ),
    Case(
        "stray-strings",
        "a numeric column with five stray strings",
        "train --data {w}/stray.csv --label credit_risk --sensitive sex --out {w}/o",
        2,
        "'duration' is numeric but for 5 value(s) such as 'x', '?', 'abc' (first at row 4, "
        "counting data rows from 1)",
    ),
    Case(
        "huge-values",
        "values of 1e308: the column is named, not the learning rate",
        "train --data {w}/huge.csv --label credit_risk --sensitive sex --out {w}/o",
        2,
        "'credit_amount' has values too large to standardise",
    ),
    Case(
        "missing-value-row",
        "a missing value: its row counted from 1, as the image rows are",
        "train --data {w}/missing.csv --label credit_risk --sensitive sex --out {w}/o",
        2,
        "first at row 3, counting data rows from 1",
    ),
    Case(
        "lost-preprocessing",
        "a tabular model whose config.json lost its preprocessing",
        "evaluate --data german --model {w}/m_noprep",
        2,
        "has no 'preprocessing'",
    ),
    Case(
        "weights-mismatch-no-arch-hint",
        "a model folder whose arch does not match its weights (evaluate has no --arch)",
        "evaluate --data german --model {w}/m_mismatch",
        2,
        "is damaged: restore it or write the model again",
    ),
    Case(
        "n-boot-negative",
        "--n-boot -1: the message allows 0",
        "evaluate --data german --model {w}/m --n-boot -1",
        2,
        "--n-boot must be 0 (no intervals) or more, not -1",
    ),
    Case(
        "balance-unknown",
        "--set balance=sideways: the choices include none",
        "debias --data german --model {w}/m --out {w}/o --set balance=sideways",
        2,
        "none",
    ),
    # suspicious but possible: one warning line, the work done
    Case(
        "external-tiny",
        "a 5-row external set",
        "debias --data {w}/external5.csv --model {w}/m --out {w}/o " + " ".join(FAST),
        0,
        "warning: the external set has only 5 rows",
    ),
    Case(
        "unseen-categories",
        "category values never seen in training",
        "debias --data {w}/unseen.csv --model {w}/m --out {w}/o " + " ".join(FAST),
        0,
        "warning: feature column 'purpose' has 3 row(s) with categories not seen in training",
    ),
    Case(
        "external-equals-test",
        "the external set equal to the test set",
        "compare --model {w}/m --external {w}/test.csv --test {w}/test.csv --out {w}/o "
        "--methods llft --set llft.epochs=1",
        0,
        "warning: the external and test sets are the same data",
    ),
    # images
    Case(
        "image-outside-root",
        "an image path leading out of the image root (../secret.png)",
        "train --data {w}/img/escape.csv --image-col file --label y --sensitive g "
        "--out {w}/o --epochs 1 --image-size 8",
        2,
        "lead outside the image root",
    ),
    Case(
        "image-too-large",
        "an image over the decoded-size limit",
        "train --data {w}/img/set.csv --image-col file --label y --sensitive g "
        "--out {w}/o --epochs 1 --image-size 8 --max-image-pixels 500",
        2,
        "over the limit of 500",
        absent=("o",),
    ),
    # second round: no input overwritten through a preset, no symlink out of the image root
    Case(
        "preset-json-over-its-table",
        "evaluate --json naming the ground-truth CSV that isic2020:DIR reads",
        "evaluate --model {w}/m_isic --data isic2020:{w}/isic "
        "--json {w}/isic/ISIC_2020_Training_GroundTruth.csv",
        2,
        "would overwrite the input",
        unchanged=("isic/ISIC_2020_Training_GroundTruth.csv",),
    ),
    Case(
        "preset-predict-over-its-table",
        "predict --out naming the ground-truth CSV that isic2020:DIR reads",
        "predict --model {w}/m_isic --data isic2020:{w}/isic --image-root {w}/isic "
        "--out {w}/isic/ISIC_2020_Training_GroundTruth.csv",
        2,
        "would overwrite the input",
        unchanged=("isic/ISIC_2020_Training_GroundTruth.csv", "isic/train/ISIC_0.jpg"),
    ),
    Case(
        "preset-predict-over-its-image",
        "predict --out naming an image that isic2020:DIR reads",
        "predict --model {w}/m_isic --data isic2020:{w}/isic --out {w}/isic/train/ISIC_0.jpg",
        2,
        "would overwrite the input",
        unchanged=("isic/train/ISIC_0.jpg",),
    ),
    Case(
        "preset-study-folder-inside",
        "a study's folder inside the preset's download folder",
        "study keep --model {w}/m_isic --external isic2020:{w}/isic:external "
        "--test isic2020:{w}/isic:test --out {w}/isic/study",
        2,
        "would overwrite the input",
        unchanged=("isic/ISIC_2020_Training_GroundTruth.csv",),
        absent=("isic/study",),
    ),
    Case(
        "json-into-model-folder",
        "evaluate --json naming the model's own config.json",
        "evaluate --data german --model {w}/m --json {w}/m/config.json",
        2,
        "would overwrite the input",
        unchanged=("m/config.json",),
    ),
    Case(
        "image-symlink-out-of-root",
        "link.png in the image root, a symlink to a PNG outside it",
        "train --data {w}/img/link.csv --image-col file --label y --sensitive g "
        "--out {w}/o --epochs 1 --image-size 8",
        2,
        "lead outside the image root",
        absent=("o",),
    ),
    Case(
        "image-symlink-to-passwd",
        "a symlink in the image root to /etc/passwd: never opened",
        "train --data {w}/img/passwd.csv --image-col file --label y --sensitive g "
        "--out {w}/o --epochs 1 --image-size 8",
        2,
        "lead outside the image root",
        absent=("o",),
    ),
    Case(
        "predict-image-symlink",
        "predict on a CSV naming the symlink out of the root",
        "predict --model {w}/m_img --data {w}/img/link.csv --out {w}/o/p.csv",
        2,
        "lead outside the image root",
        absent=("o",),
    ),
    # tracebacks before
    Case(
        "preprocessing-lost-a-column-evaluate",
        "config.json's preprocessing lost a category, the weights still take 63 inputs",
        "evaluate --data german --model {w}/m_lost",
        2,
        "input(s) but the weights take",
    ),
    Case(
        "preprocessing-lost-a-column-predict",
        "the same model folder, predict",
        "predict --data german --model {w}/m_lost --out {w}/o/p.csv",
        2,
        "input(s) but the weights take",
        absent=("o",),
    ),
    # silent or misleading before
    Case(
        "predict-config-threshold-7",
        "predict with a model whose config.json threshold is 7",
        "predict --data german --model {w}/m_threshold7 --out {w}/o/p.csv",
        2,
        "setting 'threshold' must be in (0, 1), not 7",
        absent=("o",),
    ),
    Case(
        "predict-threshold-50",
        "predict --threshold 50",
        "predict --data german --model {w}/m --out {w}/o/p.csv --threshold 50",
        2,
        "must be in (0, 1), not 50.0",
        absent=("o",),
    ),
    Case(
        "evaluate-threshold-0",
        "evaluate --threshold 0: all positive, refused as predict refuses it",
        "evaluate --data german --model {w}/m --threshold 0",
        2,
        "must be in (0, 1), not 0.0",
    ),
    Case(
        "predict-keep-own-score-column",
        "predict --keep-columns naming the user's own 'score' column",
        "predict --data {w}/scored.csv --model {w}/m --out {w}/o/p.csv "
        "--keep-columns duration score",
        2,
        "which predict writes itself",
        unchanged=("scored.csv",),
        absent=("o",),
    ),
    Case(
        "study-seeds-repeated",
        "study keep --seeds 0 0 0: one run three times is no interval",
        "study keep " + STUDY + "--seeds 0 0 0",
        2,
        "setting 'seeds' repeats 0",
        absent=("o",),
    ),
    Case(
        "compare-seeds-repeated",
        "compare --seeds 0 0",
        COMPARE + "--methods llft --seeds 0 0",
        2,
        "setting 'seeds' repeats 0",
        absent=("o",),
    ),
    Case(
        "study-size-one-percent",
        "study external-size --sizes 0.01: the subsample, not the external set, is one class",
        "study external-size " + STUDY + "--sizes 0.01 --methods llft --set llft.epochs=1",
        2,
        "a share of 0.01 of the",
        absent=("o",),
    ),
    Case(
        "id-column-left-out",
        "an identifier column (a distinct name per row) in the training table",
        "train --data {w}/with_id.csv --label credit_risk --sensitive sex --out {w}/o "
        "--epochs 1",
        0,
        "warning: column(s) name look like identifiers",
    ),
    Case(
        "holdout-leaves-no-groups",
        "compare --holdout 0.99: one row of 200 to fit on",
        COMPARE + "--methods llft --set llft.epochs=1 --holdout 0.99 --n-boot 0",
        2,
        "holdout 0.99 leaves 1 of the 200 external rows to fit on, too few",
        absent=("o",),
    ),
    Case(
        "holdout-leaves-few-rows",
        "compare --holdout 0.9: 20 rows to fit on",
        COMPARE + "--methods llft --set llft.epochs=1 --holdout 0.9 --n-boot 0",
        0,
        "warning: holdout 0.9 leaves 20 of the 200 external rows to fit on",
    ),
    Case(
        "predict-skip-bad-images",
        "predict --skip-bad-images with one unreadable image",
        "predict --model {w}/m_img --data {w}/img/broken.csv --skip-bad-images "
        "--out {w}/o/p.csv",
        0,
        "warning: 1 image(s) could not be read",
    ),
    Case(
        "predict-max-image-pixels",
        "predict --max-image-pixels below the images' size",
        "predict --model {w}/m_img --data {w}/img/set.csv --max-image-pixels 500 "
        "--out {w}/o/p.csv",
        2,
        "over the limit of 500",
        absent=("o",),
    ),
    Case(
        "predict-over-an-image-of-its-csv",
        "predict --out naming an image that the image CSV names",
        "predict --model {w}/m_img --data {w}/img/set.csv --out {w}/img/0.png",
        2,
        "would overwrite an image that",
        unchanged=("img/0.png", "img/set.csv"),
    ),
    Case(
        "stale-output-folder",
        "--out an output folder of an earlier fairtune version (no marker file)",
        "train --data german --out {w}/m_stale --epochs 1",
        2,
        "holds no .fairtune-output list",
        unchanged=("m_stale/config.json", "m_stale/model.safetensors"),
    ),
    # published medical sets (FORMAT:DIR): one line naming the file and the reason
    Case(
        "preset-no-layout",
        "ISIC 2020 from Kaggle without its jpeg/train images: no layout matches",
        "train --data isic2020:{w}/med/kaggle_no_images --out {w}/o --epochs 1",
        2,
        "Looked for ISIC 2020 challenge archive: ISIC_2020_Training_GroundTruth_v2.csv",
        absent=("o",),
    ),
    Case(
        "preset-isic-target-yes-no",
        "an ISIC target written yes / no",
        "train --data isic2020:{w}/med/isic_yes_no --out {w}/o --epochs 1",
        2,
        "column target holds ['no', 'yes']",
        absent=("o",),
    ),
    Case(
        "preset-mimic-truncated-gz",
        "a truncated mimic-cxr-2.0.0-metadata.csv.gz (an interrupted download)",
        "train --data mimic-cxr:{w}/med/mimic_cut --out {w}/o --epochs 1",
        2,
        "mimic-cxr-2.0.0-metadata.csv.gz': the compressed file is cut short",
        absent=("o",),
    ),
    Case(
        "preset-mimic-duplicated-studies",
        "a MIMIC label file with each study twice",
        "train --data mimic-cxr:{w}/med/mimic_twice --out {w}/o --epochs 1",
        2,
        "mimic-cxr-2.0.0-chexpert.csv.gz' lists 32 subject_id + study_id more than once",
        absent=("o",),
    ),
    Case(
        "preset-too-few-patients",
        "six patients of many images: no patient-level split; the summary first, the way out",
        "train --data isic2020:{w}/med/isic_six_patients --out {w}/o --epochs 1",
        2,
        "read 32 rows of train.csv; kept 32: (label, group) cell(s)",
        absent=("o",),
    ),
    Case(
        "preset-unknown-format",
        "a format that is no preset (isic:DIR)",
        "train --data isic:{w}/med/isic_yes_no --out {w}/o --epochs 1",
        2,
        "FORMAT one of isic2020, isic2019, ham10000",
        absent=("o",),
    ),
    Case(
        "preset-check-wrong-folder",
        "data check on a folder of another set",
        "data check fitzpatrick17k:{w}/med/isic_yes_no",
        2,
        "Looked for Fitzpatrick17k repository: fitzpatrick17k.csv",
    ),
    # a user's checkpoint (tests/test_checkpoints.py: the forms that load)
    Case(
        "checkpoint-pickled-module",
        "a whole pickled model as --checkpoint, without --trust-pickle",
        IMG_ARGV + "--checkpoint {w}/ckpt/whole.pt",
        2,
        "pass --trust-pickle if you trust the file",
        unchanged=("ckpt/whole.pt",),
        absent=("o",),
    ),
    Case(
        "checkpoint-not-a-state-dict",
        "a checkpoint holding a list, not names to tensors",
        IMG_ARGV + "--checkpoint {w}/ckpt/list.pt",
        2,
        "is not a state dict",
        absent=("o",),
    ),
    Case(
        "checkpoint-head-output-out-of-range",
        "--head-output past the classifier's 14 outputs",
        IMG_ARGV + "--checkpoint {w}/ckpt/fourteen.pt --head-output 14",
        2,
        "--head-output 14 is out of range",
        absent=("o",),
    ),
    Case(
        "checkpoint-head-output-one-output",
        "--head-output for a checkpoint whose classifier has one output",
        IMG_ARGV + "--checkpoint {w}/ckpt/one.pt --head-output 0",
        2,
        "has 1 output already",
        absent=("o",),
    ),
    Case(
        "head-output-without-checkpoint",
        "--head-output with no --checkpoint to read",
        IMG_ARGV + "--head-output 3",
        2,
        "need a --checkpoint",
        absent=("o",),
    ),
    Case(
        "checkpoint-many-outputs-no-index",
        "a 14-output classifier without --head-output: a fresh head, said in one warning",
        IMG_ARGV + "--checkpoint {w}/ckpt/fourteen.pt",
        0,
        "warning: checkpoint",
    ),
]


def _write_images(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), np.uint8)).save(folder / f"{i}.png")
        rows.append({"file": f"{i}.png", "y": i % 2, "g": "ab"[i // 4]})
    pd.DataFrame(rows).to_csv(folder / "set.csv", index=False)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder.parent / "secret.png")
    rows[3]["file"] = "../secret.png"
    pd.DataFrame(rows).to_csv(folder / "escape.csv", index=False)


def _model_copy(w: Path, name: str, change) -> None:
    shutil.copytree(w / "m", w / name)
    config = json.loads((w / name / "config.json").read_text())
    change(config)
    (w / name / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def work(tmp_path_factory, one_thread) -> Path:
    """A trained german model, its split and every bad file the cases name."""
    w = tmp_path_factory.mktemp("bad")
    assert main(["train", "--data", "german", "--out", str(w / "m"), "--epochs", "1"]) == 0
    assert main(["split", "--data", "german", "--out", str(w / "sp")]) == 0
    train = pd.read_csv(w / "sp" / "train.csv")
    external = pd.read_csv(w / "sp" / "external.csv")
    shutil.copy(w / "sp" / "test.csv", w / "test.csv")
    train.to_csv(w / "table.csv", index=False)
    train.assign(**{"credit_risk.1": train["credit_risk"]}).to_csv(
        w / "label_copy.csv", index=False
    )
    lines = (w / "table.csv").read_text().splitlines()
    (w / "dup_header.csv").write_text(
        "\n".join([lines[0] + ",credit_risk"] + [f"{x},{x[-1]}" for x in lines[1:]]) + "\n"
    )
    train.assign(credit_risk=1).to_csv(w / "one_class.csv", index=False)
    external.assign(credit_risk=0).to_csv(w / "external_one_class.csv", index=False)
    stray = train.astype({"duration": object})
    stray.loc[[3, 7, 11, 20, 30], "duration"] = ["x", "?", "abc", "--", "x"]
    stray.to_csv(w / "stray.csv", index=False)
    huge = train.astype({"credit_amount": float})
    huge.loc[[5, 6], "credit_amount"] = [1e308, -1e308]
    huge.to_csv(w / "huge.csv", index=False)
    missing = train.astype({"duration": float})
    missing.loc[2, "duration"] = np.nan
    missing.to_csv(w / "missing.csv", index=False)
    external.head(5).to_csv(w / "external5.csv", index=False)
    unseen = external.copy()
    unseen.loc[unseen.index[:3], "purpose"] = "spaceship"
    unseen.to_csv(w / "unseen.csv", index=False)
    _model_copy(w, "m_hidden", lambda c: c["arch"].__setitem__("hidden", [-5, 32]))
    _model_copy(w, "m_threshold", lambda c: c.__setitem__("threshold", "abc"))
    _model_copy(w, "m_noprep", lambda c: c.__setitem__("preprocessing", None))
    _model_copy(w, "m_mismatch", lambda c: c["arch"].__setitem__("hidden", [8]))
    shutil.copytree(w / "m", w / "m_bytes")
    (w / "m_bytes" / "config.json").write_bytes(np.random.default_rng(1).bytes(300))
    shutil.copytree(w / "m", w / "m_notes")
    (w / "m_notes" / "notes.txt").write_text("mine")
    (w / "mine").mkdir()
    (w / "mine" / "keep.txt").write_text("mine")
    _write_images(w / "img")
    _second_round_files(w)
    _write_medical(w / "med")
    _write_checkpoints(w / "ckpt")
    return w


def _write_checkpoints(folder: Path) -> None:
    """The small CNN that IMG_ARGV trains, saved as users save models that fairtune refuses."""
    folder.mkdir()
    cnn = SmallCNN()
    torch.save(cnn, folder / "whole.pt")
    torch.save([1, 2], folder / "list.pt")
    torch.save(cnn.state_dict(), folder / "one.pt")
    cnn.head = torch.nn.Linear(cnn.head.in_features, 14)
    torch.save(cnn.state_dict(), folder / "fourteen.pt")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stderr_lines(capsys) -> list[str]:
    """The lines written to stderr, less the held-out evidence's warning that a setting made
    the model worse (these short runs on tiny sets may well), which is no error."""
    return [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.strip() and "made the model worse on held-out" not in line
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, work: Path, capsys) -> None:
    shutil.rmtree(work / "o", ignore_errors=True)
    before = {name: _digest(work / name) for name in case.unchanged}
    capsys.readouterr()
    code = main(case.argv.format(w=work).split())
    lines = _stderr_lines(capsys)
    assert code == case.code, lines
    assert any(case.fragment in line for line in lines), lines
    # one line per message, in the CLI's own format: no Python source line, no traceback
    assert all(line.startswith("fairtune ") for line in lines), lines
    if code == 2:
        assert len(lines) == 1 and ": error: " in lines[0]
        assert "--arch" not in lines[0] or case.argv.startswith("train")
    assert {name: _digest(work / name) for name in case.unchanged} == before
    for pattern in case.absent:
        assert not list(work.glob(pattern)), pattern
    assert not list(work.glob(".o.*")), "a temporary folder was left behind"


def test_weight_files_get_the_usual_permissions(work: Path, tmp_path) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "d"
        argv = ["debias", "--data", "german", "--model", str(work / "m"), "--out", str(out)]
        assert main(argv + MASKED) == 0
    finally:
        os.umask(old)
    for name in ("model.safetensors", "mask.safetensors", "config.json", MARKER):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def _full_disk_commands(work: Path, out: Path) -> dict[str, list[str]]:
    return {
        "split": ["split", "--data", "german", "--out", str(out)],
        "train": ["train", "--data", "german", "--out", str(out), "--epochs", "1"],
        "debias": [
            *("debias", "--data", "german", "--model", str(work / "m"), "--out", str(out)),
            *FAST,
        ],
        "compare": [
            "compare",
            "--model",
            str(work / "m"),
            "--external",
            "german:external",
            "--test",
            "german:test",
            "--out",
            str(out),
            "--methods",
            "llft",
            "--set",
            "llft.epochs=1",
        ],
    }


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs, nearly full (16 KiB left), or a skip saying why there is none."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        (mount / "filler").write_bytes(b"\0" * 48 * 1024)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=20)


@pytest.mark.parametrize("command", ["split", "train", "debias", "compare"])
def test_full_disk_leaves_nothing_half_written(command, work, tiny_tmpfs, capsys) -> None:
    out = tiny_tmpfs / "out"
    capsys.readouterr()
    code = main(_full_disk_commands(work, out)[command])
    lines = _stderr_lines(capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "No space left on device" in lines[0], lines
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler"]


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _safetensors_full(*_args, **_kwargs):
    raise SafetensorError(
        "Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
        'message: "No space left on device" })'
    )


@pytest.mark.parametrize(
    ("target", "writer"),
    [
        ("fairtune.modelio.save_file", _enospc),
        ("fairtune.modelio.save_file", _safetensors_full),
        ("fairtune.finetune.masks.save_file", _safetensors_full),
        ("fairtune.io.atomic_write_text", _enospc),
    ],
    ids=["model-oserror", "model-safetensors", "mask-safetensors", "text"],
)
def test_a_failing_writer_leaves_the_earlier_output(
    target, writer, work, tmp_path, monkeypatch, capsys
) -> None:
    out = tmp_path / "out"
    shutil.copytree(work / "m", out)  # an earlier output: it must survive whole
    before = {p.name: _digest(p) for p in out.iterdir()}
    monkeypatch.setattr(target, writer)
    capsys.readouterr()
    argv = ["debias", "--data", "german", "--model", str(work / "m"), "--out", str(out), *MASKED]
    code = main(argv)
    lines = [line for line in _stderr_lines(capsys) if ": warning: " not in line]
    assert code == 2 and len(lines) == 1, lines  # one error line, besides the fit's warnings
    assert "No space left on device" in lines[0] and "out" in lines[0], lines
    assert {p.name: _digest(p) for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---------------------------------------------------------------- second round


def _write_isic(folder: Path, n: int = 80) -> None:
    """A small ISIC 2020 download folder: the ground-truth CSV and its JPEGs."""
    (folder / "train").mkdir(parents=True)
    rng = np.random.default_rng(2)
    rows = []
    for i in range(n):
        pixels = rng.integers(0, 256, (12, 12, 3), np.uint8)
        Image.fromarray(pixels).save(folder / "train" / f"ISIC_{i}.jpg")
        rows.append(
            {
                "image_name": f"ISIC_{i}",
                "patient_id": f"IP_{i}",
                "sex": ("female", "male")[i % 2],
                "age_approx": 30 + i % 50,
                "anatom_site_general_challenge": "torso",
                "diagnosis": "unknown",
                "benign_malignant": ("benign", "malignant")[(i // 2) % 2],
                "target": (i // 2) % 2,
            }
        )
    pd.DataFrame(rows).to_csv(folder / "ISIC_2020_Training_GroundTruth.csv", index=False)


def _second_round_files(w: Path) -> None:
    """The files of the second round's cases: a preset folder and a model trained on it,
    symlinks in an image root, an image model, damaged model folders, odd tables."""
    _write_isic(w / "isic")
    image = ["--epochs", "1", "--image-size", "8", "--batch-size", "8"]
    preset = f"isic2020:{w / 'isic'}"
    assert main(["train", "--data", preset, "--out", str(w / "m_isic"), *image]) == 0
    img = w / "img"
    rows = pd.read_csv(img / "set.csv")
    (img / "link.png").symlink_to(w / "secret.png")
    (img / "passwd.png").symlink_to("/etc/passwd")
    for name, file in (("link", "link.png"), ("passwd", "passwd.png"), ("broken", "bad.png")):
        rows.assign(file=[file if i == 3 else f for i, f in enumerate(rows["file"])]).to_csv(
            img / f"{name}.csv", index=False
        )
    (img / "bad.png").write_bytes(b"not an image")
    argv = ["train", "--data", str(img / "set.csv"), "--image-col", "file", "--label", "y"]
    assert main([*argv, "--sensitive", "g", "--out", str(w / "m_img"), *image]) == 0

    def lose_a_category(config: dict) -> None:
        categorical = config["preprocessing"]["categorical"]
        first = next(iter(categorical))
        categorical[first] = categorical[first][1:]

    _model_copy(w, "m_lost", lose_a_category)
    _model_copy(w, "m_threshold7", lambda c: c.__setitem__("threshold", 7))
    shutil.copytree(w / "m", w / "m_stale")
    (w / "m_stale" / MARKER).unlink()
    test = pd.read_csv(w / "test.csv")
    test.assign(score=np.linspace(0, 1, len(test))).to_csv(w / "scored.csv", index=False)
    train = pd.read_csv(w / "table.csv")
    train.assign(name=[f"client-{i:04d}" for i in range(len(train))]).to_csv(
        w / "with_id.csv", index=False
    )


def _integer_inputs_debias() -> object:
    """Integer inputs are cast to float: debias runs (it raised a dtype error before)."""
    data = biased_data(200, seed=3)
    x = (data.inputs * 4).round().long()
    groups = pd.Series(np.array(data.group_names)[data.groups.numpy()], name="g")
    ints = FairData.from_arrays(x, data.labels.numpy(), groups)
    assert ints.inputs.dtype == torch.float32
    torch.manual_seed(0)
    return fairtune.debias(MLP(6, (8,)), ints, method="llft", epochs=1)


class _DictModel(nn.Module):
    """A model whose forward returns a dict, as HuggingFace models do."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.head(x)}


class _UnusedHead(nn.Module):
    """A model whose last Linear (taken for its head) is never called."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 1)
        self.spare = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _nan_inputs() -> object:
    x = pd.DataFrame(biased_data(50).inputs.numpy(), columns=[f"f{i}" for i in range(6)])
    x.loc[[3, 7], "f2"] = np.nan
    x.loc[9, "f4"] = np.inf
    return FairData.from_arrays(x, np.arange(50) % 2, np.arange(50) % 3 > 0)


def _not_reached(*_args, **_kwargs) -> None:
    raise AssertionError("training started before the head was checked")


@dataclass(frozen=True)
class ApiCase:
    """A bad input to the Python API: ``call`` raises a FairtuneError holding ``fragment``
    (or, with ``fragment`` empty, works); ``patch`` replaces ``target`` during the call."""

    id: str
    call: Callable[[], object]
    fragment: str
    patch: tuple[str, Callable[..., object]] | None = None


API_CASES = [
    ApiCase("integer-inputs", _integer_inputs_debias, ""),
    ApiCase(
        "nan-inputs",
        _nan_inputs,
        "inputs hold NaN or infinite values in 3 row(s) in column(s) f2, f4 (first: row 3",
    ),
    ApiCase(
        "dict-output",
        lambda: fairtune.debias(_DictModel(), biased_data(100), method="llft", epochs=1),
        "forward returns a dict with keys ['logits'], not a tensor: fairtune needs a tensor",
    ),
    ApiCase(
        "head-not-called-found-first",
        lambda: fairtune.debias(_UnusedHead(), biased_data(100), method="swift"),
        "the head 'spare' is not called by the model's forward pass",
        patch=("fairtune.methods.base.fisher_diagonal", _not_reached),
    ),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_bad_api_input(case: ApiCase, monkeypatch) -> None:
    if case.patch:
        monkeypatch.setattr(*case.patch)
    if not case.fragment:
        case.call()
        return
    with pytest.raises(FairtuneError) as caught:
        case.call()
    message = str(caught.value)
    assert case.fragment in message and "\n" not in message
    assert "--" not in message, "a Python caller is told of a command-line flag"


def test_models_load_in_eval_mode(work: Path, tmp_path) -> None:
    model, _ = fairtune.load_model(work / "m")
    assert not any(m.training for m in model.modules())
    argv = ["debias", "--data", "german", "--model", str(work / "m"), "--out", str(tmp_path / "d")]
    assert main([*argv, *FAST]) == 0
    result = DebiasResult.load(tmp_path / "d")
    assert not any(m.training for m in result.model.modules())


def test_allow_outside_root_still_opens_a_symlink(work: Path, tmp_path) -> None:
    """--allow-outside-root lets the link through, on purpose: train and predict read it."""
    link = ["--data", str(work / "img" / "link.csv"), "--allow-outside-root"]
    argv = ["train", *link, "--image-col", "file", "--label", "y", "--sensitive", "g"]
    assert main([*argv, "--out", str(tmp_path / "m"), "--epochs", "1", "--image-size", "8"]) == 0
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(work / "m_img"), *link, "--out", str(out)]) == 0
    assert pd.read_csv(out)["score"].notna().all()


def test_predict_skips_a_bad_image_and_leaves_its_row_empty(work: Path, tmp_path) -> None:
    out = tmp_path / "p.csv"
    argv = ["predict", "--model", str(work / "m_img"), "--data", str(work / "img" / "broken.csv")]
    assert main([*argv, "--skip-bad-images", "--out", str(out), "--keep-columns", "file"]) == 0
    scores = pd.read_csv(out)
    assert scores["score"].isna().tolist() == [i == 3 for i in range(8)]
    assert scores["decision"].isna().tolist() == [i == 3 for i in range(8)]


def test_max_image_pixels_sets_pillows_limit_too(work: Path) -> None:
    """A limit above Pillow's own takes effect; an image over twice a small limit is refused
    with fairtune's message, not Pillow's DecompressionBombError."""
    big = 200_000_000
    source = ImageSource([str(work / "img" / "0.png")], Decoding(8), max_pixels=big)
    source.load(0)
    assert big == Image.MAX_IMAGE_PIXELS
    small = ImageSource([str(work / "img" / "0.png")], Decoding(8), max_pixels=100)
    with pytest.raises(FairtuneError, match="more than twice the limit of 100 pixels"):
        small.load(0)
    ImageSource([str(work / "img" / "0.png")], Decoding(8)).load(0)
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS


def test_set_values_end_where_the_study_kind_begins() -> None:
    argv = ["study", "--set", "bmft.impair_epochs=1", "keep", "--model", "m"]
    args = build_parser().parse_args(one_value_per_set([*argv, "--external", "e", "--test", "t",
                                                        "--out", "o"]))
    assert args.kind == "keep" and args.set == ["bmft.impair_epochs=1"]


def test_a_summary_of_undefined_values_warns_nothing(recwarn) -> None:
    """compare printed numpy's 'Degrees of freedom <= 0 for slice' for a metric undefined in
    every seed: the summary now says NaN without a word from numpy."""
    rows = [
        SimpleNamespace(method="llft", metrics=Metrics.undefined(), ci=None) for _ in range(2)
    ]
    summary = summarise(rows, "auc")  # type: ignore[arg-type]  # the fields summarise reads
    assert math.isnan(summary["llft"]["mean"]) and math.isnan(summary["llft"]["std"])
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
def _write_medical(med: Path) -> None:
    """Published medical sets gone wrong, as downloads go wrong."""
    isic2020(med / "kaggle_no_images", "train.csv", "elsewhere")
    yes_no = isic2020(med / "isic_yes_no", "train.csv", "jpeg/train")
    frame = pd.read_csv(yes_no / "train.csv")
    frame.assign(target=frame["target"].map({0: "no", 1: "yes"})).to_csv(
        yes_no / "train.csv", index=False
    )
    six = isic2020(med / "isic_six_patients", "train.csv", "jpeg/train")
    frame.assign(patient_id="IP_" + (frame.index % 6).astype(str)).to_csv(
        six / "train.csv", index=False
    )
    cut = mimic(med / "mimic_cut") / "mimic-cxr-2.0.0-metadata.csv.gz"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    twice = mimic(med / "mimic_twice") / "mimic-cxr-2.0.0-chexpert.csv.gz"
    labels = pd.read_csv(twice)
    with gzip.open(twice, "wt") as handle:
        pd.concat([labels, labels]).to_csv(handle, index=False)
