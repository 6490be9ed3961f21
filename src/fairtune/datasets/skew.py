"""A skewed training split for the demos: most positive rows of one group left out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairtune.columns import require_columns
from fairtune.errors import FairtuneError


def skew_groups(
    frame: pd.DataFrame,
    label: str,
    attribute: str,
    group: str,
    keep: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """Keep only a fraction ``keep`` of the positive rows of one group.

    Emulates a model trained on skewed historical data, e.g. few women with a
    positive label: a training split made this way yields a measurably biased
    classifier while the external and test splits stay representative.
    """
    if not 0.0 <= keep <= 1.0:
        raise FairtuneError(f"keep must lie in [0, 1], not {keep}")
    require_columns(frame, [label, attribute], "")
    values = frame[attribute].astype(str)
    if group not in set(values):
        raise FairtuneError(f"group '{group}' does not occur in column '{attribute}'")
    target = np.flatnonzero((values == group).to_numpy() & (frame[label] == 1).to_numpy())
    rng = np.random.default_rng(seed)
    drop = rng.choice(target, size=len(target) - round(keep * len(target)), replace=False)
    return frame.drop(index=frame.index[drop])
