"""The featurised graphs of a dataset packed in contiguous tensors, and batches gathered from them.

A :class:`GraphSet` holds every molecule of a dataset (or of a chosen subset of ids) as flat tensors
with offsets, like the Parquet list columns it is read from (zero-copy where Arrow allows). A batch of
any molecules is a handful of vectorised gathers (:meth:`GraphSet.batch`): no per-molecule Python and
no ``Batch.from_data_list`` in the training loop. On a GPU the whole set can live in device memory
(QM9 is about 0.5 GB) and batches are gathered there.

The model's input is the atoms and the geometry only: the shards' ``charge`` and ``multiplicity``
columns (what the quantum-chemistry oracles compute) are not loaded, so a cation and its neutral
parent at the same geometry look the same to the model. The bonds (the 2D graph) are loaded beside the
3D graph (:meth:`GraphSet.bonds` gathers a batch's); the 3D encoders do not read them. Shards of an
older format (version 1, no charge; version 2, no bonds) are refused with a message to featurise again
(:func:`pipeline.data.store.read_graph_metadata`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.data.store import dataset_shards, read_graph_metadata


@dataclass
class GraphBatch:
    """A batch of molecules in PyG's convention (one disjoint graph).

    Attributes:
        z: [a] int64 atomic numbers.
        pos: [a, 3] float32 coordinates (Å).
        batch: [a] int64 molecule (graph) index of each atom, 0..n_graphs-1.
        edge_index: [2, e] int64 source and target atom of each directed edge (batch-global indices).
        dist: [e] float32 edge length (Å).
        atom_ptr: [n_graphs + 1] int64 offsets of each molecule's atoms.
        index: [n_graphs] int64 positions of these molecules in their :class:`GraphSet`.
    """

    z: torch.Tensor
    pos: torch.Tensor
    batch: torch.Tensor
    edge_index: torch.Tensor
    dist: torch.Tensor
    atom_ptr: torch.Tensor
    index: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return len(self.index)


@dataclass
class BondBatch:
    """The bonds of a batch of molecules (their 2D graph), atoms numbered as in its :class:`GraphBatch`.

    Attributes:
        bond_index: [2, b] int64 the two atoms of each bond, once (first < second; batch-global).
        bond_type: [b] int64 code of :data:`pipeline.data.sources.bonds.BOND_TYPES` (1 single,
            2 double, 3 triple, 4 aromatic, 0 other).
        has_bonds: [n_graphs] bool: false for a molecule whose bonds could not be perceived (it has
            none here; its 2D graph is unknown, not empty).
    """

    bond_index: torch.Tensor
    bond_type: torch.Tensor
    has_bonds: torch.Tensor


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``arange(s, s + c)`` for every (s, c), vectorised."""
    total = int(counts.sum())
    offsets = torch.cumsum(counts, 0) - counts  # where each range begins in the output
    return torch.arange(total, device=starts.device) + torch.repeat_interleave(starts - offsets, counts)


