"""The README's Python quick start runs as written."""

import re
from pathlib import Path

import torch

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
