"""The settings fields: declared ranges are enforced with one-line messages."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from fairtune.errors import FairtuneError
from fairtune.selection.search import CompareSettings
from fairtune.settings import check, range_text, setting
from fairtune.studies import StudySettings


@dataclass
class Example:
    lr: float = setting(1e-3, "learning rate", low=0, open_low=True)
    share: float = setting(0.3, "share", low=0, high=1, open_low=True, open_high=True)
    epochs: int = setting(5, "epochs", low=1)
    kind: str = setting("a", "kind", choices=("a", "b"))
    hidden: tuple = setting((4, 2), "sizes", low=1)
    seeds: list = setting([0], "seeds", low=0)


def test_defaults_pass_and_lists_are_not_shared():
    a, b = Example(), Example()
    check(a)
    a.seeds.append(1)
    assert b.seeds == [0]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"lr": 0.0}, "'lr' must be > 0, not 0.0"),
        ({"lr": float("nan")}, "'lr' must be > 0"),
        ({"share": 1.0}, "must be in (0, 1)"),
        ({"epochs": 0}, "'epochs' must be >= 1"),
        ({"epochs": 2.5}, "whole number"),
        ({"epochs": "3"}, "must be a number"),
        ({"epochs": True}, "must be a number"),
        ({"kind": "c"}, "must be one of a, b"),
        ({"hidden": (4, -5)}, "'hidden' must be >= 1"),
        ({"seeds": [0, -1]}, "'seeds' must be >= 0"),
    ],
)
def test_out_of_range_values_are_refused_in_one_line(changes, fragment):
    with pytest.raises(FairtuneError) as err:
        check(Example(**changes))
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_range_text_reads_as_words():
    texts = {f.name: range_text(f) for f in fields(Example)}
    assert texts == {
        "lr": "> 0",
        "share": "in (0, 1)",
        "epochs": ">= 1",
        "kind": "one of a, b",
        "hidden": ">= 1",
        "seeds": ">= 0",
    }


def test_the_studies_share_compares_defaults_and_ranges():
    study, compare = StudySettings(), CompareSettings()
    for name in ("holdout", "threshold_rule", "n_boot"):
        assert getattr(study, name) == getattr(compare, name)
    with pytest.raises(FairtuneError, match="holdout"):
        StudySettings(holdout=1.0)  # compare's open range (0, 1)
    with pytest.raises(FairtuneError, match="n_boot"):
        StudySettings(n_boot=-1)