@dataclass
class GraphSet:
    """Molecules packed in flat tensors; molecule m owns atoms ``atom_ptr[m]:atom_ptr[m+1]``, edges
    ``edge_ptr[m]:edge_ptr[m+1]`` and bonds ``bond_ptr[m]:bond_ptr[m+1]``; edge and bond endpoints are
    local to their molecule."""

    mol_id: np.ndarray  # [N] str (object), stays on the host
    z: torch.Tensor  # [A] int64
    pos: torch.Tensor  # [A, 3] float32
    atom_ptr: torch.Tensor  # [N + 1] int64
    edge_src: torch.Tensor  # [E] int32, local
    edge_dst: torch.Tensor  # [E] int32, local
    dist: torch.Tensor  # [E] float32
    edge_ptr: torch.Tensor  # [N + 1] int64
    bond_src: torch.Tensor  # [B] int32, local; each bond once, bond_src < bond_dst
    bond_dst: torch.Tensor  # [B] int32, local
    bond_type: torch.Tensor  # [B] int64, pipeline.data.sources.bonds.BOND_TYPES
    bond_ptr: torch.Tensor  # [N + 1] int64
    has_bonds: torch.Tensor  # [N] bool: false, no bonds could be perceived (and none are listed)
    cutoff: float
    rbf: dict

    def __len__(self) -> int:
        return len(self.mol_id)

    @property
    def n_atoms(self) -> torch.Tensor:
        return self.atom_ptr[1:] - self.atom_ptr[:-1]

    @property
    def device(self) -> torch.device:
        return self.z.device

    def to(self, device: torch.device | str) -> GraphSet:
        moved = {
            f.name: getattr(self, f.name).to(device)
            if isinstance(getattr(self, f.name), torch.Tensor)
            else getattr(self, f.name)
            for f in fields(self)
        }
        return GraphSet(**moved)

    def index_of(self, mol_ids: Sequence[str]) -> np.ndarray:
        """Positions of ``mol_ids`` in this set; an unknown id is an error naming it."""
        lookup = {m: i for i, m in enumerate(self.mol_id)}
        try:
            return np.array([lookup[m] for m in mol_ids], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"molecule {err.args[0]!r} is not in this graph set") from None

    def batch(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> GraphBatch:
        """Gather the molecules at ``index`` (positions in this set) into one :class:`GraphBatch`."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        atom_start, atom_count = self.atom_ptr[index], self.atom_ptr[index + 1] - self.atom_ptr[index]
        edge_start, edge_count = self.edge_ptr[index], self.edge_ptr[index + 1] - self.edge_ptr[index]
        atoms = _ranges(atom_start, atom_count)
        edges = _ranges(edge_start, edge_count)
        batch_ptr = torch.zeros(len(index) + 1, dtype=torch.long, device=self.device)
        torch.cumsum(atom_count, 0, out=batch_ptr[1:])
        # local endpoints + where the molecule's atoms start in the batch
        shift = torch.repeat_interleave(batch_ptr[:-1], edge_count)
        edge_index = torch.stack([self.edge_src[edges].long() + shift, self.edge_dst[edges].long() + shift])
        return GraphBatch(
            z=self.z[atoms],
            pos=self.pos[atoms],
            batch=torch.repeat_interleave(torch.arange(len(index), device=self.device), atom_count),
            edge_index=edge_index,
            dist=self.dist[edges],
            atom_ptr=batch_ptr,
            index=index,
        )

    def bonds(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> BondBatch:
        """The bonds of the molecules at ``index``, atoms numbered as in :meth:`batch` of ``index``."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        atom_count = self.atom_ptr[index + 1] - self.atom_ptr[index]
        bond_start, bond_count = self.bond_ptr[index], self.bond_ptr[index + 1] - self.bond_ptr[index]
        bonds = _ranges(bond_start, bond_count)
        batch_ptr = torch.zeros(len(index) + 1, dtype=torch.long, device=self.device)
        torch.cumsum(atom_count, 0, out=batch_ptr[1:])
        shift = torch.repeat_interleave(batch_ptr[:-1], bond_count)
        src, dst = self.bond_src[bonds].long() + shift, self.bond_dst[bonds].long() + shift
        return BondBatch(
            bond_index=torch.stack([src, dst]),
            bond_type=self.bond_type[bonds],
            has_bonds=self.has_bonds[index],
        )

    def subset(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> GraphSet:
        """A new set with only the molecules at ``index``, in that order."""
        b = self.batch(index)
        edge_count = self.edge_ptr[b.index + 1] - self.edge_ptr[b.index]
        edge_ptr = torch.zeros(len(b.index) + 1, dtype=torch.long, device=self.device)
        torch.cumsum(edge_count, 0, out=edge_ptr[1:])
        local_shift = torch.repeat_interleave(b.atom_ptr[:-1], edge_count)
        bonds = self.bonds(b.index)
        bond_count = self.bond_ptr[b.index + 1] - self.bond_ptr[b.index]
        bond_ptr = torch.zeros(len(b.index) + 1, dtype=torch.long, device=self.device)
        torch.cumsum(bond_count, 0, out=bond_ptr[1:])
        bond_shift = torch.repeat_interleave(b.atom_ptr[:-1], bond_count)
        return GraphSet(
            mol_id=self.mol_id[b.index.cpu().numpy()],
            z=b.z,
            pos=b.pos,
            atom_ptr=b.atom_ptr,
            edge_src=(b.edge_index[0] - local_shift).to(torch.int32),
            edge_dst=(b.edge_index[1] - local_shift).to(torch.int32),
            dist=b.dist,
            edge_ptr=edge_ptr,
            bond_src=(bonds.bond_index[0] - bond_shift).to(torch.int32),
            bond_dst=(bonds.bond_index[1] - bond_shift).to(torch.int32),
            bond_type=bonds.bond_type,
            bond_ptr=bond_ptr,
            has_bonds=bonds.has_bonds,
            cutoff=self.cutoff,
            rbf=self.rbf,
        )


def _offsets(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Offsets ([n + 1] int64, starting at 0) and flat values of a list column."""
    array = column.combine_chunks()
    offsets = array.offsets.to_numpy().astype(np.int64)
    values = array.values.slice(offsets[0], offsets[-1] - offsets[0])
    return offsets - offsets[0], values


def _tensor(values: pa.Array) -> torch.Tensor:
    """A writable tensor copy of an Arrow array (Arrow's zero-copy views are read-only)."""
    return torch.from_numpy(values.to_numpy(zero_copy_only=False).copy())


def load_graphs(data: str | Path, mol_ids: Sequence[str] | None = None) -> GraphSet:
    """Read the graph shards of a featurised dataset folder into one :class:`GraphSet` (on the CPU).

    With ``mol_ids``, only those molecules, in that order; an id that is not in the dataset is an error.
    """
    shards = dataset_shards(data)
    metas = [read_graph_metadata(s) for s in shards]
    if any(m != metas[0] for m in metas[1:]):
        raise ValueError(f"{data}: shards were featurised with different cutoffs or RBF specs")
    table = pa.concat_tables([pq.read_table(s) for s in shards])
    atom_ptr, z = _offsets(table["z"])
    _, pos = _offsets(table["pos"])
    edge_ptr, src = _offsets(table["edge_src"])
    _, dst = _offsets(table["edge_dst"])
    _, dist = _offsets(table["dist"])
    bond_ptr, bond_src = _offsets(table["bond_src"])
    _, bond_dst = _offsets(table["bond_dst"])
    _, bond_type = _offsets(table["bond_type"])
    graphs = GraphSet(
        mol_id=table["mol_id"].to_numpy().astype(object),
        z=torch.from_numpy(z.to_numpy().astype(np.int64)),
        pos=_tensor(pos.flatten()).reshape(-1, 3),  # flatten() honours the slice, .values would not
        atom_ptr=torch.from_numpy(atom_ptr),
        edge_src=_tensor(src),
        edge_dst=_tensor(dst),
        dist=_tensor(dist),
        edge_ptr=torch.from_numpy(edge_ptr),
        bond_src=_tensor(bond_src),
        bond_dst=_tensor(bond_dst),
        bond_type=torch.from_numpy(bond_type.to_numpy(zero_copy_only=False).astype(np.int64)),
        bond_ptr=torch.from_numpy(bond_ptr),
        has_bonds=torch.from_numpy(table["has_bonds"].to_numpy().copy()),
        cutoff=metas[0]["cutoff"],
        rbf=metas[0]["rbf"],
    )
    if mol_ids is not None:
        graphs = graphs.subset(graphs.index_of(mol_ids))
    return graphs
