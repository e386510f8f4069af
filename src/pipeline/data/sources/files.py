"""Molecules from structure files: xyz/extxyz, sdf/mol, ASE databases, and anything else ASE reads.

Every input is a file or a directory (every file in it with a known extension, sorted by name; the
other files of a directory, and its subfolders, are logged and listed as rejects, "skipped: ...").
Files are parsed whole in :meth:`FilesSource.catalogue` (reading structure files is I/O-bound and cheap
next to featurisation); :meth:`FilesSource.materialise` only gathers the requested rows.

A problem with one molecule never loses the others: each bad frame or record becomes a
:class:`~pipeline.data.sources.base.Reject` naming the file and the 0-based position of the molecule in it
(and its id, from the file or the automatic one), and a file that cannot be read at all becomes a
reject with index -1 (a binary file where text is expected: "not a text file (binary content)").
A periodic structure (``pbc`` true with a cell, as an extxyz ``Lattice`` gives by default) is a
reject: it is no molecule, and its cell would be dropped
(:func:`~pipeline.data.sources.records.periodic`). Coordinates are kept in Å as read; properties
(numeric extxyz info keys, calculator energies, numeric SDF tags, numeric ASE db key-value pairs) are
kept under the names the file gives them, in the units the file gives them.

Ids: a molecule's own (an ``id`` or ``mol_id`` info key, tag or key-value pair; an SDF title line),
else an automatic ``{file}-{position}``, where ``{file}`` is the file's stem (``mols.xyz`` frame 3:
``mols-3``). Where two input files share a stem, ``{file}`` is instead the path relative to their
common folder (``a/mols.xyz`` and ``b/mols.xyz``: ``a/mols-3``, ``b/mols-3``; ``mols.xyz`` and
``mols.sdf`` side by side: ``mols.xyz-3``, ``mols.sdf-3``), so molecules of different files never get
the same id, and ids of files whose names do not clash stay as they were.

Charge and spin (:attr:`Molecules.charge`, :attr:`Molecules.multiplicity`; never properties):

- extxyz and other ASE formats: info keys ``charge`` (net charge, a whole number) and
  ``multiplicity`` or ``spin`` (both read as the multiplicity 2S + 1, as OMol25/fairchem write
  ``spin``; a value the electron count cannot have is rejected); ASE db: the same key-value pairs.
  Neutral, and the lowest multiplicity, where the file does not say.
- sdf/mol: the formal charges of the atoms (atom block or ``M  CHG``) and radicals (``M  RAD``: one
  unpaired electron per radical electron).

Several fragments: an SDF record whose bonds make several disconnected fragments (a salt, a hydrate)
follows the dataset's ``fragments`` setting (:data:`~pipeline.data.sources.base.FRAGMENT_POLICIES`):
``largest`` keeps the largest (organic first; RDKit's ``LargestFragmentChooser``) with its own charge,
``reject`` rejects the record naming the fragments. A record without any bond, and every xyz, extxyz
or other bond-less format, has no connectivity to find fragments in: its atoms are taken as one
structure at the coordinates given (an ion pair or a cluster in such a file is computed whole, with
the charge the file states).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.sources.ase_formats import read_ase, read_db
from pipeline.data.sources.base import (
    DEFAULT_FRAGMENTS,
    FRAGMENT_POLICIES,
    AsGivenUnits,
    Catalogue,
    Molecules,
    Reject,
    expand_inputs,
    file_labels,
    not_text,
    split_suffix,
    unreadable,
)
from pipeline.data.sources.records import Collected
from pipeline.data.sources.sdf import read_sdf
from pipeline.data.sources.xyz import read_xyz

log = logging.getLogger(__name__)


XYZ_SUFFIXES = frozenset({".xyz", ".extxyz"})
SDF_SUFFIXES = frozenset({".sdf", ".sd", ".mol"})
DB_SUFFIXES = frozenset({".db"})
#: Other structure formats taken from a directory; any file named explicitly is tried with ASE.
ASE_SUFFIXES = frozenset({".traj", ".cif", ".pdb", ".gro", ".g96", ".cjson", ".poscar"})
KNOWN_SUFFIXES = XYZ_SUFFIXES | SDF_SUFFIXES | DB_SUFFIXES | ASE_SUFFIXES
#: Formats that are text files (checked for binary content before parsing); .db and .traj are binary.
TEXT_SUFFIXES = XYZ_SUFFIXES | SDF_SUFFIXES | frozenset({".cif", ".pdb", ".gro", ".g96", ".cjson", ".poscar"})


# ----------------------------------------------------------------------------------------------------
# ASE databases and every other format ASE reads


class FilesSource:
    """Molecules from structure files (xyz, extxyz, sdf, mol, ASE db, and any format ASE reads).

    ``fragments`` (one of :data:`~pipeline.data.sources.base.FRAGMENT_POLICIES`): what to do with an SDF
    record of several disconnected fragments (module doc).
    """

    name = "files"
    units: dict[str, str] = AsGivenUnits()

    def __init__(self, fragments: str = DEFAULT_FRAGMENTS) -> None:
        self.fragments = fragments

    def catalogue(self, inputs: Sequence[Path]) -> Catalogue:
        if self.fragments not in FRAGMENT_POLICIES:
            raise ValueError(f"fragments must be one of {FRAGMENT_POLICIES}, got {self.fragments!r}")
        files, rejects = expand_inputs(inputs, KNOWN_SUFFIXES)
        out = Collected(rejects=rejects)
        for path, label in zip(files, file_labels(files), strict=True):
            suffix, compression, _ = split_suffix(path)
            if path.stat().st_size == 0:
                out.reject(str(path), -1, None, "file is empty")
                continue
            problem = not_text(path, compression) if suffix in TEXT_SUFFIXES else None
            if problem is not None:
                out.reject(str(path), -1, None, problem)
                continue
            n_before, n_rejects_before = len(out.mol_id), len(out.rejects)
            try:
                if suffix in XYZ_SUFFIXES:
                    read_xyz(path, compression, label, out)
                elif suffix in SDF_SUFFIXES:
                    read_sdf(path, compression, label, out, self.fragments)
                elif suffix in DB_SUFFIXES and compression is None:
                    read_db(path, label, out)
                else:
                    read_ase(path, label, out)
            except Exception as error:
                out.truncate(n_before, n_rejects_before)
                out.reject(str(path), -1, None, unreadable(path, error))
                continue
            if len(out.mol_id) == n_before and len(out.rejects) == n_rejects_before:
                out.reject(str(path), -1, None, "file holds no molecules")
            log.info("%s: %d molecules", path, len(out.mol_id) - n_before)
        packed = Molecules.from_lists(
            out.mol_id,
            out.z,
            out.pos,
            out.props,
            out.origin,
            out.index,
            out.charge,
            out.multiplicity,
            bonds=out.bonds,
        )
        entries = pd.DataFrame(
            {"mol_id": packed.mol_id, "origin": packed.origin, "index": packed.index}
        ).astype({"index": np.int64})
        return Catalogue(entries=entries, payload=packed, rejects=out.rejects)

    def materialise(
        self, catalogue: Catalogue, rows: np.ndarray, seed: int
    ) -> tuple[Molecules, list[Reject]]:
        return catalogue.payload.take_rows(rows), []


__all__ = [
    "AsGivenUnits",
    "FilesSource",
    "expand_inputs",
    "file_labels",
    "not_text",
]
