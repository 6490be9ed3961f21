"""The README's Python quick start runs as written."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _first_python_block() -> str:
    match = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert match, "README.md has no ```python block"
    return match.group(1)


def test_readme_python_block_runs(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_first_python_block(), str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "EOdds (mean)" in printed and "swift" in printed
    assert (tmp_path / "model-swift" / "mask.safetensors").is_file()
    debiased, result = namespace["debiased"], namespace["result"]
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, debiased.state_dict()[key]), key
    assert namespace["external"].group_names == ("Female", "Male")
