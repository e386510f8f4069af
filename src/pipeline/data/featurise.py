"""Featurisation: molecules from any source -> Parquet graph shards, answer key, rejects, manifest.

The work is split the same way whether one process does it all or Snakemake runs one job per shard:

* :func:`featurise_shard` lists the inputs (cheap), takes the seeded ``limit`` subset, rejects
  duplicate ids, builds and checks the molecules of one contiguous slice of that list, computes
  their edges and writes the graph shard plus its answer-key and reject parts (:class:`ShardFiles`);
* :func:`merge_parts` joins the parts into the answer key, the rejects and the manifest
  (:class:`DatasetFiles`), which names each graph shard relative to its own folder;
* :func:`featurise` runs every shard then the merge, in one process, laying the dataset folder out
  as the workflow does (``graphs/shard-K.parquet``, ``parts/``, ``answer_key.parquet``, ...).

Edges are every ordered pair (i, j), i != j, closer than the cutoff, computed for all molecules of
one size at once as a batched distance tensor: no per-molecule or per-atom Python.

Each molecule's net charge and spin multiplicity go into the graph shards with it (the sources say
where they come from; where a source does not state them: neutral, and the lowest multiplicity the
electron count allows). They are what the quantum-chemistry oracles compute; the model does not see
them. A charge or multiplicity the electron count cannot have is a reject, as is a record of several
fragments under ``fragments: reject`` (:data:`pipeline.data.sources.base.FRAGMENT_POLICIES`).

Each molecule's bonds (its 2D graph) go into the shards too: as its source gives them (smiles, sdf), or
perceived from its geometry and charge (:func:`pipeline.data.sources.bonds.complete_bonds`). A molecule
whose bonds cannot be perceived is kept with its 3D graph only (``has_bonds`` false, named in a
warning, the shard's summary and the manifest) or rejected, as the dataset's ``bonds.missing`` says.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from pipeline import __version__
from pipeline.config import digest
from pipeline.config.digest import file_sha256
from pipeline.config.network import LARGEST_Z
from pipeline.config.settings import (
    DEFAULT_DUPLICATES,
    DEFAULT_MISSING_BONDS,
    DUPLICATE_POLICIES,
    MIN_ATOM_DISTANCE,
    MISSING_BOND_POLICIES,
)
from pipeline.config.units import plausible_ranges
from pipeline.data.duplicates import DISTANCE_TOLERANCE, find_duplicates
from pipeline.data.sources import get_source
from pipeline.data.sources.base import (
    DEFAULT_FRAGMENTS,
    FRAGMENT_POLICIES,
    Catalogue,
    Molecules,
    Reject,
    Source,
)
from pipeline.data.sources.bonds import complete_bonds
from pipeline.data.sources.records import symbols_of
from pipeline.data.store import (
    FORMAT_VERSION,
    GRAPH_SCHEMA,
    REJECT_SCHEMA,
    graph_metadata,
    write_json,
    write_table,
)
from pipeline.data.values import value_problems

log = logging.getLogger(__name__)

#: Pairs per batched distance block (bounds the memory of the edge computation to ~200 MB).
_PAIRS_PER_BLOCK = 4_000_000
#: Charge and multiplicity are stored as int16.
_INT16_MAX = 32767
#: Largest coordinate magnitude (Å) a molecule may have. Shards store coordinates as float32, which
#: overflows to inf above 3.4e38 and, at 1e4 Å, still keeps 0.001 Å (its spacing there is 0.001 Å):
#: farther out the geometry would be stored wrong without a word.
MAX_COORDINATE = 1e4


class FeaturiseError(RuntimeError):
    """Featurisation cannot go on (e.g. no valid molecule at all); the message names the input."""


@dataclass
class FeaturiseSettings:
    """Everything that decides the content of a featurised dataset (recorded in every part)."""

    source: str
    inputs: list[str] = field(default_factory=list)
    cutoff: float = 30.0
    limit: int | None = None
    seed: int = 0
    num_shards: int = 1
    rbf_count: int = 300
    #: Several disconnected fragments in one record (a salt, a hydrate): "largest" keeps the largest
    #: (organic first), "reject" rejects the record (smiles and sdf; pipeline.data.sources.base).
    fragments: str = DEFAULT_FRAGMENTS
    #: The dataset's ``oracle.ranges`` (property -> [low, high], None: unchecked) over
    #: :data:`pipeline.config.units.PLAUSIBLE_RANGES`: a molecule whose own value lies outside is a reject.
    ranges: dict[str, list[float] | None] = field(default_factory=dict)
    #: The same molecule under two ids (pipeline.data.duplicates): "reject" the later ones, or "keep".
    duplicates: str = DEFAULT_DUPLICATES
    #: A molecule whose bonds cannot be perceived from its geometry (the dataset's ``bonds.missing``):
    #: "keep" it without a 2D graph (``has_bonds`` false), or "reject" it.
    missing_bonds: str = DEFAULT_MISSING_BONDS

    def rbf(self) -> dict[str, float]:
        """Gaussian RBF spec: ``count`` centres ``start + k * width`` from 0 up to the cutoff."""
        width = self.cutoff / self.rbf_count
        return {"start": 0.0, "stop": self.cutoff, "count": self.rbf_count, "width": width}

    def validate(self) -> None:
        if not self.cutoff > MIN_ATOM_DISTANCE:
            raise ValueError(f"cutoff must be > {MIN_ATOM_DISTANCE} Å, got {self.cutoff}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be a positive number of molecules, got {self.limit}")
        if self.num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {self.num_shards}")
        if self.rbf_count < 1:
            raise ValueError(f"rbf_count must be >= 1, got {self.rbf_count}")
        if self.fragments not in FRAGMENT_POLICIES:
            raise ValueError(f"fragments must be one of {list(FRAGMENT_POLICIES)}, got {self.fragments!r}")
        plausible_ranges(list(self.ranges), self.ranges)  # a malformed range, named
        if self.duplicates not in DUPLICATE_POLICIES:
            raise ValueError(f"duplicates must be one of {list(DUPLICATE_POLICIES)}, got {self.duplicates!r}")
        if self.missing_bonds not in MISSING_BOND_POLICIES:
            raise ValueError(
                f"missing_bonds must be one of {list(MISSING_BOND_POLICIES)}, got {self.missing_bonds!r}"
            )


# --------------------------------------------------------------------------------------------------
# Files. The stages are given every file they read or write (the workflow passes its rules' input
# and output); only the one-process :func:`featurise` lays a dataset folder out itself, in the layout
# the workflow's rules use (pipeline.plan.paths).


@dataclass(frozen=True)
class ShardFiles:
    """What one shard job writes: the graph shard, its answer-key and reject parts, its summary."""

    graphs: Path
    answer_key: Path
    rejects: Path
    summary: Path

    @classmethod
    def in_folder(cls, out: Path, k: int) -> ShardFiles:
        """Shard ``k``'s files in dataset folder ``out`` (graphs/shard-K.parquet, parts/shard-K.*)."""
        out, name = Path(out), f"shard-{k:05d}"
        return cls(
            graphs=out / "graphs" / f"{name}.parquet",
            answer_key=out / "parts" / f"{name}.answer_key.parquet",
            rejects=out / "parts" / f"{name}.rejects.parquet",
            summary=out / "parts" / f"{name}.json",
        )


