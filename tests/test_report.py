"""The comparison table, the evaluate table and the plot, from hand-built result rows."""

import csv
import math

import matplotlib
import pytest
from matplotlib.colors import to_rgba
from rich.console import Console

from fairtune.evaluation.measurement import VALUE_KEYS, Intervals, Metrics
from fairtune.io import write_csv
from fairtune.reporting import plot, report
from fairtune.selection.records import SearchRecord
from fairtune.selection.results import ResultRow


def point(eodds: float, flagged: bool = False) -> dict:
    """An operating point's JSON form, as evaluate_scores writes it."""
    groups = ["b"] if flagged else []
    return {
        "criterion": "specificity",
        "level": 0.8,
        "threshold": 0.42,
        "achieved": 0.8,
        "tpr": {"a": 0.7, "b": 0.6},
        "fpr": {"a": 0.2, "b": 0.1},
        "eodds_mean": eodds,
        "eodds_worst": eodds,
        "eopp": eodds,
        "dp": eodds,
        "accuracy": 0.8,
        "degenerate": {"flagged": flagged, "groups": groups, "rates": dict.fromkeys(groups, 0.0)},
    }


def metrics(base: float, flagged: bool = False, at_point: dict | None = None) -> Metrics:
    """Metrics whose every value is ``base`` (ABROCA ``base / 10``)."""
    out = dict.fromkeys(VALUE_KEYS, base)
    out.update(
        abroca=base / 10,
        threshold=0.5,
        n=100,
        by_group={},
        operating_points={"specificity_0.8": at_point or point(base), "sensitivity_0.8": None},
        degenerate=flagged,
        degenerate_groups=["b"] if flagged else [],
    )
    return Metrics.from_dict(out)


def row(method: str, seed: int, half: Metrics, tuned: Metrics) -> ResultRow:
    return ResultRow(
        method=method,
        seed=seed,
        config={},
        wall_time_s=1.0,
        threshold=0.4,
        threshold_rule="rate",
        metrics=half,
        metrics_tuned=tuned,
        ci=None,
        ci_tuned=None,
        selection=SearchRecord("defaults (no search)", {}, [], 0.0),
    )


def rows(with_references: bool) -> list[ResultRow]:
    """Two seeds; bmft degenerate at 0.5 in seed 1 only; swift degenerate at the point."""
    out = []
    for seed in (0, 1):
        out.append(row("baseline", seed, metrics(0.3), metrics(0.31)))
        out.append(row("bmft", seed, metrics(0.1, flagged=seed == 1), metrics(0.2)))
        out.append(row("swift", seed, metrics(0.15, at_point=point(0.01, True)), metrics(0.25)))
        if with_references:
            out.append(row("selected", seed, metrics(0.12), metrics(0.22)))
            out.append(row("threshold_optimizer", seed, metrics(0.05), metrics(0.06, True)))
    return out


def cells(table, header_start: str) -> list[str]:
    """The cells of the column whose header starts with ``header_start``."""
    (column,) = [c for c in table.columns if str(c.header).startswith(header_start)]
    return [str(c) for c in column._cells]


def test_compare_table_puts_t_first_and_marks_degenerate_cells():
    table = report.compare_table(rows(with_references=False), "title")
    headers = [str(c.header) for c in table.columns]
    assert "EOdds (mean)\nt | 0.5" in headers
    assert "accuracy\nt | 0.5" in headers
    assert not any("0.5 | t" in h for h in headers)
    assert headers[-3:] == ["ABROCA", "EOdds (mean)\nspecificity 0.8", "time s"]
    baseline, bmft, swift = cells(table, "EOdds (mean)\nt")
    # the chosen threshold t first, then 0.5; mean±std over the two seeds
    assert baseline == "0.310±0.000 | 0.300±0.000"
    # bmft is degenerate at 0.5 in one of its seeds: every 0.5 cell carries the mark
    assert bmft == "0.200±0.000 | 0.100±0.000" + report.DEGENERATE
    for header in ("accuracy", "DP"):
        assert cells(table, header)[1].endswith(" | 0.100±0.000" + report.DEGENERATE)
    assert cells(table, "AUC")[1] == "0.100±0.000"  # threshold-free: never marked
    assert swift == "0.250±0.000 | 0.150±0.000"
    assert cells(table, "EOdds (mean)\nspecificity") == [
        "0.300±0.000",
        "0.100±0.000",
        "0.010±0.000" + report.DEGENERATE,
    ]
    assert cells(table, "ABROCA") == ["0.030±0.000", "0.010±0.000", "0.015±0.000"]
    caption = str(table.caption)
    assert "mean±std over 2 seeds" in caption
    assert f"{report.DEGENERATE} degenerate" in caption and "below 1% or above 99%" in caption
    assert "'t | 0.5': at the chosen threshold t, then at threshold 0.5" in caption


