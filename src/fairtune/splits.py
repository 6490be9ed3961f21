"""Splitting a table into train / external / test parts: stratified on (label, group),
seeded, and by patient where a patient has several rows."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sklearn.model_selection import train_test_split

from fairtune.columns import check_present, group_values, require_columns
from fairtune.errors import FairtuneError

PARTS: tuple[str, ...] = ("train", "external", "test")
"""The parts of a split, in order: what the model trains on, what debiasing fine-tunes on,
what only measures."""
WHOLE = "all"
"""The part name that means every row of a set."""
PART_NAMES: tuple[str, ...] = (*PARTS, WHOLE)
"""Every part a ``NAME:PART`` data spec may name."""


def split_frame(
    frame: pd.DataFrame,
    label: str,
    sensitive: Sequence[str],
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    patient: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train / external / test frames, stratified on (label, group), seeded.

    With a ``patient`` column, patients are split instead of rows, so all of a
    patient's rows land in one part; each patient is stratified by its most
    frequent (label, group) cell, and the fractions count patients.
    """
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) <= 0:
        raise FairtuneError(f"split fractions {fractions} must be positive and sum to 1")
    require_columns(frame, [label], "label")
    check_present(frame[label], "label")
    strata = frame[label].astype(str) + "|" + group_values(frame, sensitive)
    unit = "rows"
    if patient is not None:
        strata, unit = _patient_strata(frame, strata, patient), "patients"
    counts = strata.value_counts()
    if counts.min() < 3:
        rare = counts[counts < 3].index.tolist()
        rule = (
            " (each patient counts once, in the (label, group) cell of most of their rows)"
            if patient is not None
            else ""
        )
        raise FairtuneError(
            f"(label, group) cell(s) {rare} have fewer than 3 {unit}{rule}: too few to split "
            "into 3 parts"
        )
    smallest = min(fractions) * len(strata)
    if smallest < len(counts):
        raise FairtuneError(
            f"a {min(fractions):.0%} part of {len(strata)} {unit} cannot hold all {len(counts)} "
            "(label, group) cells: use more rows, larger fractions or fewer sensitive columns"
        )
    items = frame if patient is None else strata
    rest, test = train_test_split(items, test_size=fractions[2], stratify=strata, random_state=seed)
    external_share = fractions[1] / (fractions[0] + fractions[1])
    train, external = train_test_split(
        rest, test_size=external_share, stratify=strata.loc[rest.index], random_state=seed
    )
    if patient is None:
        return train, external, test
    parts = (frame[frame[patient].isin(part.index)] for part in (train, external, test))
    train, external, test = parts
    return train, external, test


def _patient_strata(frame: pd.DataFrame, strata: pd.Series, patient: str) -> pd.Series:
    """Each patient's most frequent stratum (ties: the first in sort order), indexed by patient."""
    require_columns(frame, [patient], "patient")
    check_present(frame[patient], "patient")
    pairs = pd.DataFrame({"patient": frame[patient].to_numpy(), "stratum": strata.to_numpy()})
    counts = pairs.value_counts().reset_index(name="n")
    counts = counts.sort_values(["n", "stratum"], ascending=[False, True], kind="stable")
    return counts.drop_duplicates("patient").set_index("patient")["stratum"].sort_index()
