"""Data stage: FairData, tabular preprocessing, group encoding, splits, balancing, skewing."""

import numpy as np
import pandas as pd
import pytest
import torch

from fairtune.columns import encode_groups, encode_labels
from fairtune.data import FairData, balance
from fairtune.datasets import skew_groups
from fairtune.errors import FairtuneError
from fairtune.splits import split_frame
from fairtune.tabular import TabularPreprocessor, feature_columns, frame_to_data


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "hours": rng.normal(40, 5, n),
            "job": rng.choice(["a", "b", "c"], n),
            "sex": rng.choice(["Female", "Male"], n),
            "race": rng.choice(["X", "Y"], n),
            "y": rng.integers(0, 2, n),
        }
    )


def test_preprocessor_standardises_and_one_hot_encodes(frame):
    prep = TabularPreprocessor.fit(frame, ["age", "hours", "job"])
    x = prep.transform(frame).numpy()
    assert x.shape == (len(frame), 2 + 3)
    np.testing.assert_allclose(x[:, 0].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(x[:, 0].std(), 1, atol=1e-4)
    expected = pd.get_dummies(frame["job"]).to_numpy(np.float32)
    np.testing.assert_array_equal(x[:, 2:], expected)
    assert prep.feature_names() == ["age", "hours", "job=a", "job=b", "job=c"]


def test_preprocessor_round_trips_and_transforms_new_data_the_same_way(frame):
    prep = TabularPreprocessor.fit(frame.iloc[:200], ["age", "job"])
    again = TabularPreprocessor.from_dict(prep.to_dict())
    new = frame.iloc[200:]
    assert torch.equal(prep.transform(new), again.transform(new))
    mean, std = prep.numeric["age"]
    np.testing.assert_allclose(
        again.transform(new)[:, 0].numpy(), (new["age"] - mean) / std, rtol=1e-5
    )


def test_unseen_category_encodes_as_zeros(frame):
    prep = TabularPreprocessor.fit(frame, ["job"])
    with pytest.warns(UserWarning, match=r"'job' has 1 row\(s\) with categories not seen.*zzz"):
        x = prep.transform(pd.DataFrame({"job": ["zzz", "a"]}))
    assert x[0].sum() == 0 and x[1].tolist() == [1.0, 0.0, 0.0]


def test_nan_feature_is_named(frame):
    frame.loc[5, "hours"] = np.nan
    with pytest.raises(FairtuneError, match="'hours' has 1 missing"):
        TabularPreprocessor.fit(frame, ["hours"])


def test_groups_keep_names_and_cross_columns(frame):
    ids, names = encode_groups(frame, ["sex"])
    assert names == ("Female", "Male")
    assert (np.array(names)[ids] == frame["sex"].to_numpy()).all()
    ids2, names2 = encode_groups(frame, ["sex", "race"])
    assert len(names2) == 4 and "Female & X" in names2
    assert (np.array(names2)[ids2] == (frame["sex"] + " & " + frame["race"]).to_numpy()).all()


def test_known_group_names_fix_ids_and_reject_unseen(frame):
    ids, _ = encode_groups(frame, ["sex"], group_names=("Male", "Female"))
    assert (ids == (frame["sex"] == "Female").to_numpy()).all()
    with pytest.raises(FairtuneError, match="not seen"):
        encode_groups(frame, ["sex"], group_names=("Male",))


def test_labels():
    assert encode_labels(pd.Series([0, 1, 1])).tolist() == [0, 1, 1]
    assert encode_labels(pd.Series(["no", "yes"]), positive="yes").tolist() == [0, 1]
    with pytest.raises(FairtuneError, match="--positive"):
        encode_labels(pd.Series(["no", "yes"], name="y"))
    with pytest.raises(FairtuneError, match="missing"):
        encode_labels(pd.Series([0, None], name="y"))


def test_feature_columns_exclude_sensitive_unless_asked(frame):
    cols = feature_columns(frame, "y", ["sex"])
    assert "sex" not in cols and "y" not in cols and "race" in cols
    assert "sex" in feature_columns(frame, "y", ["sex"], sensitive_as_feature=True)
    with pytest.raises(FairtuneError, match="not in the data"):
        feature_columns(frame, "y", ["sex"], features=["nope"])


def test_split_is_stratified_disjoint_and_seeded(frame):
    train, ext, test = split_frame(frame, "y", ["sex"], (0.6, 0.2, 0.2), seed=3)
    assert len(train) + len(ext) + len(test) == len(frame)
    assert not set(train.index) & set(ext.index) and not set(ext.index) & set(test.index)
    for part in (train, ext, test):
        cell_share = part.groupby(["sex", "y"]).size() / len(part)
        full_share = frame.groupby(["sex", "y"]).size() / len(frame)
        assert (cell_share - full_share).abs().max() < 0.03
    again = split_frame(frame, "y", ["sex"], (0.6, 0.2, 0.2), seed=3)
    assert list(again[2].index) == list(test.index)


def _data(groups, labels) -> FairData:
    n = len(labels)
    return FairData(
        torch.arange(n, dtype=torch.float32)[:, None],
        torch.tensor(labels, dtype=torch.float32),
        torch.tensor(groups),
        ["g0", "g1", "g2"][: max(groups) + 1],
    )


def test_balance_down_samples_each_class_to_smallest_group_cell():
    groups = [0] * 10 + [1] * 30
    labels = [1] * 3 + [0] * 7 + [1] * 12 + [0] * 18
    bal = balance(_data(groups, labels), seed=0)
    counts = bal.cell_counts()
    assert counts.tolist() == [[7, 3], [7, 3]]
    rows = bal.inputs[:, 0].long()
    assert len(set(rows.tolist())) == len(rows)  # no row twice
    assert torch.equal(bal.groups, torch.tensor(groups)[rows])


def test_balance_up_samples_with_replacement():
    groups = [0] * 10 + [1] * 30
    labels = [1] * 3 + [0] * 7 + [1] * 12 + [0] * 18
    counts = balance(_data(groups, labels), seed=0, mode="up").cell_counts()
    assert counts.tolist() == [[18, 12], [18, 12]]


def test_single_group_is_refused():
    with pytest.raises(FairtuneError, match="only one group"):
        balance(_data([0, 0, 0], [0, 1, 1]))


def test_select_groups_reindexes():
    data = _data([0, 1, 2, 2, 1], [0, 1, 0, 1, 1])
    sub = data.select_groups([2, 0])
    assert sub.group_names == ("g2", "g0")
    assert sub.groups.tolist() == [1, 0, 0]
    assert sub.inputs[:, 0].tolist() == [0.0, 2.0, 3.0]


def test_replace_changes_only_the_given_fields():
    data = _data([0, 1, 2, 2, 1], [0, 1, 0, 1, 1])
    data.attribute = "tone"
    inputs = torch.zeros(5, 2)
    copy = data.replace(inputs=inputs)
    assert copy is not data and copy.inputs is inputs
    assert torch.equal(copy.labels, data.labels) and torch.equal(copy.groups, data.groups)
    assert copy.group_names == data.group_names and copy.attribute == "tone"
    renamed = data.replace(groups=torch.zeros(5, dtype=torch.long), group_names=["all"])
    assert renamed.group_names == ("all",) and renamed.groups.tolist() == [0] * 5
    assert renamed.inputs is data.inputs and renamed.attribute == "tone"
    with pytest.raises(FairtuneError, match="differ in length"):
        data.replace(labels=torch.zeros(4))


def test_skew_keeps_the_fraction_of_one_cell(frame):
    skewed = skew_groups(frame, "y", "sex", "Female", keep=0.1, seed=0)
    before = ((frame.sex == "Female") & (frame.y == 1)).sum()
    after = ((skewed.sex == "Female") & (skewed.y == 1)).sum()
    assert after == round(0.1 * before)
    others = frame[~((frame.sex == "Female") & (frame.y == 1))]
    assert set(others.index) <= set(skewed.index)


def test_frame_to_data(frame):
    prep = TabularPreprocessor.fit(frame, ["age", "job"])
    data = frame_to_data(frame, "y", ["sex"], prep)
    assert len(data) == len(frame) and data.group_names == ("Female", "Male")
    x, y, a = data[0]
    assert x.shape == (4,) and y.item() == frame.y.iloc[0]
    assert data.group_names[a] == frame.sex.iloc[0]


def test_loader_gathers_batches_in_the_seeded_order():
    n = 50
    data = FairData(
        torch.randn(n, 3), torch.randint(0, 2, (n,)).float(), torch.randint(0, 2, (n,)), ["a", "b"]
    )
    order = torch.cat(
        list(
            torch.utils.data.DataLoader(
                range(n), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(4)
            )
        )
    )
    x = torch.cat([b[0] for b in data.loader(8, shuffle=True, seed=4)])
    y = torch.cat([b[1] for b in data.loader(8, shuffle=True, seed=4)])
    assert torch.equal(x, data.inputs[order]) and torch.equal(y, data.labels[order])
    assert not torch.equal(order, torch.arange(n))


def test_missing_text_values_are_named_at_fit_and_transform(frame):
    prep = TabularPreprocessor.fit(frame, ["age", "job"])
    holed = frame.assign(job=frame.job.where(frame.index != 9))
    for call in (lambda: TabularPreprocessor.fit(holed, ["job"]), lambda: prep.transform(holed)):
        with pytest.raises(
            FairtuneError,
            match=r"feature column 'job' has 1 missing values \(first at row 10, counting data "
            r"rows from 1\)",
        ):
            call()


def test_split_refuses_what_it_cannot_stratify(frame):
    with pytest.raises(FairtuneError, match="label column 'y' has 1 missing"):
        split_frame(frame.assign(y=frame.y.where(frame.index != 3)), "y", ["sex"])
    # 10 groups x 2 labels x 3 rows: every cell can be split, but a 20% part has 12 rows
    many = pd.DataFrame(
        {"y": [i // 10 % 2 for i in range(60)], "g": [f"g{i % 10}" for i in range(60)]}
    )
    with pytest.raises(FairtuneError, match="cannot hold all 20"):
        split_frame(many, "y", ["g"])
