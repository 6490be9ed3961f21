"""The fairness plot decides: axes within the possible range, the selected model framed
around the point it repeats, and the caption saying what was kept and why."""

from dataclasses import replace

import pytest
from matplotlib.colors import to_rgba
from test_report import metrics, row

from fairtune.reporting import plot
from fairtune.selection.records import ChoiceRecord, HeldOut


@pytest.fixture
def figures(monkeypatch):
    saved = []

    def keep(fig, path):
        saved.append(fig)

    monkeypatch.setattr(plot, "save_figure", keep)
    return saved


def edge_rows() -> list:
    """AUC at 0.99 and 1, EOdds at 0 and 0.02 over two seeds: the error bars reach past
    1 and below 0; the selection kept bmft."""
    out = []
    for seed, (auc, eodds) in enumerate(((0.99, 0.0), (1.0, 0.02))):
        tuned = replace(metrics(eodds), auc=auc)
        out.append(row("baseline", seed, metrics(0.3), metrics(0.3)))
        out.append(row("bmft", seed, metrics(eodds), tuned))
        chosen = row("selected", seed, metrics(eodds), tuned)
        why = {"method": "bmft", "setting": {}, "reason": f"bmft improved EOdds in seed {seed}"}
        chosen.selection = ChoiceRecord("rule", why, HeldOut(auc, "eodds_mean", eodds), False, 0.0)
        out.append(chosen)
    return out


def test_axes_stay_within_what_auc_and_eodds_can_be(tmp_path, figures):
    plot.fairness_plot(edge_rows(), tmp_path / "p.png", "title")
    (fig,) = figures
    (ax,) = fig.axes
    assert ax.get_xlim()[0] >= 0 and ax.get_xlim()[1] <= 1
    assert ax.get_ylim()[0] >= 0 and ax.get_ylim()[1] <= 1


def test_selected_is_a_frame_around_the_method_it_chose(tmp_path, figures):
    plot.fairness_plot(edge_rows(), tmp_path / "p.png", "title", saved="out/selected-model")
    (fig,) = figures
    (ax,) = fig.axes
    lines = {c.get_label(): c.lines[0] for c in ax.containers}
    frame, bmft = lines["selected: kept bmft (2 seeds)"], lines["bmft"]
    # the frame is hollow and larger, drawn on top: the bmft point inside stays visible
    assert to_rgba(frame.get_markerfacecolor())[3] == 0
    assert frame.get_markersize() > bmft.get_markersize()
    assert frame.get_zorder() > bmft.get_zorder()
    assert list(frame.get_xdata()) == list(bmft.get_xdata())
    caption = " ".join(t.get_text() for t in fig.texts)
    assert "Selected (seed 0): bmft: bmft improved EOdds in seed 0" in caption
    assert "Selected (seed 1): bmft" in caption and "Its model: out/selected-model." in caption
