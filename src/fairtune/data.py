"""Data: the labelled set with a sensitive attribute that every stage reads.

A :class:`FairData` holds model inputs, binary labels and group ids with their
names. Tabular frames become ``FairData`` through :class:`TabularPreprocessor`;
image sets (``fairtune.images``) plug in an input source of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from fairtune.distributed import world
from fairtune.errors import FairtuneError

GROUP_JOIN = " & "


class InputSource(Protocol):
    """Lazily loaded model inputs (images): indexable and sliceable by row."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> torch.Tensor: ...

    def take(self, indices: np.ndarray) -> InputSource: ...


class FairData(Dataset):
    """Model inputs, binary labels (0/1) and group ids, one row per sample.

    ``groups[i]`` indexes ``group_names``; ``attribute`` names the sensitive
    column(s) the groups come from. Items are ``(x, y, a)`` triples.
    """

    def __init__(
        self,
        inputs: torch.Tensor | InputSource,
        labels: torch.Tensor,
        groups: torch.Tensor,
        group_names: Sequence[str],
        attribute: str = "group",
    ) -> None:
        n = len(labels)
        if len(inputs) != n or len(groups) != n:
            raise FairtuneError(
                f"inputs ({len(inputs)}), labels ({n}) and groups ({len(groups)}) differ in length"
            )
        self.inputs = inputs
        self.labels = labels.to(torch.float32)
        self.groups = groups.to(torch.long)
        self.group_names = tuple(group_names)
        self.attribute = attribute

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.labels[index], self.groups[index]

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    def subset(self, indices: np.ndarray | Sequence[int]) -> FairData:
        """The rows at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        if isinstance(self.inputs, torch.Tensor):
            inputs = self.inputs[torch.from_numpy(idx)]
        else:
            inputs = self.inputs.take(idx)
        t = torch.from_numpy(idx)
        return FairData(inputs, self.labels[t], self.groups[t], self.group_names, self.attribute)

    def select_groups(self, keep: Sequence[int]) -> FairData:
        """Rows of the groups in ``keep``, re-indexed 0..len(keep)-1 in that order."""
        keep = list(keep)
        rows = np.flatnonzero(np.isin(self.groups.numpy(), keep))
        sub = self.subset(rows)
        remap = torch.full((self.n_groups,), -1, dtype=torch.long)
        remap[torch.tensor(keep)] = torch.arange(len(keep))
        names = [self.group_names[g] for g in keep]
        return FairData(sub.inputs, sub.labels, remap[sub.groups], names, self.attribute)

    def cell_counts(self) -> np.ndarray:
        """Counts per (group, label) cell, shape (n_groups, 2)."""
        counts = np.zeros((self.n_groups, 2), dtype=np.int64)
        np.add.at(counts, (self.groups.numpy(), self.labels.numpy().astype(np.int64)), 1)
        return counts

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...] | list:
        """A whole batch at once: one indexing operation for in-memory inputs."""
        if not isinstance(self.inputs, torch.Tensor):
            return [self[i] for i in indices]
        idx = torch.as_tensor(indices)
        return self.inputs[idx], self.labels[idx], self.groups[idx]

    def loader(
        self,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        shard: bool = False,
    ) -> DataLoader:
        """A DataLoader whose shuffling order depends on ``seed`` alone.

        In-memory inputs are gathered a batch at a time; lazy ones (images) item
        by item, in ``num_workers`` worker processes. With ``shard`` and several
        processes (see :mod:`fairtune.distributed`), each process reads its own
        share through a :class:`~torch.utils.data.DistributedSampler` (every
        share the same length, padded with repeated rows; the order changes per
        epoch only through its ``set_epoch``); in one process ``shard`` changes
        nothing.
        """
        generator = torch.Generator().manual_seed(seed)
        in_memory = isinstance(self.inputs, torch.Tensor)
        rank, size = world()
        sampler = None
        if shard and size > 1:
            sampler = DistributedSampler(
                self, num_replicas=size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
            )
        return DataLoader(
            self,
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            generator=generator,
            collate_fn=_as_batch if in_memory else None,
            num_workers=0 if in_memory else num_workers,
        )


def _as_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return batch


def check_groups(data: FairData, min_groups: int = 2) -> None:
    """Fail with a clear message unless at least ``min_groups`` groups have rows."""
    present = np.unique(data.groups.numpy())
    if len(present) < min_groups:
        names = ", ".join(data.group_names[g] for g in present) or "none"
        raise FairtuneError(
            f"sensitive attribute '{data.attribute}' has only one group in the data ({names}); "
            "fairness needs at least two: check the column or the rows selected"
        )


def balance(data: FairData, seed: int = 0, mode: str = "down") -> FairData:
    """Group-and-class balance the set (METHODS.md, "The external set").

    For each class, every group's cell is down-sampled to the smallest group's
    cell (``mode="down"``) or up-sampled with replacement to the largest
    (``mode="up"``). Groups with no rows are ignored.
    """
    if mode not in ("down", "up"):
        raise FairtuneError(f"balance mode must be 'down' or 'up', not '{mode}'")
    check_groups(data)
    rng = np.random.default_rng(seed)
    groups = data.groups.numpy()
    labels = data.labels.numpy().astype(np.int64)
    chosen: list[np.ndarray] = []
    for y in (0, 1):
        cells = [np.flatnonzero((groups == g) & (labels == y)) for g in range(data.n_groups)]
        cells = [c for c in cells if len(c) > 0]
        if not cells:
            continue
        sizes = [len(c) for c in cells]
        target = min(sizes) if mode == "down" else max(sizes)
        for cell in cells:
            if len(cell) >= target:
                chosen.append(rng.choice(cell, size=target, replace=False))
            else:
                chosen.append(np.concatenate([cell, rng.choice(cell, target - len(cell))]))
    rows = np.sort(np.concatenate(chosen))
    return data.subset(rows)


# ---------------------------------------------------------------- tables


def encode_labels(values: pd.Series, positive: Any = None) -> np.ndarray:
    """0/1 labels from a column of two values; ``positive`` names the 1 class."""
    if values.isna().any():
        raise FairtuneError(
            f"label column '{values.name}' has {int(values.isna().sum())} missing values: "
            "drop or fill those rows"
        )
    if positive is not None:
        as_str = values.astype(str)
        if str(positive) not in set(as_str):
            raise FairtuneError(
                f"positive label '{positive}' does not occur in column '{values.name}'"
            )
        return (as_str == str(positive)).to_numpy(np.float32)
    distinct = set(pd.unique(values))
    if distinct <= {0, 1} or distinct <= {False, True}:
        return values.astype(np.float32).to_numpy()
    raise FairtuneError(
        f"label column '{values.name}' holds {sorted(map(str, distinct))[:5]}, not 0/1: "
        "name the positive class with --positive"
    )


def group_values(frame: pd.DataFrame, sensitive: Sequence[str]) -> pd.Series:
    """One group name per row; several columns are crossed ("Female & Black")."""
    missing = [c for c in sensitive if c not in frame.columns]
    if missing:
        raise FairtuneError(
            f"sensitive column(s) {missing} not in the data; columns are {list(frame.columns)[:20]}"
        )
    parts = []
    for col in sensitive:
        if frame[col].isna().any():
            raise FairtuneError(
                f"sensitive column '{col}' has missing values: drop or fill those rows"
            )
        parts.append(frame[col].astype(str))
    names = parts[0]
    for part in parts[1:]:
        names = names + GROUP_JOIN + part
    return names


def encode_groups(
    frame: pd.DataFrame, sensitive: Sequence[str], group_names: Sequence[str] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Group ids and their names; known ``group_names`` keep ids stable across files."""
    names = group_values(frame, sensitive)
    if group_names is None:
        group_names = tuple(sorted(pd.unique(names)))
    lookup = {name: i for i, name in enumerate(group_names)}
    unknown = sorted(set(pd.unique(names)) - set(lookup))
    if unknown:
        raise FairtuneError(
            f"group(s) {unknown} of '{GROUP_JOIN.join(sensitive)}' were not seen when the model "
            f"was trained (known: {list(group_names)})"
        )
    return names.map(lookup).to_numpy(np.int64), tuple(group_names)


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
        _require_columns(frame, columns, "feature")
        for col in columns:
            series = frame[col]
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                _check_finite(series)
                std = float(series.std(ddof=0))
                prep.numeric[col] = (float(series.mean()), std if std > 0 else 1.0)
            else:
                _check_present(series)
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
        _require_columns(frame, self.order, "feature")
        blocks: list[np.ndarray] = []
        for col in self.order:
            series = frame[col]
            if col in self.numeric:
                if not pd.api.types.is_numeric_dtype(series):
                    raise FairtuneError(
                        f"feature column '{col}' was numeric when the model was trained "
                        "but is not numeric here"
                    )
                _check_finite(series)
                mean, std = self.numeric[col]
                blocks.append(((series.to_numpy(np.float64) - mean) / std)[:, None])
            else:
                _check_present(series)
                cats = self.categorical[col]
                lookup = {v: i for i, v in enumerate(cats)}
                codes = series.astype(str).map(lookup).to_numpy()
                rows = np.flatnonzero(~pd.isna(codes))
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


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FairtuneError(
            f"{what} column(s) {missing} not in the data; columns are {list(frame.columns)[:20]}"
        )


