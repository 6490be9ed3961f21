"""Atomic outputs: whole or nothing, never over an input or a folder fairtune did not write."""

from __future__ import annotations

import os
import stat

import pytest

from fairtune.cli import main
from fairtune.errors import FairtuneError
from fairtune.io import MARKER, atomic_dir, atomic_write_text, refuse_inputs


def test_atomic_dir_replaces_its_own_output_whole(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (out / MARKER).is_file() and (out / "a.txt").read_text() == "1"
    with atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "b.txt"])
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "c.txt").write_text("3")
        raise RuntimeError("the job failed half way")
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "b.txt"])  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left behind


def test_atomic_dir_never_wipes_a_folder_it_did_not_write(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(FairtuneError, match="fairtune did not write"), atomic_dir(folder):
        pytest.fail("the block must not run")
    assert (folder / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    with atomic_dir(tmp_path / "empty") as tmp:  # an empty folder may be filled
        (tmp / "x").write_text("x")
    assert (tmp_path / "empty" / "x").is_file()


def test_outputs_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
        atomic_write_text(tmp_path / "t.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "t.txt").stat().st_mode) == 0o644


def test_refuse_inputs_covers_same_inside_and_holding(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    table = data / "in.csv"
    table.write_text("x\n1\n")
    for out in (table, data / "sub", data):  # the input itself, inside its folder, holding it
        with pytest.raises(FairtuneError, match="would overwrite the input"):
            refuse_inputs(out, [str(table) if out == data else data])
    refuse_inputs(tmp_path / "elsewhere", [table, None])


def test_cli_output_folder_holding_the_input_is_refused(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    table = data / "in.csv"
    table.write_text("y,sex,x\n" + "".join(f"{i % 2},{'FM'[i % 3 % 2]},{i}\n" for i in range(60)))
    code = main(
        ["split", "--data", str(table), "--label", "y", "--sensitive", "sex", "--out", str(data)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "would overwrite the input" in err and len(err.splitlines()) == 1
    assert table.is_file()
    monkeypatch.chdir(tmp_path)
    code = main(
        ["split", "--data", "data/in.csv", "--label", "y", "--sensitive", "sex", "--out", "."]
    )
    assert code == 2 and "would overwrite the input" in capsys.readouterr().err


def test_bad_outputs_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for out, expected in ((a_file, "is not a folder"), (mine, "fairtune did not write")):
        code = main(["demo", "--images", "--arch", "cnn", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and expected in err and len(err.splitlines()) == 1
    assert a_file.read_text() == "mine" and (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(FairtuneError, match="is a folder: name a file"):
        refuse_inputs(mine, [], directory=False)
    monkeypatch.chdir(tmp_path / "mine")
    (mine / "notes.txt").unlink()
    refuse_inputs(".", ["german:external", "adult"])  # built-in names are not paths
