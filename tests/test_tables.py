"""The headline table fits 80 and 100 columns whole; the other metrics fold to fit; the
verdicts follow the intervals; the run's progress prints one line per candidate."""

import re

import pytest
from _helpers import compare_argv
from rich.console import Console
from test_report import metrics, row

from fairtune.cli import main
from fairtune.console import console
from fairtune.evaluation.criterion import OBJECTIVE_NAMES, OBJECTIVES, Criterion, metric
from fairtune.evaluation.measurement import Intervals
from fairtune.finetune.step_plan import rung_sizes
from fairtune.reporting import report, tables
from fairtune.studies.summary import Interval, interval

WIDE_CI = Intervals({"eodds_mean": (-0.303, 0.445), "auc": (0.512, 0.734)})


def long_rows() -> list:
    """One seed with intervals as wide as they come: negative bounds, every method name."""
    out = []
    for name, base in (
        ("baseline", 0.3),
        ("bmft", 0.123),
        ("random_mask", 0.2),
        ("threshold_optimizer", 0.05),
        ("selected", 0.123),
    ):
        r = row(name, 0, metrics(base), metrics(base, flagged=name == "random_mask"))
        r.ci = r.ci_tuned = WIDE_CI
        out.append(r)
    return out


def render(table, width: int) -> str:
    out = Console(record=True, width=width, file=open("/dev/null", "w"))  # noqa: SIM115
    out.print(table)
    return out.export_text()


@pytest.mark.parametrize("width", [80, 100])
def test_headline_cells_are_whole_at_80_and_100_columns(width):
    rows = long_rows()
    text = render(tables.headline_table(rows, "a long title: model/ on external.csv"), width)
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines())
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    for line in tables.headlines(rows, Criterion()):
        # every cell on the method's one line, whole
        assert all(cell in lines[line.method] for cell in line.cells()), line
    assert "0.123 [-0.303, 0.445]" in lines["bmft"]
    assert "0.200 [-0.303, 0.445]" + tables.DEGENERATE in lines["random_mask"]
    assert "threshold_optimizer" in lines


@pytest.mark.parametrize("objective", OBJECTIVE_NAMES)
def test_headline_leads_with_the_criterions_metric(objective):
    headers = tables.headline_headers(Criterion(objective))
    assert headers[0] == "method" and headers[1] == "AUC"
    assert headers[2].startswith(metric(OBJECTIVES[objective].key).label + " at t")


def bounds(low: float, high: float) -> Interval:
    return Interval((low + high) / 2, low, high, 1, "bootstrap, one seed")


def test_verdict_needs_the_intervals_apart():
    start = bounds(0.2, 0.3)
    assert tables.verdict(bounds(0.05, 0.19), start, False, "eodds_mean") == tables.FAIRER
    assert tables.verdict(bounds(0.31, 0.4), start, False, "eodds_mean") == tables.LESS_FAIR
    assert tables.verdict(bounds(0.1, 0.21), start, False, "eodds_mean") == tables.UNCHANGED
    assert tables.verdict(bounds(0.05, 0.1), start, True, "eodds_mean") == tables.NO_EVIDENCE
    assert tables.verdict(bounds(0.05, 0.1), None, False, "eodds_mean") == tables.NO_VERDICT


def test_headlines_compare_with_the_starting_model():
    rows = long_rows()
    for r in rows:
        eodds = r.metrics_tuned.eodds_mean
        r.ci_tuned = Intervals({"eodds_mean": (eodds - 0.01, eodds + 0.01)})
    by = {h.method: h for h in tables.headlines(rows, Criterion())}
    assert by["baseline"].verdict == "start"
    assert by["bmft"].verdict == tables.FAIRER  # 0.123±0.01 against 0.3±0.01
    assert by["bmft"].delta_auc == pytest.approx(0.123 - 0.3)
    assert by["random_mask"].verdict == tables.NO_EVIDENCE


@pytest.mark.parametrize("width", [80, 100])
def test_the_other_metrics_fold_to_the_width_and_keep_every_cell(width):
    full = report.compare_table(long_rows(), "title")
    pieces = tables.fold(full, width)
    assert len(pieces) > 1
    text = "".join(render(p, width) for p in pieces)
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines())
    for column in full.columns[1:]:
        for cell in column.cells:
            for part in str(cell).split(" | "):  # a 't | 0.5' cell may fold at its bar
                assert part in text
    # every piece starts with the methods
    assert all(str(p.columns[0].header) == "method" for p in pieces)
    assert pieces[-1].caption == full.caption and pieces[0].caption is None


def test_one_table_when_it_fits():
    full = report.compare_table(long_rows(), "title")
    assert tables.fold(full, 1000) == [full]


