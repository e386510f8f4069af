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

from pipeline.config.digest import file_sha256

#: Version of the graph Parquet layout; bump when columns or their meaning change.
#: 2: ``charge`` and ``multiplicity`` columns (version 1 had neither: every molecule was taken as neutral).
#: 3: the bonds, ``bond_src``/``bond_dst``/``bond_type`` and ``has_bonds`` (the 2D graph; version 2 had
#: only the 3D one).
FORMAT_VERSION = 3

#: What a shard of an older version lacks, for the message that refuses it.
_OLDER_FORMATS = {
    1: "version 1 has no charge or multiplicity of the molecules, nor their bonds",
    2: "version 2 has no bonds of the molecules, their 2D graph",
}

#: One row per molecule. Edges are all ordered pairs (i, j), i != j, closer than the cutoff, in
#: row-major order; indices are local to the molecule. Distances in Å. ``charge`` is the net charge
#: (e) and ``multiplicity`` the spin multiplicity 2S + 1 of the species: as the source states them,
#: else neutral and the lowest multiplicity the electron count allows (1 for an even count, 2 for an
#: odd one). Only the quantum-chemistry oracles read them; the model's input is ``z`` and the
#: geometry alone (no charge or spin feature).
#:
#: Bonds (the 2D graph; pipeline.data.sources.bonds): each bond once, ``bond_src < bond_dst``, local
#: atom indices in the order of ``z``, sorted; ``bond_type`` 1 single, 2 double, 3 triple, 4 aromatic
#: (RDKit's aromaticity, whatever Kekulé structure the input wrote), 0 other (dative, quadruple, ...).
#: ``has_bonds`` false: no bonds could be perceived from the geometry (the dataset setting
#: ``bonds.missing: keep``); the molecule has its 3D graph only, and empty bond lists. A single atom
#: has bonds (none).
GRAPH_SCHEMA = pa.schema(
    [
        pa.field("mol_id", pa.string(), nullable=False),
        pa.field("n_atoms", pa.int32(), nullable=False),
        pa.field("z", pa.list_(pa.int8()), nullable=False),
        pa.field("pos", pa.list_(pa.list_(pa.float32(), 3)), nullable=False),
        pa.field("edge_src", pa.list_(pa.int32()), nullable=False),
        pa.field("edge_dst", pa.list_(pa.int32()), nullable=False),
        pa.field("dist", pa.list_(pa.float32()), nullable=False),
        pa.field("charge", pa.int16(), nullable=False),
        pa.field("multiplicity", pa.int16(), nullable=False),
        pa.field("bond_src", pa.list_(pa.int32()), nullable=False),
        pa.field("bond_dst", pa.list_(pa.int32()), nullable=False),
        pa.field("bond_type", pa.list_(pa.int8()), nullable=False),
        pa.field("has_bonds", pa.bool_(), nullable=False),
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
        raise ValueError(
            f"{path}: graph format version {version}, this pipeline reads {FORMAT_VERSION}"
            + (f" ({_OLDER_FORMATS[version]})" if version in _OLDER_FORMATS else "")
            + f"; featurise the dataset again (delete {Path(path).parent.parent} and rerun)"
        )
    return {
        "format_version": version,
        "cutoff": float(meta[b"cutoff"]),
        "rbf": json.loads(meta[b"rbf"]),
    }


# --------------------------------------------------------------------------------------------------
# A featurised dataset's shards: the manifest names them, with their checksums


def read_manifest(data: str | os.PathLike) -> dict[str, Any]:
    """The ``manifest.json`` of a featurised dataset folder; the error says how to make one."""
    path = Path(data) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{data}: no manifest.json (featurise the dataset first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); delete {data} and featurise again") from err


def dataset_shards(data: str | os.PathLike, verify: bool = True) -> list[Path]:
    """The graph shards of a featurised dataset: those its manifest names, in the manifest's order.

    A ``graphs/shard-*.parquet`` the manifest does not name (left over from a larger shard count) is
    never read. With ``verify``, each shard's SHA-256 must equal the manifest's: a shard changed or
    damaged after featurisation is an error naming the file, not wrong numbers later.
    """
    data = Path(data)
    manifest = read_manifest(data)
    shards = manifest.get("shards") or []
    if not shards:
        raise ValueError(f"{data / 'manifest.json'}: lists no graph shards; featurise the dataset again")
    paths = []
    for entry in shards:
        path = data / entry["path"]
        if not path.exists():
            raise FileNotFoundError(f"{path}: named by {data / 'manifest.json'} but missing; featurise again")
        if verify:
            expected = entry.get("sha256")
            if expected is None:
                raise ValueError(
                    f"{data / 'manifest.json'}: no checksum for {entry['path']} (made by an older "
                    f"pipeline); delete {data} and featurise again"
                )
            actual = file_sha256(path)
            if actual != expected:
                raise ValueError(
                    f"{path}: its SHA-256 ({actual[:12]}...) is not the one {data / 'manifest.json'} "
                    f"records ({expected[:12]}...): the shard was changed or is damaged since it was "
                    f"featurised; delete {data} and featurise again"
                )
        paths.append(path)
    return paths