@dataclass(frozen=True)
class DatasetFiles:
    """What the merge writes: the answer key, the rejects and the manifest (the dataset folder is the
    manifest's; the manifest names the graph shards relative to it)."""

    answer_key: Path
    rejects: Path
    manifest: Path

    @classmethod
    def in_folder(cls, out: Path) -> DatasetFiles:
        out = Path(out)
        return cls(out / "answer_key.parquet", out / "rejects.parquet", out / "manifest.json")


# --------------------------------------------------------------------------------------------------
# Geometry


@dataclass
class Edges:
    """Edges of packed molecules: molecule m owns entries ``ptr[m]:ptr[m + 1]``."""

    src: np.ndarray  # [E] int32, atom index local to its molecule
    dst: np.ndarray  # [E] int32
    dist: np.ndarray  # [E] float32, Å
    ptr: np.ndarray  # [N + 1] int64
    closest: np.ndarray  # [N] float64: smallest interatomic distance (inf for one atom)
    closest_pair: np.ndarray  # [N, 2] int64: the atoms at that distance (-1 for one atom)

    def take(self, keep: np.ndarray) -> Edges:
        """The edges of the molecules selected by boolean mask ``keep`` ([N])."""
        edge_keep = np.repeat(keep, np.diff(self.ptr))
        return Edges(
            src=self.src[edge_keep],
            dst=self.dst[edge_keep],
            dist=self.dist[edge_keep],
            ptr=np.concatenate([[0], np.cumsum(np.diff(self.ptr)[keep])]),
            closest=self.closest[keep],
            closest_pair=self.closest_pair[keep],
        )


