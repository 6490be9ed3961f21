"""Built-in real data sets: UCI Adult and Statlog German Credit.

The raw UCI files ship inside the package, unchanged but gzip-compressed, in
``fairtune/datasets/files`` (see ``ATTRIBUTION.md`` there: both data sets are
CC BY 4.0). They are read through :mod:`importlib.resources`, so the loaders
work from a source tree and from an installed wheel alike.

:data:`BUILTIN` maps a short name (``"adult"``, ``"german"``) to a
:class:`BuiltinDataset` that knows the loader, the label column and the
sensitive attribute columns, so a command line can accept ``--data adult``.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from fairtune.datasets.chest import ChestOptions, read_chexpert, read_mimic_cxr
from fairtune.datasets.dermoscopy import read_ham10000, read_isic2019
from fairtune.datasets.layouts import ImageRoots
from fairtune.datasets.skew import skew_groups
from fairtune.datasets.skin import read_fitzpatrick17k, read_isic2020
from fairtune.datasets.synthetic import SyntheticSpec, make_skin_tone_images
from fairtune.errors import FairtuneError

__all__ = [
    "BUILTIN",
    "BuiltinDataset",
    "ChestOptions",
    "ImageRoots",
    "SyntheticSpec",
    "builtin",
    "load_adult",
    "load_german",
    "make_skin_tone_images",
    "read_chexpert",
    "read_fitzpatrick17k",
    "read_ham10000",
    "read_isic2019",
    "read_isic2020",
    "read_mimic_cxr",
    "skew_groups",
]

ADULT_SPLITS = ("train", "test", "all")  # own list: UCI's files, not fairtune's parts

# Raw column order of adult.data / adult.test, as listed in adult.names.
_ADULT_RAW_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
_ADULT_DROPPED = ["fnlwgt", "education"]
_ADULT_NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
_ADULT_LABELS = {"<=50K": 0, ">50K": 1}

# Raw column order of german.data (attributes 1-20 of german.doc, then the label).
_GERMAN_RAW_COLUMNS = [
    "checking_status",
    "duration",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "employment_since",
    "installment_rate",
    "personal_status",
    "other_debtors",
    "residence_since",
    "property",
    "age",
    "other_installment_plans",
    "housing",
    "existing_credits",
    "job",
    "num_dependents",
    "telephone",
    "foreign_worker",
    "credit_risk",
]
_GERMAN_NUMERIC = [
    "duration",
    "credit_amount",
    "installment_rate",
    "residence_since",
    "age",
    "existing_credits",
    "num_dependents",
]
# Attribute 9, "personal status and sex".
_GERMAN_SEX = {"A91": "male", "A92": "female", "A93": "male", "A94": "male", "A95": "female"}
_GERMAN_LABELS = {"1": 0, "2": 1}  # 1 good, 2 bad -> credit_risk 1 means bad
GERMAN_AGE_CUT = 25
_GERMAN_AGE_GROUPS = ("25 and under", "over 25")


def _read_bundled(filename: str) -> str:
    """Return the decompressed text of a bundled file in ``datasets/files``."""
    resource = resources.files(__name__) / "files" / filename
    try:
        compressed = resource.read_bytes()
    except FileNotFoundError as exc:
        raise FairtuneError(
            f"bundled data file {filename!r} is missing from the fairtune install; "
            "reinstall fairtune"
        ) from exc
    try:
        return gzip.decompress(compressed).decode("ascii")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise FairtuneError(
            f"bundled data file {filename!r} is damaged ({exc}); reinstall fairtune"
        ) from exc


def _parse_rows(text: str, sep: str, columns: list[str], filename: str) -> pd.DataFrame:
    """Parse the non-blank, non-comment (``|``) lines of ``text`` into stripped strings."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("|")]
    for line in lines:
        if line.count(sep) != len(columns) - 1:
            raise FairtuneError(
                f"bundled data file {filename!r}: line {line[:60]!r} does not have "
                f"{len(columns)} fields; reinstall fairtune"
            )
    frame = pd.read_csv(
        io.StringIO("\n".join(lines)),
        sep=sep,
        header=None,
        names=columns,
        dtype=str,
        keep_default_na=False,
        skipinitialspace=True,
        engine="c",
    )
    if len(frame) != len(lines) or frame.isna().any(axis=None):
        raise FairtuneError(f"bundled data file {filename!r} does not parse; reinstall fairtune")
    return frame.apply(lambda column: column.str.strip())


def _to_int(frame: pd.DataFrame, columns: list[str]) -> None:
    for column in columns:
        frame[column] = frame[column].astype("int64")


def _map_label(values: pd.Series, mapping: dict[str, int], filename: str) -> pd.Series:
    unknown = sorted(set(values) - set(mapping))
    if unknown:
        raise FairtuneError(
            f"bundled data file {filename!r}: unexpected label values {unknown}; reinstall fairtune"
        )
    return values.map(mapping).astype("int64")


def _load_adult_file(filename: str) -> pd.DataFrame:
    frame = _parse_rows(_read_bundled(filename), ",", _ADULT_RAW_COLUMNS, filename)
    frame = frame[~(frame == "?").any(axis=1)]
    # adult.test writes its labels with a trailing '.', e.g. ">50K.".
    income = frame["income"].str.removesuffix(".")
    frame = frame.drop(columns=_ADULT_DROPPED)
    frame["income"] = _map_label(income, _ADULT_LABELS, filename)
    _to_int(frame, _ADULT_NUMERIC)
    return frame.reset_index(drop=True)


