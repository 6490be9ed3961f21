"""Data: the labelled set with a sensitive attribute that every stage reads.

A :class:`FairData` holds model inputs, binary labels and group ids with their
names. The labels and groups come from a frame's columns (:func:`encode_labels`,
:func:`encode_groups`); tabular inputs from ``fairtune.tabular``, image inputs
from ``fairtune.images``, an input source of their own.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    default_collate,
)

from fairtune.columns import GROUP_JOIN, encode_groups
from fairtune.distributed import share, world
from fairtune.errors import FairtuneError


class InputSource(Protocol):
    """Lazily loaded model inputs (images): indexable and sliceable by row."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> torch.Tensor: ...

    def take(self, indices: np.ndarray) -> InputSource: ...


class FairData(Dataset):
    """Model inputs, binary labels (0/1) and group ids, one row per sample.

    ``groups[i]`` indexes ``group_names``; ``attribute`` names the sensitive
    column(s) the groups come from. Items are ``(x, y, a)`` triples.

    Inputs given as a tensor are checked when the set is built (:func:`check_inputs`:
    integers become floats, NaN and infinities are refused); ``computed``: they are
    fairtune's own (a subset, a model's features), not checked again.
    """

    def __init__(
        self,
        inputs: torch.Tensor | InputSource,
        labels: torch.Tensor,
        groups: torch.Tensor,
        group_names: Sequence[str],
        attribute: str = "group",
        *,
        computed: bool = False,
    ) -> None:
        n = len(labels)
        if len(inputs) != n or len(groups) != n:
            raise FairtuneError(
                f"inputs ({len(inputs)}), labels ({n}) and groups ({len(groups)}) differ in length"
            )
        if isinstance(inputs, torch.Tensor) and not computed:
            inputs = check_inputs(inputs)
        self.inputs = inputs
        self.labels = check_labels(labels.to(torch.float32))
        self.groups = groups.to(torch.long)
        self.group_names = tuple(group_names)
        self.attribute = attribute
        ids = self.groups.unique()
        if self.groups.dim() != 1 or not bool(((ids >= 0) & (ids < self.n_groups)).all()):
            raise FairtuneError(f"group ids must be one per row, each in 0..{self.n_groups - 1}")

    @classmethod
    def from_arrays(
        cls,
        inputs: Any,
        labels: Any,
        sensitive_features: Any,
        group_names: Sequence[str] | None = None,
        attribute: str | None = None,
    ) -> FairData:
        """A set from what a fairlearn user has: numpy arrays, pandas, lists or tensors.

        ``labels`` are 0/1 (or booleans), one per row. ``sensitive_features`` holds
        each row's group as a string or a number (a DataFrame's columns are
        crossed); the group names are its values, sorted, unless ``group_names``
        fixes them (and their order). ``attribute`` defaults to the Series' or
        columns' name, else ``"group"``.
        """
        x = inputs if isinstance(inputs, torch.Tensor) else torch.tensor(_numpy(inputs))
        check_inputs(x, [str(c) for c in inputs.columns] if hasattr(inputs, "columns") else None)
        frame = sensitive_features
        if not isinstance(frame, pd.DataFrame):
            name = getattr(frame, "name", None) or attribute or "group"
            frame = pd.DataFrame({str(name): _numpy(frame, None).tolist()})
        frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
        first = frame.iloc[:, 0]
        if group_names is None and frame.shape[1] == 1 and pd.api.types.is_numeric_dtype(first):
            group_names = [str(v) for v in np.sort(first.dropna().unique())]
        groups, names = encode_groups(frame, list(frame.columns), group_names)
        attribute = attribute or GROUP_JOIN.join(frame.columns)
        return cls(x, torch.tensor(_numpy(labels)), torch.tensor(groups), names, attribute)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        """Rows, inputs, and per group its rows and share of positive labels."""
        groups = []
        for g, name in enumerate(self.group_names):
            mine = self.labels[self.groups == g]
            share = f"{float(mine.mean()):.0%} positive" if len(mine) else "no rows"
            groups.append(f"{name}: {len(mine)} rows, {share}")
        if isinstance(self.inputs, torch.Tensor):
            inputs = f"inputs {tuple(self.inputs.shape)} {str(self.inputs.dtype).split('.')[-1]}"
        else:
            inputs = f"inputs {type(self.inputs).__name__} (read when used)"
        return (
            f"FairData({len(self)} rows, {inputs}, {float(self.labels.mean()):.0%} positive; "
            f"{self.attribute}: {'; '.join(groups)})"
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.labels[index], self.groups[index]

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    def replace(
        self,
        *,
        inputs: torch.Tensor | InputSource | None = None,
        labels: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
        group_names: Sequence[str] | None = None,
    ) -> FairData:
        """A copy with the given fields replaced and the others (and the attribute) kept."""
        return FairData(
            self.inputs if inputs is None else inputs,
            self.labels if labels is None else labels,
            self.groups if groups is None else groups,
            self.group_names if group_names is None else group_names,
            self.attribute,
            computed=True,
        )

    def subset(self, indices: np.ndarray | Sequence[int]) -> FairData:
        """The rows at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        if isinstance(self.inputs, torch.Tensor):
            inputs = self.inputs[torch.from_numpy(idx)]
        else:
            inputs = self.inputs.take(idx)
        t = torch.from_numpy(idx)
        return self.replace(inputs=inputs, labels=self.labels[t], groups=self.groups[t])

    def select_groups(self, keep: Sequence[int]) -> FairData:
        """Rows of the groups in ``keep``, re-indexed 0..len(keep)-1 in that order."""
        keep = list(keep)
        rows = np.flatnonzero(np.isin(self.groups.numpy(), keep))
        sub = self.subset(rows)
        remap = torch.full((self.n_groups,), -1, dtype=torch.long)
        remap[torch.tensor(keep)] = torch.arange(len(keep))
        names = [self.group_names[g] for g in keep]
        return sub.replace(groups=remap[sub.groups], group_names=names)

    def cell_counts(self) -> np.ndarray:
        """Counts per (group, label) cell, shape (n_groups, 2)."""
        counts = np.zeros((self.n_groups, 2), dtype=np.int64)
        np.add.at(counts, (self.groups.numpy(), self.labels.numpy().astype(np.int64)), 1)
        return counts

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...] | list:
        """A whole batch at once: one indexing operation for in-memory inputs.

        A batch of no rows (a process's empty share of a short batch, see
        :func:`fairtune.distributed.share`) is a zero-row batch, lazy inputs too.
        """
        idx = torch.as_tensor(indices, dtype=torch.long)
        if isinstance(self.inputs, torch.Tensor):
            return self.inputs[idx], self.labels[idx], self.groups[idx]
        if not indices:
            return self.inputs[0].unsqueeze(0)[:0], self.labels[idx], self.groups[idx]
        return [self[i] for i in indices]

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
        processes (see :mod:`fairtune.distributed`), every process draws the
        batches one process would draw, in the same order, and reads its own
        slice of each (:func:`~fairtune.distributed.share`); in one process
        ``shard`` changes nothing.
        """
        generator = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(self, generator=generator) if shuffle else SequentialSampler(self)
        batches: Sampler[list[int]] = BatchSampler(sampler, batch_size, drop_last=False)
        rank, size = world()
        if shard and size > 1:
            batches = _Shares(batches, rank, size)
        in_memory = isinstance(self.inputs, torch.Tensor)
        return DataLoader(
            self,
            batch_sampler=batches,
            generator=generator,
            collate_fn=_as_batch if in_memory else _collate,
            num_workers=0 if in_memory else num_workers,
        )


class _Shares(Sampler[list[int]]):
    """This process's slice of each batch that ``batches`` draws."""

    def __init__(self, batches: Sampler[list[int]], rank: int, size: int) -> None:
        self.batches, self.rank, self.size = batches, rank, size

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch[share(len(batch), self.rank, self.size)]

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]  # a BatchSampler has a length


