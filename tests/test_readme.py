"""The README's Python quick start runs as written."""

import re
import shlex
from pathlib import Path

import _medical_layouts
import pytest
import torch

from fairtune.cli import main
from fairtune.datasets.presets import PRESETS

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert blocks, "README.md has no ```python block"
    return blocks


def test_readme_python_block_runs(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    quick_start, notebook = _python_blocks()  # the second continues the first, as in a notebook
    exec(compile(quick_start, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "EOdds (mean)" in printed and "swift" in printed
    assert (tmp_path / "model-swift" / "mask.safetensors").is_file()
    debiased, result = namespace["debiased"], namespace["result"]
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, debiased.state_dict()[key]), key
    assert namespace["external"].group_names == ("Female", "Male")

    exec(compile(notebook, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    frame, rows = namespace["frame"], namespace["rows"]
    assert len(frame) == len(rows) and list(frame.method) == [r.method for r in rows]
    assert "eodds_mean@t_high" in printed and "FairData(300 rows" in printed
    assert "Female: " in printed and "DebiasResult(swift" in printed


def _recipes() -> list[str]:
    """The one-line recipes of the README's published medical sets, one per preset."""
    section = README.read_text().split("## Published medical data sets", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "the medical section has no ```sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


_BUILDERS = {
    "isic2020": lambda d: _medical_layouts.isic2020(d, "train.csv", "jpeg/train"),
    "isic2019": _medical_layouts.isic2019,
    "ham10000": _medical_layouts.ham10000,
    "fitzpatrick17k": lambda d: _medical_layouts.fitzpatrick(d, extension=""),
    "chexpert": _medical_layouts.chexpert,
    "mimic-cxr": _medical_layouts.mimic,
}


def test_readme_covers_every_preset():
    named = {re.search(r"--data ([a-z0-9-]+):", line).group(1) for line in _recipes()}
    assert named == set(PRESETS) == set(_BUILDERS)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", _recipes(), ids=lambda r: r.split("--data ")[1].split(":")[0])
def test_readme_medical_recipe_runs_as_printed(recipe, tmp_path, monkeypatch, capsys, one_thread):
    """The line as printed, $D a small synthetic download: every command succeeds, and the
    only warning is the true one that so small an external part is mostly noise."""
    monkeypatch.setattr(_medical_layouts, "PATIENTS", 40)  # a few patients per part and cell
    monkeypatch.chdir(tmp_path)
    assignment, commands = recipe.split(";", 1)
    preset = re.search(r"--data ([a-z0-9-]+):", commands).group(1)
    folder = tmp_path / "download"
    folder.mkdir()
    _BUILDERS[preset](folder)
    assert assignment.startswith("D=")
    for command in commands.replace("$D", str(folder)).split("&&"):
        argv = shlex.split(command)
        assert argv[0] == "fairtune"
        assert main(argv[1:]) == 0, command
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert all("the external set has only" in line for line in warned), warned
