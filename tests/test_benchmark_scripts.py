"""The benchmark scripts import against the package as it is, and the result files they keep
(written by earlier versions) still read back into result rows and print their tables."""

import argparse
import importlib
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_"))
KEPT = sorted(p.name for p in (BENCHMARKS / "results").glob("quality*.json"))


@pytest.fixture
def benchmarks_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield
    for name in [*SCRIPTS, "_common"]:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_script_imports(script, benchmarks_on_path):
    module = importlib.import_module(script)
    assert callable(getattr(module, "main", None)) or module.__doc__


@pytest.mark.parametrize("kept", KEPT)
def test_kept_quality_results_print_their_tables(kept, benchmarks_on_path, capsys):
    quality = importlib.import_module("quality")
    payload = quality.main(["--tables-from", str(BENCHMARKS / "results" / kept)])
    shown = capsys.readouterr().out
    assert payload["protocols"] and "selected" in shown and "baseline" in shown


def test_results_files_record_no_machine_folders(benchmarks_on_path, tmp_path):
    common = importlib.import_module("_common")
    args = argparse.Namespace(
        json=str(BENCHMARKS / "results" / "x.json"),
        tables_from=tmp_path / "elsewhere" / "y.json",
        seeds=[0, 1],
        inputs=[str(tmp_path / "a.csv"), "relative/b.csv"],
        out=Path("benchmarks/results/z.json"),  # a relative Path, as quality.py's default
    )
    assert common.recorded_args(args) == {
        "json": "benchmarks/results/x.json",
        "tables_from": "y.json",
        "seeds": [0, 1],
        "inputs": ["a.csv", "relative/b.csv"],
        "out": "benchmarks/results/z.json",
    }
    json.dumps(common.recorded_args(args))  # every value JSON can write
    for path in (BENCHMARKS / "results").glob("*.json"):
        text = path.read_text()
        assert str(BENCHMARKS.parent) not in text and "/tmp/" not in text, path.name