def grid_argv(workdir, out, *options: str) -> list[str]:
    """compare with LLFT's two-point grid on two seeds."""
    grid = ["--grid", "--grid-set", "llft.lr=0.01,0.03", "--grid-set", "llft.beta=0.1"]
    grid += ["--grid-set", "llft.min_steps=5", "--seeds", "0", "1"]
    return compare_argv(workdir, out, "--methods", "llft", "--n-boot", "10", *grid, *options)


LINE = re.compile(
    r"^\[(\d+)/4\] llft seed (\d) lr=0\.0[13] beta=0\.1 min_steps=5: held-out AUC \d\.\d{3}, "
    r"EOdds \(mean\) at t \d\.\d{3}.* \(.*elapsed \d:\d\d:\d\d, about \d:\d\d:\d\d left\)$",
    re.MULTILINE,
)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_compare_to_a_file_prints_a_line_per_candidate(workdir, tmp_path, capsys, jobs):
    monkey_width = console.width
    console.width = 80  # as a narrow terminal would be: the headline still fits
    try:
        assert main(grid_argv(workdir, tmp_path / "o", "--jobs", jobs)) == 0
    finally:
        console.width = monkey_width
    out = capsys.readouterr().out
    found = LINE.findall(out)
    assert [int(k) for k, _ in found] == [1, 2, 3, 4]
    assert [seed for _, seed in found] == ["0", "0", "1", "1"]
    headline = out[out.index("┏") :].split("\n\n")[0]
    assert "…" not in headline
    assert re.search(r"│ llft +│ \d\.\d{3} │ +\d\.\d{3} \[-?\d\.\d{3}, \d\.\d{3}\] │", headline)


def test_quiet_prints_no_progress(workdir, tmp_path, capsys):
    assert main(grid_argv(workdir, tmp_path / "o", "--quiet")) == 0
    out = capsys.readouterr().out
    assert not LINE.search(out) and "/4]" not in out
    assert "llft" in out  # the tables still are


def test_the_terminal_view_names_the_candidate_and_puts_phase_bars_under_it(
    start_model, monkeypatch
):
    import io

    from _helpers import biased_data

    from fairtune import console as terminal
    from fairtune.selection.comparison import CompareSettings, compare

    screen = io.StringIO()
    fake = Console(file=screen, force_terminal=True, width=120)
    monkeypatch.setattr(terminal, "console", fake)
    settings = CompareSettings(
        methods=["llft"],
        grid=True,
        grids={"llft": {"lr": [0.01, 0.03], "beta": [0.1], "min_steps": [5]}},
    )
    settings.n_boot = 0
    compare(start_model, biased_data(200, seed=5), biased_data(200, seed=6), settings, None, True)
    shown = screen.getvalue()
    assert "llft · seed 0 · lr=0.01 " in shown and "candidate 1 of 2" in shown
    assert "candidate 2 of 2" in shown and "about 0:00:" in shown  # an estimate once one ended
    # the running phase's bar on the line under the run's
    assert re.search(r"candidate 1 of 2[^\n]*\n(\x1b\[[0-9;]*m)*llft +[^\n]* \d+/20", shown)


def test_over_seeds_the_interval_keeps_the_test_sets_uncertainty():
    rows = []
    for seed, eodds in ((0, 0.28), (1, 0.29)):
        start = row("baseline", seed, metrics(0.3), metrics(0.3))
        start.ci_tuned = Intervals({"eodds_mean": (0.25, 0.35)})  # the same model each seed
        method = row("bmft", seed, metrics(eodds), metrics(eodds))
        method.ci_tuned = Intervals({"eodds_mean": (eodds - 0.005, eodds + 0.005)})
        rows += [start, method]
    by = {h.method: h for h in tables.headlines(rows, Criterion())}
    start = by["baseline"].objective
    assert (start.low, start.high) == pytest.approx((0.25, 0.35))  # not the zero t-interval
    spread = interval([0.28, 0.29])  # bmft's t-interval over two seeds: the wider

    assert by["bmft"].objective.low == pytest.approx(spread.low)
    assert by["bmft"].verdict == tables.UNCHANGED  # within the start's test-set interval


def test_a_budgeted_search_counts_its_candidates_not_its_plans(workdir, tmp_path, capsys):
    """Halving plans every setting first (a fit at share 0, no candidate): the view counts
    only the rungs' fits, at most the rung sizes and the final rung's one, over the seeds."""
    argv = grid_argv(workdir, tmp_path / "o", "--search", "halving", "--budget", "50")
    grid = ["--grid-set", "llft.lr=0.001,0.003,0.01,0.03"]
    assert main([*argv, *grid]) == 0
    out = capsys.readouterr().out
    counted = re.findall(r"^\[(\d+)/(\d+)\] llft seed (\d)", out, re.MULTILINE)
    total = 2 * (sum(rung_sizes(4)) + 1)  # two seeds, rungs of 4 then 2 settings, a final one
    assert counted and {int(n) for _, n, _ in counted} == {total}
    assert [int(k) for k, _, _ in counted] == list(range(1, len(counted) + 1))
    assert len(counted) <= total
