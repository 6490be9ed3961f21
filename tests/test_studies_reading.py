"""Study figures and tables that read right: a point whose models did not move is marked
and named, the series do not hide one another, the axes never zoom below the intervals."""

from __future__ import annotations

import copy

import pytest
import torch
from test_studies import _settings, setup  # noqa: F401  (the fixture)

from fairtune.studies import plots as study_plots
from fairtune.studies import run_study
from fairtune.studies.runner import largest_change
from fairtune.studies.summary import UNMOVED
from fairtune.studies.tables import UNMOVED_MARK, summary_tables


def test_largest_change_is_the_largest_weight_difference(setup):  # noqa: F811
    model = setup[0]
    same = copy.deepcopy(model)
    assert largest_change(model, same) == 0.0
    with torch.no_grad():
        same[0].weight[1, 2] += 0.25
        same[2].bias -= 0.5
    assert largest_change(model, same) == pytest.approx(0.5)


@pytest.fixture
def figures(monkeypatch):
    saved = []
    monkeypatch.setattr(study_plots, "save_figure", lambda fig, path: saved.append(fig))
    return saved


def test_a_point_that_did_not_move_is_marked_named_and_drawn(setup, tmp_path, figures):  # noqa: F811
    model, external, test = setup
    study = run_study("keep", model, external, test, _settings(keeps=[0.25, 0.5]))
    fitted = [r for r in study.records if r["series"] != "start"]
    assert all(r["largest_change"] > UNMOVED for r in fitted)  # these fits moved
    assert not any(p.unmoved for p in study.summary())
    for r in fitted:
        if (r["series"], r["x"]) == ("bmft", 0.25):
            r["largest_change"] = 0.0  # as if the fine-tuning had left it where it started
    still = {(p.series, p.x) for p in study.summary() if p.unmoved}
    assert still == {("bmft", 0.25)}
    (table,) = summary_tables(study.summary())
    columns = (table.columns[i]._cells for i in (0, 1, 3))
    for series, x, cell in zip(*columns, strict=True):
        assert cell.endswith(UNMOVED_MARK) == ((series, x) == ("bmft", "0.25"))
    caption = str(table.caption)
    assert "1 point(s) where the fine-tuning did not move the model" in caption
    assert "bmft at 0.25" in caption
    study.write(tmp_path / "k", "keep", {})
    (fig,) = figures
    eodds = fig.axes[0]
    labels = eodds.get_legend_handles_labels()[1] + fig.axes[1].get_legend_handles_labels()[1]
    assert study_plots.UNMOVED_LABEL in labels
    # the two series: their own markers and line styles, side by side, BMFT on top
    lines = {line.get_label(): line for line in eodds.get_lines()}
    bmft, random = lines["bmft"], lines["random_mask"]
    assert bmft.get_marker() != random.get_marker()
    assert bmft.get_linestyle() != random.get_linestyle()
    assert bmft.get_zorder() > random.get_zorder()
    assert all(b < r for b, r in zip(bmft.get_xdata(), random.get_xdata(), strict=True))


def test_axes_never_zoom_below_the_intervals(setup, tmp_path, figures):  # noqa: F811
    model, external, test = setup
    study = run_study("keep", model, external, test, _settings(keeps=[0.5]))
    points = study.summary()
    study.write(tmp_path / "k", "keep", {})
    (fig,) = figures
    for ax, metric in zip(fig.axes[:2], ("eodds_mean", "auc"), strict=True):
        mine = [p for p in points if p.metric == metric]
        need = max(max(p.bootstrap_width, p.interval.high - p.interval.low) for p in mine)
        low, high = ax.get_ylim()
        assert high - low >= need * 0.999
        assert low >= 0 and high <= 1
