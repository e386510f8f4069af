"""Seeded split of a featurised dataset into pool / val / test.

Only molecule ids are read (from the graph shards): the split never sees a label. Val and test are
disjoint from the pool, so no validation or test molecule can ever be selected for labelling.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .store import write_table

log = logging.getLogger(__name__)

SPLITS = ("pool", "val", "test")


def dataset_ids(data: Path) -> np.ndarray:
    """Molecule ids of a featurised dataset, in shard order.

    The shards are those the manifest lists (stale shard files from an earlier, larger shard count
    are ignored); without a manifest, every ``graphs/shard-*.parquet``.
    """
    data = Path(data)
    manifest = data / "manifest.json"
    if manifest.exists():
        shards = [data / s["path"] for s in json.loads(manifest.read_text())["shards"]]
    else:
        shards = sorted((data / "graphs").glob("shard-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{data}: no graphs/shard-*.parquet (featurise the dataset first)")
    return np.concatenate([pq.read_table(s, columns=["mol_id"])["mol_id"].to_numpy() for s in shards])


def make_split(mol_ids: np.ndarray, val: int, test: int, seed: int, pool: int | None = None) -> pa.Table:
    """Assign ``test`` and ``val`` molecules at random (seeded), the rest (or ``pool`` of it) to the pool.

    Rows keep the dataset order; molecules left out by a ``pool`` cap are not in the table.
    """
    n = len(mol_ids)
    for name, size in (("val", val), ("test", test), ("pool", pool)):
        if size is not None and size < 0:
            raise ValueError(f"split size {name} must be >= 0, got {size}")
    if val + test >= n:
        raise ValueError(f"val ({val}) + test ({test}) leave no pool molecule out of {n}")
    available = n - val - test
    if pool is not None and pool > available:
        raise ValueError(
            f"pool of {pool} asked for, but only {available} molecules remain after val and test"
        )
    order = np.random.default_rng(seed).permutation(n)
    label = np.full(n, "", dtype=object)
    label[order[:test]] = "test"
    label[order[test : test + val]] = "val"
    pool_rows = order[test + val :][: pool if pool is not None else None]
    label[pool_rows] = "pool"
    keep = label != ""
    return pa.table(
        {
            "mol_id": pa.array(mol_ids[keep].astype(str)),
            "split": pa.array(label[keep].astype(str)).dictionary_encode(),
        }
    )


def split_dataset(data: Path, out: Path, val: int, test: int, seed: int, pool: int | None = None) -> pa.Table:
    """Split the featurised dataset in ``data`` and write ``out`` (Parquet: mol_id, split)."""
    table = make_split(dataset_ids(data), val=val, test=test, seed=seed, pool=pool)
    write_table(table, out)
    counts = {s: int(np.sum(table["split"].to_numpy() == s)) for s in SPLITS}
    log.info("%s: %s", out, ", ".join(f"{k} {v}" for k, v in counts.items()))
    return table


def read_split(path: str | Path) -> pd.DataFrame:
    """A run's split.parquet as a DataFrame (mol_id, split as str)."""
    split = pq.read_table(path).to_pandas()
    split["split"] = split["split"].astype(str)
    return split


def holdout_ids(path: str | Path) -> pd.DataFrame:
    """mol_id and split of the val and test molecules of a split.parquet, in split order."""
    split = read_split(path)
    return split[split.split != "pool"][["mol_id", "split"]].reset_index(drop=True)
