"""Parquet and JSON I/O: the featurised graph schema and atomic writes.

Every file this project writes goes through :func:`atomic_path`: data lands in a temporary file in
the destination folder and is renamed into place only once complete, so a killed job never leaves a
half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Version of the graph Parquet layout; bump when columns or their meaning change.
FORMAT_VERSION = 1

#: One row per molecule. Edges are all ordered pairs (i, j), i != j, closer than the cutoff, in
#: row-major order; indices are local to the molecule. Distances in Å.
GRAPH_SCHEMA = pa.schema(
    [
        pa.field("mol_id", pa.string(), nullable=False),
        pa.field("n_atoms", pa.int32(), nullable=False),
        pa.field("z", pa.list_(pa.int8()), nullable=False),
        pa.field("pos", pa.list_(pa.list_(pa.float32(), 3)), nullable=False),
        pa.field("edge_src", pa.list_(pa.int32()), nullable=False),
        pa.field("edge_dst", pa.list_(pa.int32()), nullable=False),
        pa.field("dist", pa.list_(pa.float32()), nullable=False),
    ]
)

REJECT_SCHEMA = pa.schema(
    [
        pa.field("origin", pa.string()),  # input file, or the dataset name for packaged data
        pa.field("index", pa.int64()),  # position of the molecule in its origin (0-based)
        pa.field("mol_id", pa.string()),  # may be null when the id itself could not be read
        pa.field("reason", pa.string()),
    ]
)


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(table: pa.Table, path: str | os.PathLike, **kwargs: Any) -> None:
    """Write ``table`` to Parquet at ``path`` atomically (zstd-compressed unless told otherwise)."""
    kwargs.setdefault("compression", "zstd")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON at ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def graph_metadata(cutoff: float, rbf: dict[str, float]) -> dict[bytes, bytes]:
    """Schema metadata stored with every graph shard."""
    return {
        b"format_version": str(FORMAT_VERSION).encode(),
        b"cutoff": repr(float(cutoff)).encode(),
        b"rbf": json.dumps(rbf, sort_keys=True).encode(),
        b"units": b'{"pos": "angstrom", "dist": "angstrom"}',
    }


def read_graph_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Cutoff, RBF spec and format version of a graph shard, checking the version."""
    meta = pq.read_schema(path).metadata or {}
    if b"format_version" not in meta:
        raise ValueError(f"{path}: not a featurised graph shard (no format_version in its schema metadata)")
    version = int(meta[b"format_version"])
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: graph format version {version}, this pipeline reads {FORMAT_VERSION}")
    return {
        "format_version": version,
        "cutoff": float(meta[b"cutoff"]),
        "rbf": json.loads(meta[b"rbf"]),
    }
