"""``compare`` on several test sets: the methods fitted once per seed, every row measured
on each test set and named by it; one test set keeps today's rows and files."""

import json

import pandas as pd
import pytest
import test_cli
import test_comparison
from _helpers import biased_data

from fairtune.cli import main
from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.methods.base import Method
from fairtune.reporting.report import plot_files
from fairtune.selection.comparison import compare
from fairtune.selection.search import CompareSettings

pytestmark = pytest.mark.usefixtures("one_thread")

ROW_KEYS, SETTINGS = test_comparison.ROW_KEYS, test_comparison.SETTINGS

ONE_SEED = {**SETTINGS, "seeds": [0], "n_boot": 0}


def _untimed(value):
    """``value`` without its wall times (``*time_s`` keys), which vary run to run."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not k.endswith("time_s")}
    return [_untimed(v) for v in value] if isinstance(value, list) else value


def _measured(row) -> str:
    """A row's results.json form without wall times and test set name, comparable as text."""
    out = {k: v for k, v in row.to_dict().items() if k != "test_set"}
    return json.dumps(_untimed(out), sort_keys=True)


@pytest.fixture
def fits(monkeypatch) -> list[str]:
    """The name of every method fitted, in order."""
    fitted: list[str] = []
    original = Method.fit

    def counted(self, *args, **kwargs):
        fitted.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Method, "fit", counted)
    return fitted


def test_two_test_sets_give_rows_for_each_from_one_fit_per_method_and_seed(start_model, fits):
    external = biased_data(400, seed=2)
    tests = {"id": biased_data(300, seed=3), "ood": biased_data(300, seed=5, skew=0.5)}
    settings = CompareSettings(**SETTINGS)
    rows = compare(start_model, external, tests, settings)
    assert sorted(fits) == sorted(["llft", "bmft"] * len(settings.seeds))  # not per test set
    per_seed = ("baseline", "llft", "bmft", "threshold_optimizer", "selected")
    expected = [(m, s, name) for s in (0, 1) for name in tests for m in per_seed]
    assert [(r.method, r.seed, r.test_set) for r in rows] == expected
    for row in rows:
        assert row.to_dict()["test_set"] == row.test_set
        assert "regret" in row.to_dict()["selection"] if row.method == "selected" else True
    for seed in (0, 1):
        on = {name: [r for r in rows if r.seed == seed and r.test_set == name] for name in tests}
        # thresholds and choices come from held-out external data: alike on every test set
        assert [r.threshold for r in on["id"]][:3] == [r.threshold for r in on["ood"]][:3]
        assert [r.config for r in on["id"]] == [r.config for r in on["ood"]]
        # while the test sets measure differently
        assert on["id"][0].metrics.auc != on["ood"][0].metrics.auc
    # each test set's rows are what a comparison on that set alone gives
    for name, data in tests.items():
        alone = compare(start_model, external, data, settings)
        mine = [r for r in rows if r.test_set == name]
        assert all(r.test_set is None for r in alone)
        for a, b in zip(alone, mine, strict=True):
            assert _measured(a) == _measured(b)


def test_one_test_set_gives_exactly_todays_rows(start_model):
    external, test = biased_data(400, seed=2), biased_data(300, seed=3)
    settings = CompareSettings(**ONE_SEED)
    plain = compare(start_model, external, test, settings)
    named = compare(start_model, external, {"only": test}, settings)
    for a, b in zip(plain, named, strict=True):
        assert a.test_set is None and b.test_set is None
        assert "test_set" not in a.to_dict()
        if a.method in ("baseline", "llft", "bmft"):
            assert tuple(a.to_dict()) == ROW_KEYS
        assert _measured(a) == _measured(b)


def test_every_test_set_needs_the_external_sets_groups(start_model):
    external, test = biased_data(100, seed=2), biased_data(100, seed=3)
    renamed = FairData(test.inputs, test.labels, test.groups, ["x", "y"])
    settings = CompareSettings(methods=["llft"])
    with pytest.raises(FairtuneError, match="test set 'ood' groups"):
        compare(start_model, external, {"id": test, "ood": renamed}, settings)
    with pytest.raises(FairtuneError, match="at least one test set"):
        compare(start_model, external, {}, settings)


def test_plot_files_are_one_per_test_set_with_safe_distinct_names():
    assert plot_files([None]) == {None: "fairness_vs_auc.png"}
    assert plot_files(["adult:test", "ood"]) == {
        "adult:test": "fairness_vs_auc_adult_test.png",
        "ood": "fairness_vs_auc_ood.png",
    }
    assert len(set(plot_files(["a:b", "a/b"]).values())) == 2


def test_cli_compare_takes_test_several_times(workdir, tmp_path, capsys):
    shifted = pd.read_csv(workdir / "parts" / "test.csv")
    shifted[shifted.sex == "Male"].iloc[:60].pipe(
        lambda men: pd.concat([men, shifted[shifted.sex == "Female"].iloc[:20]])
    ).to_csv(tmp_path / "shifted.csv", index=False)
    out = tmp_path / "cmp"
    argv = test_cli.compare_argv(workdir, out, "--test", str(tmp_path / "shifted.csv"))
    argv += ["--methods", "llft", "--n-boot", "0", "--set", "llft.epochs=1"]
    assert main(argv) == 0
    rows = json.loads((out / "results.json").read_text())
    methods = ["baseline", "llft", "threshold_optimizer", "selected"]
    expected = [(m, name) for name in ("test", "shifted") for m in methods]
    assert [(r["method"], r["test_set"]) for r in rows] == expected
    assert list(pd.read_csv(out / "results.csv")["test_set"]) == [n for _, n in expected]
    for name in ("test", "shifted"):
        assert (out / f"fairness_vs_auc_{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "fairness_vs_auc.png").exists()
    saved = json.loads((out / "settings.json").read_text())
    assert set(saved["tests"]) == {"test", "shifted"}
    printed = capsys.readouterr().out
    assert "On test set test:" in printed and "On test set shifted:" in printed
