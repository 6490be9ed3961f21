"""Tables as model inputs: the fitted preprocessing of feature columns, and frames to FairData."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from fairtune.columns import (
    GROUP_JOIN,
    check_present,
    check_roles,
    encode_groups,
    encode_labels,
    first_row,
    require_columns,
)
from fairtune.data import FairData
from fairtune.errors import FairtuneError


@dataclass
class TabularPreprocessor:
    """One-hot encoding for categorical columns, standardisation for numeric ones.

    Fitted on the frame it is given and saved in the model's ``config.json``,
    so new data is transformed exactly as the training data was.
    """

    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: Sequence[str]) -> TabularPreprocessor:
        """Learn means, deviations and categories of ``columns``."""
        prep = cls(order=list(columns))
        require_columns(frame, columns, "feature")
        for col in columns:
            series = frame[col]
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                _check_finite(series)
                with np.errstate(all="ignore"):
                    std, mean = float(series.std(ddof=0)), float(series.mean())
                if not (np.isfinite(std) and np.isfinite(mean)):
                    raise _too_large(series)
                prep.numeric[col] = (mean, std if std > 0 else 1.0)
            else:
                _check_not_stray_numeric(series)
                check_present(series)
                prep.categorical[col] = sorted(series.astype(str).unique().tolist())
        return prep

    @property
    def n_features(self) -> int:
        return len(self.numeric) + sum(len(v) for v in self.categorical.values())

    def feature_names(self) -> list[str]:
        """Names of the output columns, in order."""
        names: list[str] = []
        for col in self.order:
            if col in self.numeric:
                names.append(col)
            else:
                names.extend(f"{col}={v}" for v in self.categorical[col])
        return names

    def transform(self, frame: pd.DataFrame) -> torch.Tensor:
        """The float32 feature matrix; unseen categories encode as all zeros."""
        require_columns(frame, self.order, "feature")
        blocks: list[np.ndarray] = []
        for col in self.order:
            series = frame[col]
            if col in self.numeric:
                if not pd.api.types.is_numeric_dtype(series):
                    _check_not_stray_numeric(series, share=0.0)
                    raise FairtuneError(
                        f"feature column '{col}' was numeric when the model was trained "
                        "but is not numeric here"
                    )
                _check_finite(series)
                mean, std = self.numeric[col]
                with np.errstate(all="ignore"):
                    scaled = (series.to_numpy(np.float64) - mean) / std
                if not np.isfinite(scaled).all():
                    raise _too_large(series)
                blocks.append(scaled[:, None])
            else:
                check_present(series)
                cats = self.categorical[col]
                lookup = {v: i for i, v in enumerate(cats)}
                codes = series.astype(str).map(lookup).to_numpy()
                rows = np.flatnonzero(~pd.isna(codes))
                if len(rows) < len(frame):
                    unseen = sorted(set(series.astype(str)) - set(cats))
                    warnings.warn(
                        f"feature column '{col}' has {len(frame) - len(rows)} row(s) with "
                        f"categories not seen in training ({', '.join(unseen[:3])}"
                        f"{', ...' if len(unseen) > 3 else ''}): they are encoded as none "
                        "of the known categories",
                        stacklevel=2,
                    )
                onehot = np.zeros((len(frame), len(cats)))
                onehot[rows, codes[rows].astype(np.int64)] = 1.0
                blocks.append(onehot)
        matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
        return torch.from_numpy(matrix.astype(np.float32))

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": {k: list(v) for k, v in self.numeric.items()},
            "categorical": self.categorical,
            "order": self.order,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TabularPreprocessor:
        return cls(
            numeric={k: (float(v[0]), float(v[1])) for k, v in d["numeric"].items()},
            categorical={k: list(v) for k, v in d["categorical"].items()},
            order=list(d["order"]),
        )


def _check_finite(series: pd.Series) -> None:
    values = series.to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise FairtuneError(
            f"feature column '{series.name}' has {int(bad.sum())} missing or infinite values "
            f"(first at {first_row(bad)}): drop or fill them"
        )


def _too_large(series: pd.Series) -> FairtuneError:
    """The error for a numeric column whose values overflow standardisation."""
    values = np.abs(series.to_numpy(np.float64))
    return FairtuneError(
        f"feature column '{series.name}' has values too large to standardise (up to "
        f"{values.max():.3g}, first at {first_row(values == values.max())}): "
        "rescale the column or drop those rows"
    )


def _check_not_stray_numeric(series: pd.Series, share: float = 0.9) -> None:
    """Fail on a text column whose values are numbers but for a few stray strings (at least
    ``share`` of the given values are numbers): it would be one-hot encoded value by value."""
    given = series.notna().to_numpy()
    numbers = pd.to_numeric(series, errors="coerce").notna().to_numpy()
    stray = given & ~numbers
    if not stray.any() or numbers.sum() < share * given.sum() or not numbers.any():
        return
    values = list(dict.fromkeys(series[stray].astype(str)))
    raise FairtuneError(
        f"feature column '{series.name}' is numeric but for {int(stray.sum())} value(s) such as "
        f"{', '.join(repr(v) for v in values[:3])} (first at {first_row(stray)}): "
        "fix or drop those rows"
    )


def feature_columns(
    frame: pd.DataFrame,
    label: str,
    sensitive: Sequence[str],
    features: Sequence[str] | None = None,
    sensitive_as_feature: bool = False,
) -> list[str]:
    """The model's input columns: ``features`` if given, else all but label and attribute and
    the ID-like columns (:func:`id_like`), left out with one warning naming them."""
    if features:
        cols = list(features)
        require_columns(frame, cols, "feature")
    else:
        cols = [c for c in frame.columns if c != label and c not in sensitive]
        ids = [c for c in cols if id_like(frame[c])]
        if ids:
            warnings.warn(
                f"column(s) {', '.join(map(str, ids))} look like identifiers (text, a distinct "
                f"value in more than half of the {len(frame)} rows) and are left out of the "
                "features; name the features with --features to include them",
                stacklevel=2,
            )
            cols = [c for c in cols if c not in ids]
    if sensitive_as_feature:
        cols += [c for c in sensitive if c not in cols]
    else:
        cols = [c for c in cols if c not in sensitive]
    if label in cols:
        raise FairtuneError(f"the label column '{label}' cannot also be a feature")
    require_columns(frame, [label], "label")
    target = frame[label].astype(str)
    copies = [c for c in cols if frame[c].astype(str).equals(target)]
    if copies:
        raise FairtuneError(
            f"feature column(s) {copies} equal the label '{label}' in every row (a label "
            "leak): drop them, or choose the features with --features"
        )
    if not cols:
        raise FairtuneError("no feature columns left: name them with --features")
    return cols


ID_MIN_ROWS = 20
"""Fewer rows than this: no column is taken for an identifier (a few rows make any text
column look distinct)."""


def id_like(series: pd.Series) -> bool:
    """Whether a column looks like an identifier rather than a feature: not numeric, and a
    distinct value in more than half of the rows (of at least :data:`ID_MIN_ROWS`)."""
    if pd.api.types.is_numeric_dtype(series) or len(series) < ID_MIN_ROWS:
        return False
    return series.nunique(dropna=True) > 0.5 * len(series)


def frame_to_data(
    frame: pd.DataFrame,
    label: str,
    sensitive: Sequence[str],
    preprocessor: TabularPreprocessor,
    group_names: Sequence[str] | None = None,
    positive: Any = None,
) -> FairData:
    """Turn a table into :class:`FairData` with a fitted preprocessor."""
    require_columns(frame, [label], "label")
    check_roles(label, sensitive)
    labels = encode_labels(frame[label], positive)
    groups, names = encode_groups(frame, sensitive, group_names)
    return FairData(
        preprocessor.transform(frame),
        torch.tensor(labels),
        torch.tensor(groups),
        names,
        attribute=GROUP_JOIN.join(sensitive),
    )