def load_adult(split: str = "all") -> pd.DataFrame:
    """Load UCI Adult (Census Income), one row per person, cleaned.

    ``split`` is ``"train"`` (``adult.data``, 30,162 rows), ``"test"``
    (``adult.test``, 15,060 rows) or ``"all"`` (train rows then test rows,
    45,222 rows, index 0..n-1).

    Cleaning, relative to the raw files:

    - whitespace around fields is stripped; the comment line that opens
      ``adult.test`` is skipped, and the trailing ``'.'`` of its labels removed;
    - every row with a missing value (``'?'`` in any field) is dropped;
    - ``fnlwgt`` is dropped: it is the census sampling weight, a property of the
      survey design, not an attribute of the person;
    - ``education`` is dropped and ``education_num`` kept: the number is a
      one-to-one recoding of the education level, ordered.

    Columns: ``age``, ``workclass``, ``education_num``, ``marital_status``,
    ``occupation``, ``relationship``, ``race``, ``sex``, ``capital_gain``,
    ``capital_loss``, ``hours_per_week``, ``native_country``, ``income``.
    The numeric columns are int64 and the others strings. The label ``income``
    is int64, 1 for ``>50K`` and 0 for ``<=50K``. Sensitive attributes: ``sex``
    (Female/Male) and ``race`` (5 groups), under those names.

    Raises :class:`~fairtune.errors.FairtuneError` for an unknown ``split``.
    """
    if split not in ADULT_SPLITS:
        raise FairtuneError(
            f"unknown Adult split {split!r}: choose one of {', '.join(ADULT_SPLITS)}"
        )
    files = {"train": ["adult.data.gz"], "test": ["adult.test.gz"]}
    names = files.get(split, files["train"] + files["test"])
    frames = [_load_adult_file(name) for name in names]
    return pd.concat(frames, ignore_index=True)


def load_german() -> pd.DataFrame:
    """Load Statlog (German Credit Data), 1,000 loan applicants.

    Parsed from ``german.data`` (space separated, 20 attributes then the label)
    with readable column names; the categorical attributes keep their raw codes
    as strings (``"A11"``, ...; their meaning is in UCI's ``german.doc``), the
    numeric ones are int64.

    Changes to the raw attributes:

    - ``sex`` (``"male"``/``"female"``) is derived from attribute 9, "personal
      status and sex" (A91, A93, A94 male; A92, A95 female), and that column,
      ``personal_status``, is dropped because it encodes sex. Its marital-status
      part goes with it. (No row carries A95, so every woman has A92.)
    - ``age_group`` is added next to ``age``: ``"25 and under"`` or
      ``"over 25"``, the usual cut in the fairness literature; ``age`` stays.
    - the label ``credit_risk`` is int64, 1 for bad credit risk (raw 2) and 0
      for good (raw 1).

    Columns: ``checking_status``, ``duration``, ``credit_history``,
    ``purpose``, ``credit_amount``, ``savings``, ``employment_since``,
    ``installment_rate``, ``sex``, ``other_debtors``, ``residence_since``,
    ``property``, ``age``, ``age_group``, ``other_installment_plans``,
    ``housing``, ``existing_credits``, ``job``, ``num_dependents``,
    ``telephone``, ``foreign_worker``, ``credit_risk``. Sensitive attributes:
    ``sex`` and ``age_group``.
    """
    filename = "german.data.gz"
    frame = _parse_rows(_read_bundled(filename), " ", _GERMAN_RAW_COLUMNS, filename)
    frame["credit_risk"] = _map_label(frame["credit_risk"], _GERMAN_LABELS, filename)
    _to_int(frame, _GERMAN_NUMERIC)
    unknown = sorted(set(frame["personal_status"]) - set(_GERMAN_SEX))
    if unknown:
        raise FairtuneError(
            f"bundled data file {filename!r}: unexpected personal status codes {unknown}; "
            "reinstall fairtune"
        )
    frame.insert(
        frame.columns.get_loc("personal_status"),
        "sex",
        frame["personal_status"].map(_GERMAN_SEX).astype(str),
    )
    frame = frame.drop(columns=["personal_status"])
    young, old = _GERMAN_AGE_GROUPS
    age_group = frame["age"].le(GERMAN_AGE_CUT).map({True: young, False: old}).astype(str)
    frame.insert(frame.columns.get_loc("age") + 1, "age_group", age_group)
    return frame


@dataclass(frozen=True)
class BuiltinDataset:
    """A bundled data set: how to load it and which columns play which role.

    ``sensitive_attributes`` lists every column usable as the sensitive
    attribute; ``default_sensitive`` is one of them, used when none is given.
    """

    name: str
    loader: Callable[[], pd.DataFrame]
    label: str
    default_sensitive: str
    sensitive_attributes: tuple[str, ...]
    description: str

    def load(self) -> pd.DataFrame:
        """Return the full data set as a fresh DataFrame."""
        return self.loader()


BUILTIN: dict[str, BuiltinDataset] = {
    "adult": BuiltinDataset(
        name="adult",
        loader=load_adult,
        label="income",
        default_sensitive="sex",
        sensitive_attributes=("sex", "race"),
        description="UCI Adult census income, 45,222 people: income >50K (Becker & Kohavi 1996)",
    ),
    "german": BuiltinDataset(
        name="german",
        loader=load_german,
        label="credit_risk",
        default_sensitive="sex",
        sensitive_attributes=("sex", "age_group"),
        description="UCI Statlog German Credit, 1,000 applicants: bad credit risk (Hofmann 1994)",
    ),
}


def builtin(name: str) -> BuiltinDataset:
    """Return the built-in data set called ``name``, or raise a FairtuneError naming the choices."""
    try:
        return BUILTIN[name]
    except KeyError:
        raise FairtuneError(
            f"unknown built-in data set {name!r}: choose one of {', '.join(sorted(BUILTIN))}"
        ) from None