def _numpy(values: Any, dtype: Any = np.float32) -> np.ndarray:
    """A tensor, Series, list or array as a numpy array (of ``dtype`` unless None)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise FairtuneError(f"inputs and labels must be numbers: {exc}") from None


def check_inputs(inputs: torch.Tensor, columns: Sequence[str] | None = None) -> torch.Tensor:
    """``inputs`` as floating point (integers and booleans become the default float type,
    as a model's weights are) once every value is finite; else one error naming how many
    rows hold NaN or infinite values and in which columns (``columns``: their names)."""
    if not inputs.is_floating_point():
        if inputs.is_complex():
            raise FairtuneError(f"inputs must be real numbers, not {inputs.dtype}")
        return inputs.to(torch.get_default_dtype())
    bad = ~torch.isfinite(inputs)
    if not bool(bad.any()):
        return inputs
    rows = bad.reshape(len(inputs), -1).any(dim=1)
    where = ""
    if inputs.dim() == 2:
        cols = torch.nonzero(bad.any(dim=0)).flatten().tolist()
        names = [columns[c] if columns else str(c) for c in cols]
        where = f" in column(s) {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}"
    first = int(torch.nonzero(rows)[0])
    raise FairtuneError(
        f"inputs hold NaN or infinite values in {int(rows.sum())} row(s){where} (first: row "
        f"{first}, counting from 0): fill or drop them before building the set"
    )


def check_labels(labels: torch.Tensor) -> torch.Tensor:
    """``labels`` if they are one 0/1 value per row; else one error saying what is wrong."""
    if labels.dim() != 1:
        raise FairtuneError(
            f"labels must be 1-D, one per row; got shape {tuple(labels.shape)}: "
            "flatten them (e.g. labels.ravel())"
        )
    values = torch.unique(labels)
    if not bool(((values == 0) | (values == 1)).all()):
        shown = [v.item() for v in values[:5]]
        raise FairtuneError(
            f"labels hold {shown}, not 0/1: a binary classifier needs 0/1 labels "
            "(map the positive class to 1)"
        )
    return labels


def _as_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return batch


def _collate(batch: tuple[torch.Tensor, ...] | list) -> Any:
    """Lazy inputs' items stacked into a batch; a zero-row batch is one already."""
    return batch if isinstance(batch, tuple) else default_collate(batch)


def check_groups(data: FairData, min_groups: int = 2) -> None:
    """Fail with a clear message unless at least ``min_groups`` groups have rows."""
    present = np.unique(data.groups.numpy())
    if len(present) < min_groups:
        names = ", ".join(data.group_names[g] for g in present) or "none"
        raise FairtuneError(
            f"sensitive attribute '{data.attribute}' has only one group in the data ({names}); "
            "fairness needs at least two: check the column or the rows selected"
        )


def check_classes(data: FairData, what: str) -> None:
    """Fail unless ``data`` (the ``what`` set) has rows of both classes: a classifier cannot
    learn, nor AUC measure, a single class."""
    present = np.unique(data.labels.numpy())
    if len(present) < 2:
        only = ", ".join(str(int(v)) for v in present) or "none"
        raise FairtuneError(
            f"the {what} labels are all one class ({only}): both classes (0 and 1) are needed; "
            "check the label column, --positive or the rows selected"
        )


SMALL_EXTERNAL = 50
"""Fewer external rows than this: debiasing still runs, with a warning that it is noise."""


def check_external(data: FairData) -> None:
    """Refuse an external set of one class (nothing to debias, AUC undefined); warn when it
    is too small for its importance and fine-tuning to mean much."""
    check_classes(data, "external")
    if len(data) < SMALL_EXTERNAL:
        warnings.warn(
            f"the external set has only {len(data)} rows: importance and fine-tuning on so few "
            f"are mostly noise (use at least {SMALL_EXTERNAL})",
            stacklevel=2,
        )


def balance(data: FairData, seed: int = 0, mode: str = "down") -> FairData:
    """Group-and-class balance the set (METHODS.md, "The external set").

    For each class, every group's cell is down-sampled to the smallest group's
    cell (``mode="down"``) or up-sampled with replacement to the largest
    (``mode="up"``). Groups with no rows are ignored.
    """
    if mode not in ("down", "up"):
        raise FairtuneError(
            f"balance mode must be 'down' or 'up' (or 'none': no balancing), not '{mode}'"
        )
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


def holdout_split(data: FairData, share: float, seed: int) -> tuple[FairData, FairData]:
    """Split rows into (fit, held-out), ``share`` of every (group, label) cell held out."""
    rng = np.random.default_rng(seed)
    cells = data.groups.numpy() * 2 + data.labels.numpy().astype(np.int64)
    held = []
    for cell in np.unique(cells):
        rows = rng.permutation(np.flatnonzero(cells == cell))
        held.append(rows[: round(share * len(rows))])
    held_rows = np.sort(np.concatenate(held))
    fit_rows = np.setdiff1d(np.arange(len(data)), held_rows)
    return data.subset(fit_rows), data.subset(held_rows)


# ---------------------------------------------------------------- tables
