"""The bundled UCI data sets: provenance of the files and what the loaders return.

Expected counts are computed here from the raw UCI files in shared/data beside the project
with plain line handling, independently of the loaders' parsing; those tests
skip when the raw files are absent. The sha256 sums are the published ones
from the shared data README.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from fairtune.datasets import (
    BUILTIN,
    BuiltinDataset,
    builtin,
    load_adult,
    load_german,
)
from fairtune.errors import FairtuneError

RAW_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"

# Published sha256 sums of the raw UCI files (shared data README): the provenance.
PUBLISHED_SHA256 = {
    "adult.data.gz": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test.gz": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    "german.data.gz": "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
}
RAW_PATHS = {
    "adult.data.gz": "adult/adult.data",
    "adult.test.gz": "adult/adult.test",
    "german.data.gz": "german/german.data",
}

ADULT_COLUMNS = [
    "age",
    "workclass",
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
ADULT_INT = {"age", "education_num", "capital_gain", "capital_loss", "hours_per_week", "income"}
GERMAN_COLUMNS = [
    "checking_status",
    "duration",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "employment_since",
    "installment_rate",
    "sex",
    "other_debtors",
    "residence_since",
    "property",
    "age",
    "age_group",
    "other_installment_plans",
    "housing",
    "existing_credits",
    "job",
    "num_dependents",
    "telephone",
    "foreign_worker",
    "credit_risk",
]
GERMAN_INT = {
    "duration",
    "credit_amount",
    "installment_rate",
    "residence_since",
    "age",
    "existing_credits",
    "num_dependents",
    "credit_risk",
}


def _bundled(name: str) -> bytes:
    return (resources.files("fairtune.datasets") / "files" / name).read_bytes()


def _raw_lines(rel: str) -> pd.Series:
    """Data lines of a raw file: no blank lines, no '|' comment lines."""
    path = RAW_DIR / rel
    if not path.is_file():
        pytest.skip(f"raw UCI file {path} not present")
    lines = path.read_text(encoding="ascii").splitlines()
    return pd.Series([ln for ln in lines if ln.strip() and not ln.startswith("|")])


def _raw_adult_complete(rel: str) -> pd.Series:
    """Raw Adult data lines without any '?' (missing value)."""
    lines = _raw_lines(rel)
    return lines[~lines.str.contains("?", regex=False)]


@pytest.fixture(scope="module")
def adult_all() -> pd.DataFrame:
    return load_adult()


@pytest.fixture(scope="module")
def adult_train() -> pd.DataFrame:
    return load_adult("train")


@pytest.fixture(scope="module")
def adult_test() -> pd.DataFrame:
    return load_adult("test")


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return load_german()


# --- provenance of the bundled files -------------------------------------------------


@pytest.mark.parametrize("name", sorted(PUBLISHED_SHA256))
def test_bundled_file_decompresses_to_published_sha256(name):
    data = gzip.decompress(_bundled(name))
    assert hashlib.sha256(data).hexdigest() == PUBLISHED_SHA256[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_SHA256))
def test_bundled_file_equals_raw_file(name):
    path = RAW_DIR / RAW_PATHS[name]
    if not path.is_file():
        pytest.skip(f"raw UCI file {path} not present")
    assert gzip.decompress(_bundled(name)) == path.read_bytes()


@pytest.mark.parametrize("name", sorted(PUBLISHED_SHA256))
def test_bundled_gzip_header_is_reproducible(name):
    header = _bundled(name)[:10]
    assert header[:3] == b"\x1f\x8b\x08"  # gzip magic, deflate
    assert header[3] == 0  # no file name or other optional fields
    assert header[4:8] == b"\0\0\0\0"  # mtime 0
    assert header[8] == 2  # "maximum compression" flag: compresslevel 9


def test_attribution_note_names_sources_and_licence():
    text = (resources.files("fairtune.datasets") / "files" / "ATTRIBUTION.md").read_text(
        encoding="utf-8"
    )
    for needle in [
        "Adult",
        "Statlog (German Credit Data)",
        "Barry Becker",
        "Ronny Kohavi",
        "1996",
        "Hans Hofmann",
        "1994",
        "UCI Machine Learning Repository",
        "CC BY 4.0",
        "10.24432/C5XW20",
        "10.24432/C5NC77",
        "unchanged",
        "gzip",
    ]:
        assert needle in text, needle


# --- Adult ---------------------------------------------------------------------------


def test_adult_all_has_45222_rows(adult_all):
    assert len(adult_all) == 45_222
    assert adult_all.index.equals(pd.RangeIndex(45_222))


def test_adult_split_row_counts_match_raw_files(adult_train, adult_test, adult_all):
    n_train = len(_raw_adult_complete("adult/adult.data"))
    n_test = len(_raw_adult_complete("adult/adult.test"))
    assert (n_train, n_test) == (30_162, 15_060)  # as adult.names states
    assert len(adult_train) == n_train
    assert len(adult_test) == n_test
    assert n_train + n_test == len(adult_all)


def test_adult_all_is_train_then_test(adult_train, adult_test, adult_all):
    pd.testing.assert_frame_equal(
        adult_all, pd.concat([adult_train, adult_test], ignore_index=True)
    )


@pytest.mark.parametrize(
    ("split", "rel", "suffix"),
    [("train", "adult/adult.data", ">50K"), ("test", "adult/adult.test", ">50K.")],
)
def test_adult_positive_rate_matches_raw_count(split, rel, suffix):
    lines = _raw_adult_complete(rel)
    positives = int(lines.str.rstrip().str.endswith(suffix).sum())
    negatives = int(lines.str.rstrip().str.endswith("<=50K" + suffix[4:]).sum())
    assert positives + negatives == len(lines)
    frame = load_adult(split)
    assert int(frame["income"].sum()) == positives
    assert frame["income"].mean() == pytest.approx(positives / len(lines))


def test_adult_columns_and_dtypes(adult_all):
    assert list(adult_all.columns) == ADULT_COLUMNS
    assert "fnlwgt" not in adult_all.columns
    assert "education" not in adult_all.columns
    for column in ADULT_COLUMNS:
        if column in ADULT_INT:
            assert adult_all[column].dtype == "int64", column
        else:
            assert pd.api.types.is_string_dtype(adult_all[column]), column
            assert adult_all[column].map(type).eq(str).all(), column


def test_adult_values_are_clean(adult_all):
    assert not adult_all.isna().any(axis=None)
    strings = adult_all.select_dtypes(exclude="number")
    assert not strings.eq("?").any(axis=None)
    assert strings.apply(lambda c: c.str.strip().eq(c).all()).all()
    assert set(adult_all["income"]) == {0, 1}
    assert set(adult_all["sex"]) == {"Female", "Male"}
    assert set(adult_all["race"]) == {
        "White",
        "Black",
        "Asian-Pac-Islander",
        "Amer-Indian-Eskimo",
        "Other",
    }


def test_adult_sex_counts_match_raw_files(adult_all):
    lines = pd.concat(
        [_raw_adult_complete("adult/adult.data"), _raw_adult_complete("adult/adult.test")]
    )
    sex = lines.str.split(",").str[9].str.strip()
    assert adult_all["sex"].value_counts().to_dict() == sex.value_counts().to_dict()


def test_adult_unknown_split_raises():
    with pytest.raises(FairtuneError, match="train, test, all"):
        load_adult("validation")


# --- German Credit -------------------------------------------------------------------


def test_german_rows_and_label(german):
    assert len(german) == 1000
    assert set(german["credit_risk"]) == {0, 1}
    assert int(german["credit_risk"].sum()) == 300
    raw = _raw_lines("german/german.data").str.split()
    assert int(raw.str[20].eq("2").sum()) == int(german["credit_risk"].sum())
    assert german["credit_risk"].tolist() == raw.str[20].eq("2").astype(int).tolist()


def test_german_sex_matches_raw_personal_status(german):
    raw = _raw_lines("german/german.data").str.split()
    assert raw.str.len().eq(21).all()
    n_female = int(raw.str[8].isin(["A92", "A95"]).sum())
    assert int(german["sex"].eq("female").sum()) == n_female
    assert int(german["sex"].eq("male").sum()) == len(raw) - n_female
    assert set(german["sex"]) == {"female", "male"}
    assert "personal_status" not in german.columns


def test_german_age_group(german):
    raw = _raw_lines("german/german.data").str.split()
    young = raw.str[12].astype(int).le(25)
    assert german["age_group"].eq("25 and under").tolist() == young.tolist()
    assert set(german["age_group"]) == {"25 and under", "over 25"}
    assert german["age"].eq(raw.str[12].astype(int)).all()


def test_german_columns_dtypes_and_no_nan(german):
    assert list(german.columns) == GERMAN_COLUMNS
    assert not german.isna().any(axis=None)
    for column in GERMAN_COLUMNS:
        if column in GERMAN_INT:
            assert german[column].dtype == "int64", column
        else:
            assert pd.api.types.is_string_dtype(german[column]), column
            assert german[column].map(type).eq(str).all(), column
    assert german["checking_status"].str.fullmatch(r"A1[1-4]").all()


# --- registry ------------------------------------------------------------------------


def test_registry_entries_describe_their_frames():
    assert set(BUILTIN) == {"adult", "german"}
    expected = {
        "adult": ("income", "sex", ("sex", "race")),
        "german": ("credit_risk", "sex", ("sex", "age_group")),
    }
    for name, entry in BUILTIN.items():
        assert isinstance(entry, BuiltinDataset)
        assert entry.name == name
        assert (entry.label, entry.default_sensitive, entry.sensitive_attributes) == expected[name]
        assert entry.description and "\n" not in entry.description
        frame = entry.load()
        assert entry.label in frame.columns
        assert set(frame[entry.label]) == {0, 1}
        for attribute in entry.sensitive_attributes:
            assert attribute in frame.columns
            assert frame[attribute].nunique() >= 2


def test_registry_entries_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BUILTIN["adult"].label = "sex"  # type: ignore[misc]


def test_builtin_lookup():
    assert builtin("german") is BUILTIN["german"]
    with pytest.raises(FairtuneError, match="adult, german"):
        builtin("compas")