def _check_present(series: pd.Series, role: str = "feature") -> None:
    """Fail on missing values in a non-numeric column (text categories, labels)."""
    missing = series.isna().to_numpy()
    if missing.any():
        raise FairtuneError(
            f"{role} column '{series.name}' has {int(missing.sum())} missing values "
            f"(first at row {int(np.flatnonzero(missing)[0])}): drop or fill them"
        )


def _check_finite(series: pd.Series) -> None:
    values = series.to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise FairtuneError(
            f"feature column '{series.name}' has {int(bad.sum())} missing or infinite values "
            f"(first at row {int(np.flatnonzero(bad)[0])}): drop or fill them"
        )


def feature_columns(
    frame: pd.DataFrame,
    label: str,
    sensitive: Sequence[str],
    features: Sequence[str] | None = None,
    sensitive_as_feature: bool = False,
) -> list[str]:
    """The model's input columns: ``features`` if given, else all but label and attribute."""
    if features:
        cols = list(features)
        _require_columns(frame, cols, "feature")
    else:
        cols = [c for c in frame.columns if c != label and c not in sensitive]
    if sensitive_as_feature:
        cols += [c for c in sensitive if c not in cols]
    else:
        cols = [c for c in cols if c not in sensitive]
    if label in cols:
        raise FairtuneError(f"the label column '{label}' cannot also be a feature")
    if not cols:
        raise FairtuneError("no feature columns left: name them with --features")
    return cols


