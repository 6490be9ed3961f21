"""Bad inputs and faults, as a hostile but realistic user tries them: one table of cases.

Each case runs the CLI in-process and states the exit code, a fragment of the one
line it must print (an error, or a warning in the CLI's own format), the files that
must come through unchanged and the leftovers that must not exist. A full disk is
tried on a small tmpfs where the machine allows mounting one, and everywhere with
writers that fail as a full disk does.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors import SafetensorError

from fairtune.backbones import SmallCNN
from fairtune.cli import main
from fairtune.io import MARKER

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--method", "llft", "--set", "epochs=1"]
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
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


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
        'Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
        'message: "No space left on device" })'
    )


@pytest.mark.parametrize(
    ("target", "writer"),
    [
        ("fairtune.models.save_file", _enospc),
        ("fairtune.models.save_file", _safetensors_full),
        ("fairtune.masks.save_file", _safetensors_full),
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
    lines = _stderr_lines(capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "No space left on device" in lines[0] and "out" in lines[0], lines
    assert {p.name: _digest(p) for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
