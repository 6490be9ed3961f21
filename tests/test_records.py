"""Each kind of row records how it was chosen in a typed record; results.json is its dict
form alone, and reads back to the same records."""

import json
import math

import pytest
from _helpers import biased_data

from fairtune.io import write_json
from fairtune.reporting.notes import notes
from fairtune.selection.comparison import compare
from fairtune.selection.records import (
    BaselineRecord,
    BestOnTest,
    ChoiceRecord,
    ReferenceRecord,
    SearchCost,
    SearchRecord,
)
from fairtune.selection.results import ResultRow
from fairtune.selection.search import CompareSettings

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("objective", ["eodds", "eopp"])
def test_every_row_has_the_record_of_its_kind_and_reads_back(start_model, objective):
    external, test = biased_data(300, seed=3), biased_data(200, seed=4)
    settings = CompareSettings(
        methods=["llft", "fairprune"],
        objective=objective,
        n_boot=0,
        overrides={"llft": {"epochs": 1}, "fairprune": {"max_rounds": 1}},
    )
    rows = compare(start_model, external, test, settings)
    kinds = [type(r.selection) for r in rows]
    assert kinds == [BaselineRecord, SearchRecord, SearchRecord, ReferenceRecord, ChoiceRecord]
    key = settings.criterion.key
    for row in rows:
        as_json = json.dumps(row.to_dict(), sort_keys=True)
        again = ResultRow.from_dict(json.loads(as_json))
        assert json.dumps(again.to_dict(), sort_keys=True) == as_json
        assert type(again.selection) is type(row.selection)
    assert f"held_out_{key}" in rows[0].to_dict()["selection"]
    assert rows[1].selection.held.key == key and rows[1].selection.tried[0].held.key == key
    chosen = rows[-1].selection
    assert chosen.best_on_test is not None and chosen.best_on_test.key == key
    assert chosen.to_dict()["best_on_test"][key] == chosen.best_on_test.value
    assert chosen.best_on_test.noise >= 0.0
    # a file written before the noise was measured reads it as not measured
    older = rows[-1].to_dict()
    del older["selection"]["best_on_test"]["regret_from_noise"]
    read = ResultRow.from_dict(json.loads(json.dumps(older))).selection.best_on_test
    assert (read.key, read.value) == (key, chosen.best_on_test.value)
    assert math.isnan(read.noise)


def test_the_selected_note_says_what_the_search_cost_against_the_training(start_model):
    """Every cost a report quotes is a multiple of the original training's rows."""
    external, test = biased_data(300, seed=3), biased_data(200, seed=4)
    settings = CompareSettings(
        methods=["llft"], n_boot=0, overrides={"llft": {"epochs": 1}}, training_rows=600
    )
    rows = compare(start_model, external, test, settings)
    cost = rows[-1].selection.cost
    assert isinstance(cost, SearchCost) and cost.rows > 0
    assert cost.cost_vs_training == pytest.approx(cost.rows / 600)
    said = [line for line in notes(rows) if line.startswith("selected (seed 0)")]
    assert said and f"{cost.rows:,} rows, {cost.rows / 600:.2f}x the original training's" in said[0]
    unknown = SearchCost("grid", 10)
    assert unknown.text() == "the search passed 10 rows (the original training's unknown)"


def test_an_unmeasured_noise_and_value_read_back_as_nan_through_the_json_writer(tmp_path):
    """NaN is written as null (fairtune.io.write_json) and must come back as NaN."""
    best = BestOnTest("original", {}, "eodds_mean", math.nan, math.nan)
    write_json(tmp_path / "best.json", best.to_dict())
    read = BestOnTest.from_dict(json.loads((tmp_path / "best.json").read_text()))
    assert read.key == "eodds_mean" and math.isnan(read.value) and math.isnan(read.noise)
