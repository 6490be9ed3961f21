"""Reading what the user names: a CSV file, an image CSV, or a built-in data set and its part."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from fairtune.columns import Columns, check_header, check_roles
from fairtune.data import FairData
from fairtune.datasets import BUILTIN
from fairtune.datasets.layouts import NO_ROOTS, ImageRoots
from fairtune.datasets.medical import MedicalTable
from fairtune.datasets.presets import PRESETS, PresetSpec, parse_preset
from fairtune.errors import FairtuneError
from fairtune.image_csv import ImageOptions, ImageReading, read_image_csv
from fairtune.modelio import ModelConfig
from fairtune.splits import PART_NAMES, PARTS, WHOLE, split_frame
from fairtune.tabular import TabularPreprocessor, frame_to_data

BUILTIN_SPLIT = (0.6, 0.2, 0.2)
IMAGE_ROOT = "image_root"
"""The key of ``ModelConfig.images`` under which train saves the image root it read from."""


@dataclass(frozen=True)
class MedicalReading:
    """How a published medical set (``FORMAT:PATH``) is read and split: ``images``, where its
    images are besides its own folders; ``by_image``, its parts split by image instead of by
    patient (a patient's images may then land in several parts: a warning says how many)."""

    by_image: bool = False
    images: ImageRoots = NO_ROOTS


@dataclass(frozen=True)
class Split:
    """Which seeded 60/20/20 split a part name means: its ``seed`` and, for a medical set,
    whether it splits by image (:class:`MedicalReading`)."""

    seed: int = 0
    by_image: bool = False


@dataclass
class Table:
    """A frame with the label and sensitive columns it is known to carry, if any.

    ``preset``: the published medical set the rows come from (image column, image
    root, patient column, what was read and dropped), for ``FORMAT:PATH`` data.
    """

    frame: pd.DataFrame
    source: str
    label: str | None = None
    sensitive: list[str] | None = None
    preset: MedicalTable | None = None


def read_table(
    spec: str,
    default_part: str = "train",
    split_seed: int = 0,
    sensitive: list[str] | None = None,
    medical: MedicalReading = MedicalReading(),
) -> Table:
    """Read ``spec``: a CSV path, a built-in name with an optional part (``adult:test``), or a
    published medical set's folder (``chexpert:/data/CheXpert-v1.0-small``, optional ``:PART``).

    A built-in set is split 60/20/20 into train/external/test, stratified on
    label and default attribute with ``split_seed``, so every command sees the
    same parts. A medical set is split alike, by patient, stratified on its label
    and the ``sensitive`` attribute(s) (default: the set's), whose unknowns are dropped;
    ``medical`` says where its images are and whether to split by image instead.
    """
    preset = preset_of(spec)
    if preset is not None:
        return _preset_table(
            preset, default_part, Split(split_seed, medical.by_image), sensitive, medical.images
        )
    name, _, part = spec.partition(":")
    if name in BUILTIN and not Path(spec).exists():
        part = part or default_part
        if part not in PART_NAMES:
            raise FairtuneError(f"part '{part}' of '{name}' must be one of {PART_NAMES}")
        info = BUILTIN[name]
        frame = info.loader()
        if part != WHOLE:
            parts = split_frame(
                frame, info.label, [info.default_sensitive], BUILTIN_SPLIT, split_seed
            )
            frame = parts[PARTS.index(part)]
        return Table(frame, f"{name}:{part}", info.label, [info.default_sensitive])
    path = Path(spec)
    if not path.is_file():
        raise FairtuneError(
            f"data '{spec}' is neither a file nor a built-in data set ({', '.join(BUILTIN)}) "
            f"nor a published one, FORMAT:DIR with FORMAT one of {', '.join(PRESETS)}"
        )
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
        header = pd.read_csv(path, skipinitialspace=True, header=None, nrows=1).iloc[0]
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise FairtuneError(f"cannot read '{spec}' as CSV: {str(exc).splitlines()[0]}") from None
    check_header(header.tolist(), spec)
    if frame.empty:
        raise FairtuneError(f"'{spec}' has no rows")
    return Table(frame, str(path))


def preset_of(spec: str) -> PresetSpec | None:
    """The published medical set ``spec`` names (``FORMAT:PATH``), or None; a file of that
    name wins."""
    return None if Path(spec).exists() else parse_preset(spec)


def _preset_table(
    spec: PresetSpec,
    default_part: str,
    split: Split,
    sensitive: list[str] | None,
    images: ImageRoots,
) -> Table:
    """The part of a published medical set that ``spec`` names."""
    part = spec.part or default_part
    if part not in PART_NAMES:
        choices = PART_NAMES
        raise FairtuneError(f"part '{part}' of '{spec.preset.name}' must be one of {choices}")
    medical = spec.preset.read(spec.path, sensitive, images)
    frame = medical.frame
    if part != WHOLE:
        frame = preset_parts(medical, split)[PARTS.index(part)]
    source = f"{spec.preset.name}:{spec.path}:{part}"
    label, chosen = medical.label, list(medical.sensitive)
    return Table(frame, source, label, chosen, medical.with_frame(frame))


def preset_parts(medical: MedicalTable, split: Split) -> tuple[pd.DataFrame, ...]:
    """The three parts of a medical set, by patient (or by image, with a warning); a split
    that cannot be made says first what was read, dropped and kept, then what to do."""
    columns = (medical.frame, medical.label, medical.sensitive, BUILTIN_SPLIT, split.seed)
    patient = None if split.by_image else medical.patient
    try:
        parts = split_frame(*columns, patient=patient)
    except FairtuneError as exc:
        hint = (
            ""
            if split.by_image
            else (
                "; to go on: use fewer groups (one --sensitive attribute), read the set whole "
                "(FORMAT:DIR:all) and split it into fewer parts yourself, or split by image with "
                "--split-by image (a patient's images may then land in several parts)"
            )
        )
        raise FairtuneError(f"{medical.summary.one_line()}: {exc}{hint}") from None
    if split.by_image:
        warn_shared_patients(parts, medical.patient)
    return parts


def warn_shared_patients(parts: tuple[pd.DataFrame, ...], patient: str) -> None:
    """Warn, after a split by image, how many patients have images in more than one part."""
    seen = pd.concat([part[patient].drop_duplicates() for part in parts])
    shared = seen[seen.duplicated()].nunique()
    if shared:
        warnings.warn(
            f"split by image: {shared} of {seen.nunique()} patients have images in more than "
            "one part, so the parts are not independent and scores overstate the model",
            stacklevel=2,
        )


def read_preset_images(
    table: Table,
    options: ImageOptions,
    columns: Columns,
    group_names: list[str] | None = None,
    reading: ImageReading | None = None,
) -> tuple[FairData, dict[str, Any]]:
    """A medical set's rows read as images from its download folder (``reading``'s image root
    replaced by it)."""
    medical = table.preset
    if medical is None:
        raise FairtuneError(f"'{table.source}' is not a published medical set")
    return read_image_csv(
        medical.root / medical.summary.files[0],
        replace(options, image_col=medical.image_col),
        columns,
        group_names,
        replace(reading or ImageReading(), image_root=medical.root),
        frame=table.frame,
    )


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
    check_roles(label, sensitive)
    return label, list(sensitive)


def load_for_model(
    spec: str,
    config: ModelConfig,
    label: str | None = None,
    sensitive: list[str] | None = None,
    default_part: str = "test",
    split: Split = Split(),
    reading: ImageReading | None = None,
) -> tuple[FairData, str]:
    """Data read as the model's training data was: same preprocessing or image reading, same
    group ids. Returns the data and a description of its source. ``split`` says which split
    a part name means; ``reading`` says where an image CSV's files are (for a medical set:
    where they are instead of its own folders, else the model's saved image root is tried
    after them) and whether to skip bad ones (None: the defaults)."""
    if config.images is not None:
        sensitive = sensitive or config.sensitive
        options = ImageOptions.from_dict(config.images)
        columns = Columns(label or config.label, sensitive, config.positive)
        groups, reading = known_groups(config, sensitive), reading or ImageReading()
        if preset_of(spec) is not None:
            saved = config.images.get(IMAGE_ROOT)
            roots = ImageRoots(_path(reading.image_root), _path(saved))
            medical = MedicalReading(split.by_image, roots)
            table = read_table(spec, default_part, split.seed, list(sensitive), medical)
            data, report = read_preset_images(table, options, columns, groups, reading)
            spec = table.source
        else:
            data, report = read_image_csv(spec, options, columns, groups, reading)
        return data, f"{spec} ({report['rows_used']} of {report['rows_read']} images)"
    table = read_table(spec, default_part, split.seed, medical=MedicalReading(split.by_image))
    return data_for_model(table, config, label, sensitive), table.source


def _path(path: str | Any | None) -> Path | None:
    return None if path is None else Path(path)


def data_for_model(
    table: Table, config: ModelConfig, label: str | None = None, sensitive: list[str] | None = None
) -> FairData:
    """The table as the model saw its training data: same preprocessing and group ids."""
    if config.images is not None:
        raise FairtuneError("this model reads images; give an image CSV")
    if config.preprocessing is None:
        raise FairtuneError(
            "the model's config.json has no 'preprocessing' (how its tabular features are "
            "encoded): the file is damaged; restore it or train the model again"
        )
    label, sensitive = resolve_columns(table, label, sensitive, config)
    return frame_to_data(
        table.frame,
        label,
        sensitive,
        TabularPreprocessor.from_dict(config.preprocessing),
        group_names=known_groups(config, sensitive),
        positive=config.positive,
    )


def known_groups(config: ModelConfig, sensitive: list[str]) -> list[str] | None:
    """The model's group names when the data is grouped by the model's attribute, else None
    (another attribute: its groups come from the data)."""
    return config.group_names if list(sensitive) == list(config.sensitive) else None
