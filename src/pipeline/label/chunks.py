"""The compute oracles' jobs (pyscf, xtb): the molecules to label cut into chunks (:func:`chunk_of`),
their geometries read from the graph shards (:func:`read_geometries`), one chunk labelled by
:func:`pipeline.label.qc.label_molecules` (:func:`label_chunk`), and the chunks' labels and failures
joined back in request order (:func:`read_parts`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.data.store import dataset_shards, read_graph_metadata, write_table
from pipeline.label.base import failures_table, get_oracle

log = logging.getLogger(__name__)


def chunk_of(mol_ids: Sequence[str] | np.ndarray, chunk: int, chunks: int) -> np.ndarray:
    """The molecules of chunk ``chunk`` (0-based) of ``chunks`` near-equal contiguous chunks."""
    if not 0 <= chunk < chunks:
        raise ValueError(f"chunk {chunk} is not in 0..{chunks - 1}")
    return np.array_split(np.asarray(mol_ids, dtype=object), chunks)[chunk]


class Geometry(NamedTuple):
    """What a QC oracle computes for one molecule: the species and its geometry."""

    mol_id: str
    z: np.ndarray  # [n] int64 atomic numbers
    pos: np.ndarray  # [n, 3] float64, Å
    charge: int  # net charge (e)
    multiplicity: int  # spin multiplicity 2S + 1


#: Graph columns a QC oracle reads (not the edges).
_GEOMETRY_COLUMNS = ["mol_id", "z", "pos", "charge", "multiplicity"]


def _geometry_columns(shard: Path) -> pa.Table:
    """The geometry columns of one shard, after checking its format version (an old shard without
    charge and multiplicity is an error that says to featurise again, not a neutral molecule)."""
    read_graph_metadata(shard)
    return pq.read_table(shard, columns=_GEOMETRY_COLUMNS)


def read_geometries(data: str | Path, mol_ids: Sequence[str] | np.ndarray) -> list[Geometry]:
    """(mol_id, z [n], pos [n, 3] in Å, charge, multiplicity) of ``mol_ids``, in that order, from the
    dataset's graph shards.

    Reads only the id, atom, coordinate, charge and multiplicity columns (not the edges).
    """
    shards = dataset_shards(data)
    wanted = pa.array(np.asarray(mol_ids, dtype=object).astype(str), pa.string())
    table = pa.concat_tables(
        [t.filter(pc.is_in(t["mol_id"], wanted)) for t in
         (_geometry_columns(s) for s in shards)]
    )  # fmt: skip
    found = {m: k for k, m in enumerate(table["mol_id"].to_pylist())}
    missing = [m for m in wanted.to_pylist() if m not in found]  # plain str
    if missing:
        raise ValueError(f"{data}: {len(missing)} molecules are not in the dataset, e.g. {missing[:3]}")
    z_col, pos_col = table["z"].to_pylist(), table["pos"].to_pylist()
    charge_col, mult_col = table["charge"].to_pylist(), table["multiplicity"].to_pylist()
    return [
        Geometry(
            m,
            np.asarray(z_col[found[m]], dtype=np.int64),
            np.asarray(pos_col[found[m]], dtype=np.float64).reshape(-1, 3),
            int(charge_col[found[m]]),
            int(mult_col[found[m]]),
        )
        for m in wanted.to_pylist()
    ]


def label_chunk(
    name: str,
    data: str | Path,
    mol_ids: Sequence[str] | np.ndarray,
    chunk: int,
    chunks: int,
    out: str | Path,
    failures: str | Path,
    settings: dict[str, Any] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Label chunk ``chunk`` of ``mol_ids`` with QC oracle ``name``: labels to ``out``, failures beside.

    ``settings`` are keyword arguments of the oracle's single-point function in :mod:`pipeline.label.qc`
    (e.g. ``{"basis": "def2-SVP", "threads": 2}`` for pyscf); an unknown key fails before any
    calculation. Each molecule is computed with its own charge and multiplicity from the graph shards.
    """
    from pipeline.label.qc import label_molecules

    if get_oracle(name).kind != "compute":
        raise ValueError(f"oracle {name!r} does not compute labels; label chunks are for pyscf and xtb")
    ids = chunk_of(mol_ids, chunk, chunks)
    geometries = read_geometries(data, ids)
    log.info("%s: chunk %d of %d, %d molecules", name, chunk, chunks, len(ids))
    labels, failed = label_molecules(
        name,
        ids,
        [g.z for g in geometries],
        [g.pos for g in geometries],
        settings or {},
        charges=[g.charge for g in geometries],
        multiplicities=[g.multiplicity for g in geometries],
    )
    labels_table = pa.Table.from_pandas(labels, preserve_index=False)
    failed_table = failures_table(failed)
    write_table(failed_table, failures)
    write_table(labels_table, out)
    log.info("%s: chunk %d: %d labelled, %d failed", name, chunk, len(labels), len(failed))
    return labels_table, failed_table


def in_request_order(labels: pd.DataFrame, wanted: np.ndarray) -> pd.DataFrame:
    """``labels`` rows sorted as their mol_ids come in ``wanted`` (the request), index reset."""
    order = {m: k for k, m in enumerate(wanted)}
    return labels.sort_values("mol_id", key=lambda ids: ids.map(order), ignore_index=True)


class LabelChunk(NamedTuple):
    """What one label_chunk job wrote: its labels and its failures (two files, both given)."""

    labels: Path
    failures: Path


def read_parts(
    parts: Sequence[LabelChunk], mol_ids: Sequence[str] | np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join label chunks (each its labels and its failures file): labels and failures.

    Every molecule of ``mol_ids`` must be in exactly one of them (labelled or failed): a chunk made for
    another set of molecules is an error, not a silent gap.
    """
    labels, failed = [], []
    for part in parts:
        labels.append(pq.read_table(part.labels).to_pandas())
        failed.append(pq.read_table(part.failures).to_pandas())
    labels_df = pd.concat(labels, ignore_index=True) if labels else pd.DataFrame({"mol_id": []})
    failed_df = pd.concat(failed, ignore_index=True) if failed else failures_table().to_pandas()
    done = np.concatenate([labels_df.mol_id.to_numpy(object), failed_df.mol_id.to_numpy(object)])
    wanted = np.asarray(mol_ids, dtype=object).astype(str)
    missing = np.setdiff1d(wanted, done.astype(str)).tolist()
    extra = np.setdiff1d(done.astype(str), wanted).tolist()
    if missing or extra or len(done) != len(wanted):
        raise ValueError(
            f"label chunks {', '.join(str(p.labels) for p in parts)}: they hold {len(done)} molecules for "
            f"{len(wanted)} requested ({len(missing)} missing, e.g. {missing[:3]}; {len(extra)} "
            f"not requested, e.g. {extra[:3]}); delete them to recompute"
        )
    return in_request_order(labels_df, wanted), failed_df
