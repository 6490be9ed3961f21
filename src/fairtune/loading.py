"""Reading what the user names: a CSV file or a built-in data set, and its part."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fairtune.data import FairData, TabularPreprocessor, frame_to_data, split_frame
from fairtune.datasets import BUILTIN
from fairtune.errors import FairtuneError
from fairtune.models import ModelConfig

PARTS = ("train", "external", "test")
BUILTIN_SPLIT = (0.6, 0.2, 0.2)


@dataclass
class Table:
    """A frame with the label and sensitive columns it is known to carry, if any."""

    frame: pd.DataFrame
    source: str
    label: str | None = None
    sensitive: list[str] | None = None


def read_table(spec: str, default_part: str = "train", split_seed: int = 0) -> Table:
    """Read ``spec``: a CSV path, or a built-in name with an optional part (``adult:test``).

    A built-in set is split 60/20/20 into train/external/test, stratified on
    label and default attribute with ``split_seed``, so every command sees the
    same parts.
    """
    name, _, part = spec.partition(":")
    if name in BUILTIN and not Path(spec).exists():
        part = part or default_part
        if part not in (*PARTS, "all"):
            raise FairtuneError(f"part '{part}' of '{name}' must be one of {(*PARTS, 'all')}")
        info = BUILTIN[name]
        frame = info.loader()
        if part != "all":
            parts = split_frame(
                frame, info.label, [info.default_sensitive], BUILTIN_SPLIT, split_seed
            )
            frame = parts[PARTS.index(part)]
        return Table(frame, f"{name}:{part}", info.label, [info.default_sensitive])
    path = Path(spec)
    if not path.is_file():
        raise FairtuneError(
            f"data '{spec}' is neither a file nor a built-in data set ({', '.join(BUILTIN)})"
        )
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise FairtuneError(f"cannot read '{spec}' as CSV: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise FairtuneError(f"'{spec}' has no rows")
    return Table(frame, str(path))


def resolve_columns(
    table: Table, label: str | None, sensitive: list[str] | None, config: ModelConfig | None = None
) -> tuple[str, list[str]]:
    """The label and sensitive columns: given, else the model's, else the built-in set's."""
    label = label or (config.label if config else None) or table.label
    sensitive = sensitive or (config.sensitive if config else None) or table.sensitive
    if not label:
        raise FairtuneError("name the label column with --label")
    if not sensitive:
        raise FairtuneError("name the sensitive attribute column(s) with --sensitive")
    return label, list(sensitive)


def data_for_model(
    table: Table, config: ModelConfig, label: str | None = None, sensitive: list[str] | None = None
) -> FairData:
    """The table as the model saw its training data: same preprocessing and group ids."""
    if config.preprocessing is None:
        raise FairtuneError("this model has no tabular preprocessing; give an image CSV instead")
    label, sensitive = resolve_columns(table, label, sensitive, config)
    same_groups = sensitive == config.sensitive
    return frame_to_data(
        table.frame,
        label,
        sensitive,
        TabularPreprocessor.from_dict(config.preprocessing),
        group_names=config.group_names if same_groups else None,
        positive=config.positive,
    )