def test_overall_table_shows_the_verdicts_and_warns_of_a_degenerate_model():
    m = metrics(0.1, flagged=True, at_point=point(0.02, True))
    table = report.overall_table(m, Intervals({"eodds_mean": (0.05, 0.15)}), "title")
    values = dict(zip(cells(table, "metric"), cells(table, "value"), strict=True))
    assert values["EOdds (mean)"] == "0.100 [0.050, 0.150]" + report.DEGENERATE
    assert values["AUC"] == "0.100"  # threshold-free: not marked
    assert values["ABROCA"] == "0.010"
    assert values["EOdds (mean) at specificity 0.8"] == "0.020" + report.DEGENERATE + " (t 0.420)"
    assert values["EOdds (mean) at sensitivity 0.8"] == "n/a"
    assert "WARNING: degenerate at threshold 0.500: group(s) b" in str(table.caption)

    clean = report.overall_table(metrics(0.1), None, "title")
    assert clean.caption is None
    assert report.DEGENERATE not in "".join(cells(clean, "value"))


def rendered(table) -> str:
    console = Console(record=True, width=300)
    console.print(table)
    return console.export_text()


def test_the_printed_tables_carry_the_mark():
    assert "0.100±0.000" + report.DEGENERATE in rendered(
        report.compare_table(rows(with_references=False), "title")
    )


@pytest.fixture
def figures(monkeypatch):
    """The figures fairness_plot saves, kept for inspection."""
    saved = []
    real = plot.save_figure

    def keep(fig, path):
        saved.append(fig)
        real(fig, path)

    monkeypatch.setattr(plot, "save_figure", keep)
    return saved


@pytest.mark.parametrize("with_references", [False, True])
def test_plot_has_a_legend_markers_and_no_temporary_paths(tmp_path, figures, with_references):
    path = tmp_path / "fairness_vs_auc.png"
    title = f"{tmp_path}/model: external {tmp_path}/ext.csv, test {tmp_path}/test.csv"
    plot.fairness_plot(rows(with_references), path, title)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (fig,) = figures
    (ax,) = fig.axes
    assert str(tmp_path) not in ax.get_title()
    assert ax.get_title().startswith("model: external ext.csv, test test.csv")
    assert ax.get_xlabel().startswith("AUC") and "at t" in ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    expected = ["baseline", "bmft", "swift"]
    if with_references:
        expected += ["selected", "threshold_optimizer (degenerate)"]
    assert [t for t in legend if t != "Pareto front"] == expected
    # every point at the chosen threshold t: bmft's degeneracy at 0.5 does not matter here
    lines = {c.get_label(): c.lines[0] for c in ax.containers}
    assert lines["bmft"].get_ydata()[0] == pytest.approx(0.2)
    assert lines["baseline"].get_marker() == "*"
    assert lines["bmft"].get_marker() == "o"
    if with_references:
        assert lines["selected"].get_marker() == "s"
        hollow = lines["threshold_optimizer (degenerate)"]
        assert hollow.get_marker() == "D" and to_rgba(hollow.get_markerfacecolor())[3] == 0
        # AUC and EOdds rise together, so all are on the front but the degenerate one
        (step,) = [line for line in ax.lines if line.get_label() == "Pareto front"]
        assert list(step.get_xdata()) == pytest.approx([0.2, 0.22, 0.25, 0.31])
    assert to_rgba(lines["bmft"].get_markerfacecolor())[3] == 1
    caption = " ".join(t.get_text() for t in fig.texts)
    assert "Error bars: standard deviation over 2 seeds" in caption
    assert "Hollow: degenerate at t" in caption


def test_pareto_front_is_the_undominated_methods_by_auc():
    points = {
        "a": (0.80, 0.10),
        "b": (0.85, 0.20),
        "c": (0.84, 0.25),  # dominated by b
        "d": (0.90, 0.30),
        "e": (0.80, 0.15),  # dominated by a
        "f": (math.nan, 0.0),  # undefined: left out
    }
    assert plot.pareto_front(points) == ["a", "b", "d"]
    assert plot.pareto_front({"only": (0.9, 0.1)}) == ["only"]


def test_plot_draws_the_front_as_a_step_line(tmp_path, figures):
    data = rows(with_references=False)  # AUC and EOdds rise together: all on the front
    plot.fairness_plot(data, tmp_path / "p.png", "Adult")
    (ax,) = figures[0].axes
    (step,) = [line for line in ax.lines if line.get_label() == "Pareto front"]
    assert step.get_drawstyle() == "steps-pre"
    assert list(step.get_xdata()) == pytest.approx([0.2, 0.25, 0.31])
    assert matplotlib.get_backend().lower() == "agg"


def test_short_title_keeps_words_and_shortens_paths():
    assert plot.short_title("Adult, skewed training data") == "Adult, skewed training data"
    assert plot.short_title("/tmp/x/y/model: external /a/b/ext.csv, test c/t.csv") == (
        "model: external ext.csv, test t.csv"
    )


def test_csv_rows_hold_the_verdicts_once(tmp_path):
    flat = report.flat_rows(rows(with_references=False))
    line = flat[4]  # bmft, seed 1
    assert line["degenerate@0.5"] is True and line["degenerate_groups@0.5"] == "b"
    assert line["degenerate@t"] is False
    assert line["abroca"] == pytest.approx(0.01)
    assert line["eodds_mean@specificity_0.8"] == 0.1
    assert line["eodds_mean@sensitivity_0.8"] is None
    assert not any(k.startswith(("operating_points", "by_group")) for k in line)
    write_csv(tmp_path / "r.csv", flat)
    with open(tmp_path / "r.csv") as f:
        assert "abroca" in next(csv.reader(f))
