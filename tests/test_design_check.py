"""scripts/check_design.py on tiny packages written for each test."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_design.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("check_design", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def write(src: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = src / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


CLEAN = {
    "__init__.py": "from pkg import low\nfrom pkg.sub import mid\n",
    "low.py": "X = 1\n",
    "sub/__init__.py": "from .mid import Y\n",
    "sub/mid.py": "from pkg.low import X\nY = X\n",
    "top.py": (
        "from pkg import low\nfrom pkg.sub import Y\n\n"
        "def f(a, b, c, d, e, f, g, *args, **kwargs):\n    return low.X + Y\n\n"
        "class C:\n    def m(self, a, b, c, d, e, f, g):\n        pass\n"
    ),
}


def test_clean_package_passes(check, tmp_path, capsys):
    src = write(tmp_path, CLEAN)
    modules = check.find_modules(src, "pkg")
    assert set(modules) == {"pkg", "pkg.low", "pkg.sub", "pkg.sub.mid", "pkg.top"}
    edges = {(e.source, e.target) for e in check.import_edges(modules)}
    # a name that is not a submodule resolves to the package; a relative import to its module
    assert ("pkg.top", "pkg.sub") in edges and ("pkg.sub", "pkg.sub.mid") in edges
    assert ("pkg", "pkg.low") in edges and ("pkg.sub.mid", "pkg.low") in edges
    assert check.import_cycles(modules, check.import_edges(modules)) == []
    assert check.long_signatures(modules) == []
    assert check.report(src, "pkg") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (
        "design check: 0 import cycles, largest module pkg/top.py (9 lines), "
        "0 functions over 7 parameters, 0 keyed row reads, 0 upward imports, 0 hand-kept lists"
    )


def test_cycle_through_lazy_import_is_found(check, tmp_path, capsys):
    src = write(
        tmp_path,
        {
            **CLEAN,
            "low.py": "X = 1\n\ndef late():\n    from pkg.top import f\n    return f\n",
        },
    )
    modules = check.find_modules(src, "pkg")
    cycles = check.import_cycles(modules, check.import_edges(modules))
    assert len(cycles) == 1
    members = {e.source for e in cycles[0]}
    assert {"pkg.low", "pkg.top"} <= members and "pkg" not in members
    lazy = [e for e in cycles[0] if e.source == "pkg.low"]
    assert [(e.target, e.line, e.text) for e in lazy] == [
        ("pkg.top", 4, "from pkg.top import f")
    ]
    assert check.report(src, "pkg") == 1
    assert "pkg/low.py:4: from pkg.top import f" in capsys.readouterr().out


def test_self_import_is_a_cycle(check, tmp_path):
    src = write(tmp_path, {**CLEAN, "low.py": "X = 1\n\ndef again():\n    from . import low\n"})
    modules = check.find_modules(src, "pkg")
    cycles = check.import_cycles(modules, check.import_edges(modules))
    assert [[(e.source, e.target) for e in c] for c in cycles] == [[("pkg.low", "pkg.low")]]


def test_eight_parameters_are_flagged(check, tmp_path, capsys):
    src = write(
        tmp_path,
        {
            **CLEAN,
            "wide.py": "class C:\n    def m(self, a, b, c, d, e, f, g, *, h):\n        pass\n",
        },
    )
    modules = check.find_modules(src, "pkg")
    flagged = check.long_signatures(modules)
    assert [(s.module, s.line, s.name, s.count) for s in flagged] == [("pkg/wide.py", 2, "m", 8)]
    assert check.report(src, "pkg") == 1
    assert "1 functions over 7 parameters" in capsys.readouterr().out.splitlines()[-1]


def test_oversized_module_fails(check, tmp_path, capsys):
    src = write(tmp_path, {**CLEAN, "big.py": "X = 1\n" * (check.MAX_LINES + 1)})
    sizes = check.module_sizes(check.find_modules(src, "pkg"))
    assert (sizes[0][0].shown, sizes[0][1]) == ("pkg/big.py", check.MAX_LINES + 1)
    assert check.report(src, "pkg") == 1
    assert f"pkg/big.py: {check.MAX_LINES + 1} lines  OVER LIMIT" in capsys.readouterr().out


def test_the_package_itself_keeps_the_design_rules(check, capsys):
    """fairtune: no import cycle (lazy imports included), no module over 400 lines, no
    function over 7 parameters."""
    src = SCRIPT.parents[1] / "src"
    assert check.report(src, "fairtune") == 0, capsys.readouterr().out


def test_string_keyed_reads_of_a_rows_record_are_flagged_outside_the_json_edge(check, tmp_path):
    src = write(
        tmp_path,
        {
            "__init__.py": "",
            "table.py": (
                "def cell(row):\n"
                "    return row.selection['chosen'], row.metrics.get('auc'), row.selection.chosen\n"
                "def head(row, key):\n"
                "    return row.metrics_tuned.value('eopp'), row.metrics_tuned.value(key)\n"
                "def fine(d):\n"
                "    return d['chosen'], d.get('auc')\n"
            ),
        },
    )
    found = check.keyed_access(check.find_modules(src, "pkg"))
    assert [(f.line, f.text) for f in found] == [
        (2, ".selection['chosen']"),
        (2, ".metrics['auc']"),
        (4, ".metrics_tuned['eopp']"),
    ]


def test_an_import_of_a_later_stage_is_flagged_unless_named(check, tmp_path):
    src = write(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "from pkg.high import x\n",
            "high.py": "def f():\n    from pkg.low import y\n    import pkg.top\n",
            "top.py": "import pkg.low\n",
            "stray.py": "",
        },
    )
    modules = check.find_modules(src, "pkg")
    edges = check.import_edges(modules)
    stages = (("one", ("low", "")), ("two", ("high",)), ("three", ("top",)))
    found = check.upward_imports(modules, edges, stages, allowed=())
    assert [(f.module, f.line, f.text) for f in found] == [
        ("pkg/high.py", 3, "two imports three: import pkg.top"),
        ("pkg/low.py", 1, "one imports two: from pkg.high import x"),
        ("pkg/stray.py", 1, "not in the stage table"),
    ]
    allowed = (("pkg.high", "pkg.top"), ("pkg.low", "pkg.high"))
    assert [f.text for f in check.upward_imports(modules, edges, stages, allowed)] == [
        "not in the stage table"
    ]


def test_a_hand_kept_copy_of_a_registry_is_flagged(check, tmp_path):
    src = write(
        tmp_path,
        {
            "__init__.py": "",
            "home.py": "NAMES = ('sgd', 'adam', 'lion')\n",
            "copy.py": (
                "CHOICES = ('sgd', 'adam')\n"
                "OTHER = ('sgd', 'momentum')\n"
                "HELP = 'one of sgd, adam, lion'\n"
                "PAIR = 'sgd or adam'\n"
                "MINE = ('sgd', 'adam')  # own list: a reason\n"
            ),
        },
    )
    modules = check.find_modules(src, "pkg")
    registry = check.Registry("optimizers", "pkg.home", "NAMES")
    found = check.hand_kept_lists(modules, {registry: {"sgd", "adam", "lion"}})
    assert [(f.module, f.line) for f in found] == [("pkg/copy.py", 1), ("pkg/copy.py", 3)]