def frame_to_data(
    frame: pd.DataFrame,
    label: str,
    sensitive: Sequence[str],
    preprocessor: TabularPreprocessor,
    group_names: Sequence[str] | None = None,
    positive: Any = None,
) -> FairData:
    """Turn a table into :class:`FairData` with a fitted preprocessor."""
    _require_columns(frame, [label], "label")
    labels = encode_labels(frame[label], positive)
    groups, names = encode_groups(frame, sensitive, group_names)
    return FairData(
        preprocessor.transform(frame),
        torch.tensor(labels),
        torch.tensor(groups),
        names,
        attribute=GROUP_JOIN.join(sensitive),
    )


# ---------------------------------------------------------------- splits


def split_frame(
    frame: pd.DataFrame,
    label: str,
    sensitive: Sequence[str],
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train / external / test frames, stratified on (label, group), seeded."""
    from sklearn.model_selection import train_test_split

    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) <= 0:
        raise FairtuneError(f"split fractions {fractions} must be positive and sum to 1")
    _require_columns(frame, [label], "label")
    _check_present(frame[label], "label")
    strata = frame[label].astype(str) + "|" + group_values(frame, sensitive)
    counts = strata.value_counts()
    if counts.min() < 3:
        rare = counts[counts < 3].index.tolist()
        raise FairtuneError(
            f"(label, group) cell(s) {rare} have fewer than 3 rows: too few to split"
        )
    smallest = min(fractions) * len(frame)
    if smallest < len(counts):
        raise FairtuneError(
            f"a {min(fractions):.0%} part of {len(frame)} rows cannot hold all {len(counts)} "
            "(label, group) cells: use more rows, larger fractions or fewer sensitive columns"
        )
    rest, test = train_test_split(frame, test_size=fractions[2], stratify=strata, random_state=seed)
    external_share = fractions[1] / (fractions[0] + fractions[1])
    train, external = train_test_split(
        rest, test_size=external_share, stratify=strata.loc[rest.index], random_state=seed
    )
    return train, external, test


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
    _require_columns(frame, [label, attribute], "")
    values = frame[attribute].astype(str)
    if group not in set(values):
        raise FairtuneError(f"group '{group}' does not occur in column '{attribute}'")
    target = np.flatnonzero((values == group).to_numpy() & (frame[label] == 1).to_numpy())
    rng = np.random.default_rng(seed)
    drop = rng.choice(target, size=len(target) - round(keep * len(target)), replace=False)
    return frame.drop(index=frame.index[drop])