def compute_edges(n_atoms: np.ndarray, pos: np.ndarray, cutoff: float) -> Edges:
    """All ordered atom pairs closer than ``cutoff`` (Å) within each molecule, row-major per molecule.

    Args:
        n_atoms: [N] atoms per molecule.
        pos: [A, 3] coordinates in Å, molecules concatenated in order (A = n_atoms.sum()).
        cutoff: edge cutoff in Å (strict: a pair at exactly the cutoff is no edge).

    Molecules of equal size are processed together as one [B, n, n] distance tensor, so the cost is a
    few tensor operations per distinct molecule size, not per molecule.
    """
    n_atoms = np.asarray(n_atoms, dtype=np.int64)
    n_mol = len(n_atoms)
    atom_ptr = np.concatenate([[0], np.cumsum(n_atoms)])
    pos_t = torch.from_numpy(np.ascontiguousarray(pos, dtype=np.float64))
    counts = np.zeros(n_mol, dtype=np.int64)
    closest = np.full(n_mol, np.inf)
    closest_pair = np.full((n_mol, 2), -1, dtype=np.int64)
    blocks: list[tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    for n in np.unique(n_atoms):
        members = np.flatnonzero(n_atoms == n)
        if n < 2:
            continue
        per_block = max(1, _PAIRS_PER_BLOCK // int(n * n))
        offdiag = ~torch.eye(int(n), dtype=torch.bool)
        for start in range(0, len(members), per_block):
            mols = members[start : start + per_block]
            # [B, n] atom indices -> [B, n, 3] coordinates -> [B, n, n] distances
            atoms = torch.from_numpy(atom_ptr[mols][:, None] + np.arange(n)[None, :])
            xyz = pos_t[atoms]
            d = torch.linalg.vector_norm(xyz[:, :, None, :] - xyz[:, None, :, :], dim=-1)
            masked = d.masked_fill(~offdiag, math.inf).flatten(1)
            best, arg = masked.min(dim=1)
            closest[mols] = best.numpy()
            closest_pair[mols] = np.stack([arg.numpy() // n, arg.numpy() % n], axis=1)
            edge = (masked < cutoff).view(-1, int(n), int(n))
            b, i, j = edge.nonzero(as_tuple=True)  # sorted by molecule, then i, then j
            counts[mols] = edge.sum(dim=(1, 2)).numpy()
            blocks.append((mols, i.to(torch.int32), j.to(torch.int32), d[b, i, j].to(torch.float32)))

    ptr = np.concatenate([[0], np.cumsum(counts)])
    src = np.empty(ptr[-1], dtype=np.int32)
    dst = np.empty(ptr[-1], dtype=np.int32)
    dist = np.empty(ptr[-1], dtype=np.float32)
    for mols, i, j, d in blocks:
        # Edges of a block are grouped by molecule; place each group at its molecule's offset.
        block_counts = counts[mols]
        block_ptr = np.concatenate([[0], np.cumsum(block_counts)])
        target = np.repeat(ptr[mols] - block_ptr[:-1], block_counts) + np.arange(block_ptr[-1])
        src[target], dst[target], dist[target] = i.numpy(), j.numpy(), d.numpy()
    return Edges(src=src, dst=dst, dist=dist, ptr=ptr, closest=closest, closest_pair=closest_pair)


def check_molecules(mols: Molecules) -> tuple[np.ndarray, list[Reject]]:
    """Checks every source shares: atom count, atomic numbers (an element, and one the network can
    embed: 1..:data:`~pipeline.config.network.LARGEST_Z`), finite coordinates within
    ±:data:`MAX_COORDINATE` Å, and a charge and
    stated multiplicity the electron count can have (electrons left; 2S = multiplicity - 1 of the
    same parity as the electron count, and no more unpaired electrons than electrons).

    Returns a boolean mask of molecules that pass and a reject for each one that does not.
    (Too-close atoms are found during the edge computation, see :func:`graph_table`.)
    """
    atom_mol = np.repeat(np.arange(len(mols)), mols.n_atoms)
    bad_z = np.zeros(len(mols), dtype=bool)
    bad_z[atom_mol[(mols.z < 1) | (mols.z > LARGEST_Z)]] = True
    bad_pos = np.zeros(len(mols), dtype=bool)
    bad_pos[atom_mol[~np.isfinite(mols.pos).all(axis=1)]] = True
    far = np.zeros(len(mols), dtype=bool)
    far[atom_mol[~(np.abs(mols.pos) <= MAX_COORDINATE).all(axis=1)]] = True
    empty = mols.n_atoms < 1
    electrons = mols.n_electrons()
    stated = mols.multiplicity > 0
    unpaired = mols.multiplicity - 1
    bad_charge = (electrons < 1) | (np.abs(mols.charge) > _INT16_MAX)
    bad_spin = stated & (((unpaired - electrons) % 2 != 0) | (unpaired > electrons) | (unpaired > _INT16_MAX))
    bad = bad_z | bad_pos | far | empty | bad_charge | bad_spin
    rejects = []
    ptr = mols.atom_ptr
    for m in np.flatnonzero(bad):
        if empty[m]:
            reason = "molecule has no atoms"
        elif bad_z[m]:
            z = mols.z[ptr[m] : ptr[m + 1]]
            first = int(z[(z < 1) | (z > LARGEST_Z)][0])
            symbol = symbols_of([first])[0]
            reason = (
                f"unknown element: atomic number {first}"
                if first < 1 or symbol.startswith("#")
                else f"element {symbol} (atomic number {first}) is one the network cannot embed: it "
                f"learns elements 1 to {LARGEST_Z} ({symbols_of([LARGEST_Z])[0]}) only"
            )
        elif bad_pos[m]:
            atom = int(np.flatnonzero(~np.isfinite(mols.pos[ptr[m] : ptr[m + 1]]).all(axis=1))[0])
            reason = f"NaN or infinite coordinate (atom {atom})"
        elif far[m]:
            pos = mols.pos[ptr[m] : ptr[m + 1]]
            atom = int(np.flatnonzero(~(np.abs(pos) <= MAX_COORDINATE).all(axis=1))[0])
            reason = (
                f"coordinate {np.abs(pos[atom]).max():g} Å (atom {atom}) is beyond ±{MAX_COORDINATE:g} Å, "
                "where the shards' float32 would not keep the geometry (overflow to inf above 3.4e38); "
                "a coordinate in the wrong unit, or a typing error?"
            )
        elif bad_charge[m]:
            reason = f"charge {int(mols.charge[m]):+d} leaves {int(electrons[m])} electrons"
        else:
            reason = (
                f"multiplicity {int(mols.multiplicity[m])} is impossible with {int(electrons[m])} "
                f"electrons (charge {int(mols.charge[m]):+d}): 2S = multiplicity - 1 must have the "
                "parity of the electron count; check the charge and multiplicity the input states"
            )
        rejects.append(Reject(str(mols.origin[m]), int(mols.index[m]), str(mols.mol_id[m]), reason))
    return ~bad, rejects


def check_properties(
    mols: Molecules, ranges: dict[str, list[float] | None] | None = None
) -> tuple[np.ndarray, list[Reject]]:
    """The dataset's own values: a value that is infinite, or outside its property's plausible range
    (:func:`pipeline.config.units.plausible_ranges`: the dataset's ``oracle.ranges`` over the
    defaults), makes its molecule a reject naming the property, the value and the range, as a lab's
    or an oracle's label would be refused. NaN is a missing value, not a bad one.

    Returns a boolean mask of molecules that pass and a reject for each one that does not.
    """
    columns = list(mols.properties.columns)
    problems = value_problems(mols.properties, columns, plausible_ranges(columns, ranges))
    bad = np.array([bool(p) for p in problems], dtype=bool)
    rejects = [
        Reject(str(mols.origin[m]), int(mols.index[m]), str(mols.mol_id[m]), "; ".join(problems[m]))
        for m in np.flatnonzero(bad)
    ]
    return ~bad, rejects


def graph_table(
    mols: Molecules, cutoff: float, rbf: dict[str, float], missing_bonds: str = DEFAULT_MISSING_BONDS
) -> tuple[pa.Table, Molecules, list[Reject]]:
    """The Parquet graph table of ``mols``; molecules with two atoms closer than 0.1 Å are rejected.

    The bonds a molecule's source did not give are perceived from its geometry
    (:func:`~pipeline.data.sources.bonds.complete_bonds`); where they cannot be, ``missing_bonds``
    "keep" keeps the molecule without them (``has_bonds`` false; a warning names it) and "reject"
    rejects it.
    """
    edges = compute_edges(mols.n_atoms, mols.pos, cutoff)
    too_close = edges.closest < MIN_ATOM_DISTANCE
    rejects = [
        Reject(
            str(mols.origin[m]),
            int(mols.index[m]),
            str(mols.mol_id[m]),
            f"atoms {edges.closest_pair[m, 0]} and {edges.closest_pair[m, 1]} are "
            f"{edges.closest[m]:.3f} Å apart (closer than {MIN_ATOM_DISTANCE} Å)",
        )
        for m in np.flatnonzero(too_close)
    ]
    if too_close.any():
        mols, edges = mols.take(~too_close), edges.take(~too_close)
    mols, problems = complete_bonds(mols)
    if problems and missing_bonds == "reject":
        for m, problem in problems.items():
            reason = f"{problem}; bonds.missing: keep keeps such a molecule without its 2D graph"
            rejects.append(Reject(str(mols.origin[m]), int(mols.index[m]), str(mols.mol_id[m]), reason))
        keep = np.ones(len(mols), dtype=bool)
        keep[list(problems)] = False
        mols, edges = mols.take(keep), edges.take(keep)
    elif problems:
        for m, problem in problems.items():
            log.warning("%s (%s, index %d): %s; kept without its 2D graph (bonds.missing: keep)",
                        mols.mol_id[m], mols.origin[m], mols.index[m], problem)  # fmt: skip
    bond_off = pa.array(mols.bond_ptr.astype(np.int32))
    atom_off = pa.array(mols.atom_ptr.astype(np.int32))
    edge_off = pa.array(edges.ptr.astype(np.int32))
    xyz = pa.FixedSizeListArray.from_arrays(pa.array(mols.pos.astype(np.float32).ravel()), 3)
    table = pa.Table.from_arrays(
        [
            pa.array(mols.mol_id.astype(str), pa.string()),
            pa.array(mols.n_atoms.astype(np.int32)),
            pa.ListArray.from_arrays(atom_off, pa.array(mols.z.astype(np.int8))),
            pa.ListArray.from_arrays(atom_off, xyz),
            pa.ListArray.from_arrays(edge_off, pa.array(edges.src)),
            pa.ListArray.from_arrays(edge_off, pa.array(edges.dst)),
            pa.ListArray.from_arrays(edge_off, pa.array(edges.dist)),
            pa.array(mols.charge.astype(np.int16)),
            pa.array(mols.spin_multiplicity().astype(np.int16)),
            pa.ListArray.from_arrays(bond_off, pa.array(mols.bonds[:, 0].astype(np.int32))),
            pa.ListArray.from_arrays(bond_off, pa.array(mols.bonds[:, 1].astype(np.int32))),
            pa.ListArray.from_arrays(bond_off, pa.array(mols.bonds[:, 2].astype(np.int8))),
            pa.array(mols.n_bonds >= 0),
        ],
        schema=GRAPH_SCHEMA.with_metadata(graph_metadata(cutoff, rbf)),
    )
    return table, mols, rejects


# --------------------------------------------------------------------------------------------------
# Shards

#: Columns of a shard's answer-key part that are not properties: each molecule's origin, index and
#: identity (Molecules.identity), which the merge reads to find and name duplicates.
ORIGIN, INDEX, IDENTITY = "__origin", "__index", "__identity"


def select_rows(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Catalogue rows to featurise: all, or a seeded subset of ``limit`` rows kept in input order."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def shard_rows(rows: np.ndarray, num_shards: int, k: int) -> np.ndarray:
    """Contiguous slice ``k`` of ``num_shards`` near-equal slices of ``rows``."""
    bounds = np.linspace(0, len(rows), num_shards + 1).round().astype(int)
    return rows[bounds[k] : bounds[k + 1]]


def _unkeepable_ids(entries: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, list[Reject]]:
    """Drop rows whose mol_id cannot be kept as given: empty, or holding a character that is not
    printable (a newline, a tab: the request files of the external oracle, a CSV or an extxyz comment
    line, would split or rewrite it)."""
    ids = entries.mol_id.iloc[rows].astype(str)
    bad = np.array([not (m and m.isprintable()) for m in ids], dtype=bool)
    rejects = [
        Reject(
            str(entries.origin.iat[r]),
            int(entries["index"].iat[r]),
            str(entries.mol_id.iat[r]),
            f"id {entries.mol_id.iat[r]!r} cannot be kept as given: it is empty or holds a newline, "
            "tab or other control character",
        )
        for r in rows[bad]
    ]
    return rows[~bad], rejects


def _duplicates(entries: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, list[Reject]]:
    """Drop rows whose mol_id appeared earlier (in input order); the first occurrence is kept."""
    sub = entries.iloc[rows]
    dup = sub.mol_id.duplicated(keep="first").to_numpy()
    first = sub[~dup].drop_duplicates("mol_id").set_index("mol_id")
    rejects = [
        Reject(
            str(r.origin),
            int(r.index),
            str(r.mol_id),
            f"duplicate mol_id {r.mol_id!r} (first seen in {first.origin[r.mol_id]} at index "
            f"{first['index'][r.mol_id]})",
        )
        for r in sub[dup].itertuples()
    ]
    return rows[~dup], rejects


def _rejects_table(rejects: Sequence[Reject]) -> pa.Table:
    return pa.Table.from_pylist([asdict(r) for r in rejects], schema=REJECT_SCHEMA)


@dataclass
class Plan:
    """What every shard of one featurisation agrees on: the listed inputs and the rows to build."""

    settings: FeaturiseSettings
    source: Source
    catalogue: Catalogue
    rows: np.ndarray  # catalogue rows to featurise, in input order, duplicates removed
    selected: int  # rows taken by the limit, before duplicates were removed
    rejects: list[Reject]  # input-level, unkeepable-id and duplicate-id rejects


def plan(settings: FeaturiseSettings) -> Plan:
    """List the inputs once and decide which molecules are featurised (seeded ``limit``, no duplicates)."""
    settings.validate()
    source = get_source(settings.source)
    if hasattr(source, "fragments"):  # sources whose records can hold several fragments
        source.fragments = settings.fragments
    catalogue = source.catalogue([Path(p) for p in settings.inputs])
    rows = select_rows(len(catalogue.entries), settings.limit, settings.seed)
    kept, id_rejects = _unkeepable_ids(catalogue.entries, rows)
    unique_rows, dup_rejects = _duplicates(catalogue.entries, kept)
    rejects = list(catalogue.rejects) + id_rejects + dup_rejects
    return Plan(settings, source, catalogue, unique_rows, len(rows), rejects)


def featurise_shard(
    settings: FeaturiseSettings,
    k: int,
    files: ShardFiles,
    the_plan: Plan | None = None,
    inputs_sha256: str | None = None,
) -> dict:
    """Featurise shard ``k`` of ``settings.num_shards`` into ``files``; returns the shard's summary.

    ``the_plan`` (from :func:`plan` with the same settings) saves listing the inputs again. The
    summary records the graph shard's path and SHA-256, which the merge checks and the manifest keeps.
    ``inputs_sha256``: the checksum the inputs must have (:func:`pipeline.config.digest.inputs_sha256`,
    with which the workflow planned the job); inputs changed since are refused.
    """
    if inputs_sha256 is not None and digest.inputs_sha256(settings.inputs) != inputs_sha256:
        raise FeaturiseError(
            f"{', '.join(settings.inputs)}: changed since this job was planned (a file edited, added "
            "or removed); run the workflow again to featurise them as they are now"
        )
    the_plan = the_plan or plan(settings)
    if not 0 <= k < settings.num_shards:
        raise ValueError(f"shard {k} out of range for num_shards={settings.num_shards}")
    # Input-level problems are the same for every shard: shard 0 reports them.
    rejects = list(the_plan.rejects) if k == 0 else []
    mine = shard_rows(the_plan.rows, settings.num_shards, k)
    mols, source_rejects = the_plan.source.materialise(the_plan.catalogue, mine, settings.seed)
    ok, check_rejects = check_molecules(mols)
    mols = mols.take(ok)
    plausible, value_rejects = check_properties(mols, settings.ranges)
    table, mols, geometry_rejects = graph_table(
        mols.take(plausible), settings.cutoff, settings.rbf(), settings.missing_bonds
    )
    rejects += source_rejects + check_rejects + value_rejects + geometry_rejects

    write_table(table, files.graphs, use_dictionary=["mol_id"])
    rows = {
        "mol_id": mols.mol_id.astype(str),
        # where each molecule came from and what it is: the merge finds duplicates by them (and
        # leaves these columns out of the answer key)
        ORIGIN: mols.origin.astype(str),
        INDEX: mols.index,
        IDENTITY: pd.array(mols.identity, dtype="string"),
    }
    answers = pa.Table.from_pandas(
        pd.concat([pd.DataFrame(rows), mols.properties], axis=1), preserve_index=False
    )
    write_table(answers, files.answer_key)
    write_table(_rejects_table(rejects), files.rejects)
    summary = {
        "shard": k,
        "settings": asdict(settings),
        "catalogue": int(len(the_plan.catalogue.entries)),
        "selected": int(the_plan.selected),
        "molecules": int(len(mols)),
        "atoms": int(mols.n_atoms.sum()),
        "edges": _n_edges(table),
        "rejected": len(rejects),
        "max_atoms": int(mols.n_atoms.max()) if len(mols) else 0,
        "charged": int(np.count_nonzero(mols.charge)),
        "open_shell": int(np.count_nonzero(mols.spin_multiplicity() > 1)),
        # kept without bonds: none could be perceived (bonds.missing: keep)
        "without_bonds": [str(m) for m in mols.mol_id[mols.n_bonds < 0]],
        "elements": sorted({int(v) for v in np.unique(mols.z)}),
        "targets": list(mols.properties.columns),
        "units": {t: the_plan.source.units.get(t, "as given") for t in mols.properties.columns},
        "graphs": str(files.graphs),
        "sha256": file_sha256(files.graphs),
    }
    write_json(summary, files.summary)
    log.info(
        "shard %d/%d: %d molecules, %d edges, %d rejected -> %s",
        k + 1,
        settings.num_shards,
        summary["molecules"],
        summary["edges"],
        len(rejects),
        files.graphs,
    )
    return summary


def _n_edges(table: pa.Table) -> int:
    return int(sum(len(chunk.values) for chunk in table["dist"].chunks))


def merge_parts(shards: Sequence[ShardFiles], out: DatasetFiles) -> dict:
    """Join the parts of every shard (``shards[k]`` is shard k) into ``out``'s answer key, rejects
    and manifest; returns the manifest."""
    summaries = []
    for k, files in enumerate(shards):
        for part in (files.summary, files.answer_key, files.rejects):
            if not Path(part).exists():
                raise FeaturiseError(f"shard {k} is not finished ({part} is missing)")
        summary = json.loads(Path(files.summary).read_text())
        if summary["shard"] != k:
            raise FeaturiseError(
                f"{files.summary}: the summary of shard {summary['shard']}, given as shard {k}"
            )
        summaries.append(summary)
    if not summaries:
        raise FeaturiseError(f"{out.manifest}: no shard to merge")
    settings = summaries[0]["settings"]
    for s, files in zip(summaries[1:], shards[1:], strict=True):
        if s["settings"] != settings:
            raise FeaturiseError(
                f"{files.summary}: shard {s['shard']} was featurised with other settings than shard 0 "
                f"({s['settings']} vs {settings}); featurise the dataset again"
            )
    if settings["num_shards"] != len(shards):
        raise FeaturiseError(
            f"{shards[0].summary}: the parts are for {settings['num_shards']} shards, not {len(shards)}"
        )
    folder = Path(out.manifest).parent
    for s, files in zip(summaries, shards, strict=True):
        shard = Path(files.graphs)
        if (
            Path(s["graphs"]).resolve() != shard.resolve()
            or not shard.exists()
            or file_sha256(shard) != s["sha256"]
        ):
            raise FeaturiseError(
                f"{shard}: missing, or not the shard its summary {files.summary} describes (changed "
                f"after featurisation); featurise shard {s['shard']} again"
            )

    rejects = pa.concat_tables([pq.read_table(files.rejects) for files in shards])
    write_table(rejects, out.rejects)
    n_molecules = sum(s["molecules"] for s in summaries)
    if n_molecules == 0:
        reasons = pd.Series(rejects["reason"].to_pylist()).value_counts().head(5)
        inputs = ", ".join(settings["inputs"]) or settings["source"]
        raise FeaturiseError(
            f"no valid molecule in {inputs}: all {rejects.num_rows} rejected (each with its reason in "
            f"{', '.join(str(files.rejects) for files in shards)}, which stay when the merge fails); "
            "most common reasons: " + "; ".join(f"{n} x {r}" for r, n in reasons.items())
        )
    answer_parts = [pq.read_table(files.answer_key) for files in shards]
    answers = pa.concat_tables(answer_parts, promote_options="permissive")
    duplicate_rejects, left_out, n_duplicates = _duplicate_molecules(
        shards, answers, settings.get("duplicates", DEFAULT_DUPLICATES)
    )
    if duplicate_rejects:
        rejects = pa.concat_tables([rejects, _rejects_table(duplicate_rejects)])
        write_table(rejects, out.rejects)
    answers = answers.drop_columns([c for c in (ORIGIN, INDEX, IDENTITY) if c in answers.column_names])
    if left_out:
        answers = answers.filter(pc.invert(pc.is_in(answers["mol_id"], pa.array(left_out, pa.string()))))
    write_table(answers, out.answer_key)

    targets = list(dict.fromkeys(t for s in summaries for t in s["targets"]))
    gone = set(left_out)
    without_bonds = [m for s in summaries for m in s.get("without_bonds", []) if m not in gone]
    units = {t: u for s in summaries for t, u in s["units"].items()}
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_by": f"pipeline {__version__}",
        "source": settings["source"],
        "inputs": settings["inputs"],
        "limit": settings["limit"],
        "seed": settings["seed"],
        "cutoff": settings["cutoff"],
        "fragments": settings.get("fragments", DEFAULT_FRAGMENTS),
        "rbf": FeaturiseSettings(**settings).rbf(),
        "targets": targets,
        "units": {"pos": "angstrom", "dist": "angstrom", **units},
        "counts": {
            "catalogue": summaries[0]["catalogue"],
            "selected": summaries[0]["selected"],
            "molecules": n_molecules - len(left_out),
            "rejected": rejects.num_rows,
            # the same molecule under another id (pipeline.data.duplicates): found, whether rejected
            # (duplicates.left_out: in the graph shards, but no dataset reader takes them) or kept
            "duplicates": n_duplicates,
            "atoms": sum(s["atoms"] for s in summaries),
            "edges": sum(s["edges"] for s in summaries),
            "max_atoms": max(s["max_atoms"] for s in summaries),
            "charged": sum(s.get("charged", 0) for s in summaries),  # net charge not 0
            "open_shell": sum(s.get("open_shell", 0) for s in summaries),  # multiplicity > 1
            "without_bonds": len(without_bonds),  # 2D-less: bonds.without
        },
        # molecules kept without bonds: none could be perceived from their geometry (has_bonds false)
        "bonds": {"missing": settings.get("missing_bonds", DEFAULT_MISSING_BONDS), "without": without_bonds},
        "duplicates": {"policy": settings.get("duplicates", DEFAULT_DUPLICATES), "left_out": left_out},
        "elements": sorted({z for s in summaries for z in s["elements"]}),
        "shards": [
            {
                "path": Path(os.path.relpath(files.graphs, folder)).as_posix(),
                "molecules": s["molecules"],
                "edges": s["edges"],
                "sha256": s["sha256"],
            }
            for s, files in zip(summaries, shards, strict=True)
        ],
    }
    write_json(manifest, out.manifest)
    log.info(
        "%s: %d molecules in %d shards, %d rejected (%s)",
        folder,
        n_molecules,
        len(shards),
        rejects.num_rows,
        out.rejects,
    )
    return manifest


def _duplicate_molecules(
    shards: Sequence[ShardFiles], answers: pa.Table, policy: str
) -> tuple[list[Reject], list[str], int]:
    """The same molecule under another id, across all shards (pipeline.data.duplicates): with policy
    "reject", a reject naming the first for each later one and the ids left out of the dataset
    (with "keep", neither); and how many were found. Parts of an older pipeline, without the
    molecules' origins, are not searched (a warning)."""
    if any(c not in answers.column_names for c in (ORIGIN, INDEX, IDENTITY)):
        log.warning("%s: parts without the molecules' origins (an older pipeline): duplicates not searched",
                    shards[0].answer_key)  # fmt: skip
        return [], [], 0
    graphs = pa.concat_tables([pq.read_table(f.graphs, columns=["mol_id", "z", "pos"]) for f in shards])
    z_col, pos_col = graphs["z"].combine_chunks(), graphs["pos"].combine_chunks()
    offsets = z_col.offsets.to_numpy()
    z_all = z_col.values.to_numpy().astype(np.int64)
    pos_all = pos_col.values.values.to_numpy().reshape(-1, 3).astype(np.float64)
    z = [z_all[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    pos = [pos_all[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    ids = answers["mol_id"].to_pylist()
    if ids != graphs["mol_id"].to_pylist():
        raise FeaturiseError(f"{shards[0].answer_key}: the answer-key parts do not follow the graph shards")
    identity, origin, index = (answers[c].to_pylist() for c in (IDENTITY, ORIGIN, INDEX))
    found = find_duplicates(z, pos, identity)
    if policy == "keep":
        if found:
            log.info("%d duplicates found, kept (duplicates: keep)", len(found))
        return [], [], len(found)
    rejects = []
    for late, early in found.items():
        how = (
            f"the same canonical SMILES {identity[late]!r}"
            if identity[late] is not None
            else f"the same elements and interatomic distances within {DISTANCE_TOLERANCE} Å (its atoms "
            "in another order, or its mirror image)"
        )
        rejects.append(
            Reject(
                origin[late], int(index[late]), ids[late],
                f"duplicate of {ids[early]!r} ({origin[early]} at index {index[early]}): {how}; the "
                "first is kept (the dataset setting duplicates: keep keeps both)",
            )
        )  # fmt: skip
    log.info("%d duplicates left out", len(found))
    return rejects, [ids[late] for late in found], len(found)


def featurise(settings: FeaturiseSettings, out: Path, shard_size: int | None = None) -> dict:
    """Featurise everything into ``out`` in this process; returns the manifest.

    With ``shard_size``, the number of shards is chosen so that each holds about that many molecules.
    """
    the_plan = plan(settings)
    if shard_size is not None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        settings.num_shards = max(1, math.ceil(len(the_plan.rows) / shard_size))
    shards = [ShardFiles.in_folder(out, k) for k in range(settings.num_shards)]
    for k, files in enumerate(shards):
        featurise_shard(settings, k, files, the_plan)
    return merge_parts(shards, DatasetFiles.in_folder(out))
