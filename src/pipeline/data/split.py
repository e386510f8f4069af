"""Seeded split of a featurised dataset into pool / val / test.

Only molecule ids are read (from the graph shards): the split never sees a label. Val and test are
disjoint from the pool, so no validation or test molecule can ever be selected for labelling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.store import dataset_shards, read_manifest, write_table

log = logging.getLogger(__name__)

SPLITS = ("pool", "val", "test")


def dataset_ids(data: Path, duplicates: bool = False) -> np.ndarray:
    """Molecule ids of a featurised dataset, in the order of the shards its manifest names, without
    the duplicates its manifest leaves out (the same molecule as an earlier one under another id;
    with ``duplicates``, with them)."""
    ids = np.concatenate(
        [pq.read_table(s, columns=["mol_id"])["mol_id"].to_numpy() for s in dataset_shards(data)]
    )
    return ids if duplicates else ids[~np.isin(ids.astype(str), left_out_ids(data))]


def left_out_ids(data: Path) -> np.ndarray:
    """Ids the dataset's manifest leaves out: duplicates of an earlier molecule (featurise_merge)."""
    return np.asarray((read_manifest(data).get("duplicates") or {}).get("left_out") or [], dtype=str)


def make_split(
    mol_ids: np.ndarray,
    val: int,
    test: int,
    seed: int,
    pool: int | None = None,
    left_out: np.ndarray | None = None,
) -> pa.Table:
    """Assign ``test`` and ``val`` molecules at random (seeded), the rest (or ``pool`` of it) to the pool.

    Rows keep the dataset order; molecules left out by a ``pool`` cap are not in the table, nor are
    those in ``left_out`` (duplicates). The random order is drawn over all ``mol_ids``, so leaving a
    few out changes only where they would have been.
    """
    n = len(mol_ids)
    for name, size in (("val", val), ("test", test), ("pool", pool)):
        if size is not None and size < 0:
            raise ValueError(f"split size {name} must be >= 0, got {size}")
    taken = ~np.isin(np.asarray(mol_ids).astype(str), left_out if left_out is not None else [])
    if val + test >= taken.sum():
        raise ValueError(f"val ({val}) + test ({test}) leave no pool molecule out of {int(taken.sum())}")
    available = int(taken.sum()) - val - test
    if pool is not None and pool > available:
        raise ValueError(
            f"pool of {pool} asked for, but only {available} molecules remain after val and test"
        )
    order = np.random.default_rng(seed).permutation(n)
    order = order[taken[order]]
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


def split_dataset(
    data: Path,
    out: Path,
    val: int,
    test: int,
    seed: int,
    pool: int | None = None,
    targets: Sequence[str] | None = None,
    budget: int | None = None,
) -> pa.Table:
    """Split the featurised dataset in ``data`` and write ``out`` (Parquet: mol_id, split).

    The first stage of a run that sees the dataset, so it checks what the config alone could not:
    ``targets`` (when the answer key labels them) must be among the manifest's, and the pool must
    hold the ``budget`` of molecules the run labels. Either mistake fails here, before any training.
    """
    if targets is not None:
        have = read_manifest(data).get("targets", [])
        absent = [t for t in targets if t not in have]
        if absent:
            raise ValueError(
                f"{data}: the dataset has no {absent} (its answer key holds "
                f"{', '.join(have) or 'no target'}); fix the run's targets, or the dataset's input files"
            )
    ids = dataset_ids(data, duplicates=True)
    table = make_split(ids, val=val, test=test, seed=seed, pool=pool, left_out=left_out_ids(data))
    counts = {s: int(np.sum(table["split"].to_numpy() == s)) for s in SPLITS}
    if budget is not None and budget > counts["pool"]:
        raise ValueError(
            f"{data}: the pool holds {counts['pool']} molecules (of {table.num_rows} after val {val} and "
            f"test {test}), fewer than the {budget} the run labels; lower initial.size, batch or rounds"
        )
    write_table(table, out)
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
