"""Seeded pool / val / test split."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.data.featurise import FeaturiseSettings, featurise
from pipeline.data.split import make_split, split_dataset

IDS = np.array([f"m{i:03d}" for i in range(100)], dtype=object)


def _sets(table):
    df = table.to_pandas()
    return {s: set(df.mol_id[df.split == s]) for s in ("pool", "val", "test")}


def test_sizes_disjoint_and_complete():
    sets = _sets(make_split(IDS, val=10, test=15, seed=0))
    assert (len(sets["pool"]), len(sets["val"]), len(sets["test"])) == (75, 10, 15)
    assert not sets["pool"] & sets["val"] and not sets["pool"] & sets["test"]
    assert not sets["val"] & sets["test"]
    assert sets["pool"] | sets["val"] | sets["test"] == set(IDS)


def test_deterministic_for_a_seed_and_different_for_another():
    a, b, c = (make_split(IDS, val=10, test=10, seed=s) for s in (4, 4, 5))
    assert a.equals(b)
    assert _sets(a)["test"] != _sets(c)["test"]
    assert a["mol_id"].to_pylist() == sorted(IDS)  # rows keep dataset order


def test_pool_cap():
    sets = _sets(make_split(IDS, val=10, test=10, seed=0, pool=30))
    assert len(sets["pool"]) == 30 and len(sets["val"]) == 10


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"val": 60, "test": 40}, r"val \(60\) \+ test \(40\) leave no pool"),
        ({"val": 10, "test": 10, "pool": 81}, "pool of 81"),
        ({"val": -1, "test": 10}, "val must be >= 0"),
    ],
)
def test_impossible_sizes_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        make_split(IDS, seed=0, **kw)


def test_split_of_featurised_dataset(tmp_path, qm9_csv):
    featurise(FeaturiseSettings(source="qm9", inputs=[str(qm9_csv())], num_shards=2), tmp_path / "data")
    table = split_dataset(tmp_path / "data", tmp_path / "split.parquet", val=5, test=5, seed=0)
    assert pq.read_table(tmp_path / "split.parquet").equals(table)
    assert table.num_rows == 40
    assert set(table["mol_id"].to_pylist()) == {f"dsgdb9nsd_{i:06d}" for i in range(1, 41)}
    with pytest.raises(FileNotFoundError, match="featurise the dataset first"):
        split_dataset(tmp_path / "nothing", tmp_path / "s.parquet", val=1, test=1, seed=0)


def test_stale_shards_beyond_the_manifest_are_ignored(tmp_path, qm9_csv):
    data = tmp_path / "data"
    featurise(FeaturiseSettings(source="qm9", inputs=[str(qm9_csv())], num_shards=3), data)
    stale = data / "graphs" / "shard-00002.parquet"
    featurise(
        FeaturiseSettings(source="qm9", inputs=[str(qm9_csv())], num_shards=2), data
    )  # fewer shards now
    assert stale.exists()
    table = split_dataset(data, tmp_path / "split.parquet", val=5, test=5, seed=0)
    assert table.num_rows == 40  # not 40 + the stale shard's molecules


def test_the_split_refuses_absent_targets_and_a_pool_smaller_than_the_budget(tmp_path, qm9_csv):
    data = tmp_path / "data"
    featurise(FeaturiseSettings(source="qm9", inputs=[str(qm9_csv())]), data)
    out = tmp_path / "split.parquet"
    with pytest.raises(ValueError, match=r"has no \['homo_typo'\] \(its answer key holds .*homo"):
        split_dataset(data, out, val=5, test=5, seed=0, targets=["homo", "homo_typo"])
    with pytest.raises(ValueError, match="the pool holds 30 molecules .* fewer than the 31 the run labels"):
        split_dataset(data, out, val=5, test=5, seed=0, budget=31)
    assert not out.exists()  # nothing written, so no training job starts
    assert split_dataset(data, out, val=5, test=5, seed=0, targets=["homo"], budget=30).num_rows == 40
