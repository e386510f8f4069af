"""Bonds of a molecule, for its 2D graph: read from the RDKit molecule a geometry came from (smiles,
sdf), or perceived from the geometry (qm9 with its SMILES as the template of the bond orders, xyz,
extxyz and the other formats without bonds).

A molecule's bonds are rows ``(i, j, type)``: ``i < j`` local atom indices in the order of its stored
atoms (``z``, ``pos``), each bond once, sorted; ``type`` one of :data:`BOND_TYPES`. An aromatic bond is
:data:`AROMATIC` whichever Kekulé structure the input wrote (RDKit's aromaticity flag, after
sanitising).

Perception (:func:`perceive_bonds`) is RDKit's ``rdDetermineBonds``: connectivity from the covalent
radii ("connect the dots"; where that fails, from an extended-Hückel calculation), then bond orders,
either copied from a template SMILES matched atom for atom onto the connectivity (QM9's SMILES), or
found for the molecule's net charge (``DetermineBondOrders``, at most :data:`MAX_BOND_ORDER_ITERATIONS`
iterations: the same answer on every machine). A molecule whose bonds cannot be perceived gets none:
the featuriser keeps it without a 2D graph or rejects it, as the dataset's ``bonds.missing`` says
(:data:`pipeline.config.settings.MISSING_BOND_POLICIES`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.data.sources.base import CaptureRDKit, Molecules, rdkit_messages

#: Bond type codes of the graph shards' ``bond_type`` column.
OTHER, SINGLE, DOUBLE, TRIPLE, AROMATIC = 0, 1, 2, 3, 4
BOND_TYPES = {OTHER: "other", SINGLE: "single", DOUBLE: "double", TRIPLE: "triple", AROMATIC: "aromatic"}

#: Bound on the iterations of RDKit's bond-order search for one molecule (no wall-clock limit).
MAX_BOND_ORDER_ITERATIONS = 1_000_000


def no_bonds() -> np.ndarray:
    """An empty [0, 3] int64 bond array."""
    return np.zeros((0, 3), dtype=np.int64)


def _code(bond: Any) -> int:
    if bond.GetIsAromatic():
        return AROMATIC
    name = str(bond.GetBondType())
    return {"SINGLE": SINGLE, "DOUBLE": DOUBLE, "TRIPLE": TRIPLE, "AROMATIC": AROMATIC}.get(name, OTHER)


def _rows(triples: list[tuple[int, int, int]]) -> np.ndarray:
    if not triples:
        return no_bonds()
    rows = np.array([(min(i, j), max(i, j), t) for i, j, t in triples], dtype=np.int64)
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))]


def rdkit_bonds(mol: Any) -> np.ndarray:
    """[B, 3] int64 bonds ``(i, j, type)`` of an RDKit molecule, in its atom order.

    Aromaticity is read from a sanitised copy; where the molecule cannot be sanitised (an SDF record
    with an unusual valence), the bond types are those it holds.
    """
    from rdkit import Chem

    work = Chem.Mol(mol)
    with CaptureRDKit():
        failed = Chem.SanitizeMol(work, catchErrors=True)
    if failed != Chem.SanitizeFlags.SANITIZE_NONE:
        work = mol
    return _rows([(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), _code(b)) for b in work.GetBonds()])


def _geometry_mol(z: np.ndarray, pos: np.ndarray) -> Any:
    """An RDKit molecule of atoms only (no bonds) with ``pos`` as its conformer."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    mol = Chem.RWMol()
    for number in z:
        mol.AddAtom(Chem.Atom(int(number)))
    conformer = Chem.Conformer(len(z))
    for k, (x, y, w) in enumerate(np.asarray(pos, dtype=np.float64)):
        conformer.SetAtomPosition(k, Point3D(float(x), float(y), float(w)))
    conformer.Set3D(True)
    mol.AddConformer(conformer, assignId=True)
    return mol.GetMol()


def _from_template(smiles: str, connected: Any) -> np.ndarray:
    """Bonds of ``connected`` (single bonds from the geometry) with the bond orders of ``smiles``,
    matched atom for atom (hydrogens included); raises ValueError where they are not one graph."""
    from rdkit import Chem

    with CaptureRDKit() as capture:
        ref = Chem.MolFromSmiles(smiles)
    if ref is None:
        raise ValueError(f"RDKit could not parse the SMILES {smiles!r}: {rdkit_messages(capture.text)}")
    ref = Chem.AddHs(ref)
    if (ref.GetNumAtoms(), ref.GetNumBonds()) != (connected.GetNumAtoms(), connected.GetNumBonds()):
        raise ValueError(
            f"the SMILES {smiles!r} has {ref.GetNumAtoms()} atoms and {ref.GetNumBonds()} bonds, the "
            f"geometry's connectivity {connected.GetNumAtoms()} and {connected.GetNumBonds()}"
        )
    bare = []
    for mol in (ref, connected):
        plain = Chem.RWMol(mol)
        for bond in plain.GetBonds():
            bond.SetBondType(Chem.BondType.SINGLE)
            bond.SetIsAromatic(False)
        for atom in plain.GetAtoms():
            atom.SetFormalCharge(0)
            atom.SetIsAromatic(False)
        plain.UpdatePropertyCache(strict=False)
        Chem.FastFindRings(plain)
        bare.append(plain)
    match = bare[1].GetSubstructMatch(bare[0])  # template atom k -> geometry atom match[k]
    if len(match) != ref.GetNumAtoms():
        raise ValueError(f"the SMILES {smiles!r} is not the molecule the geometry's connectivity makes")
    return _rows([(match[b.GetBeginAtomIdx()], match[b.GetEndAtomIdx()], _code(b)) for b in ref.GetBonds()])


def perceive_bonds(
    z: np.ndarray, pos: np.ndarray, charge: int, template: str | None = None
) -> tuple[np.ndarray | None, str]:
    """(bonds [B, 3], "") of a molecule perceived from its geometry and net charge, or (None, why not).

    With ``template`` (a SMILES of the same molecule), its bond orders are copied where it matches the
    geometry's connectivity; otherwise, or where it does not match, the bond orders are found for the
    charge. Connectivity comes from covalent radii first, then from an extended-Hückel calculation.
    """
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    if len(z) == 1:
        return no_bonds(), ""
    methods = [False] + ([True] if rdDetermineBonds.hueckelEnabled() else [])
    connectivities: list[Any] = []
    problems: list[str] = []
    for hueckel in methods:
        mol = Chem.Mol(_geometry_mol(z, pos))
        try:
            with CaptureRDKit():
                rdDetermineBonds.DetermineConnectivity(mol, useHueckel=hueckel, charge=int(charge))
        except Exception as error:  # RDKit raising on one molecule must not stop the shard
            problems.append(f"connectivity: {_message(error)}")
            continue
        connectivities.append(mol)
        if template is not None:
            try:
                return _from_template(template, mol), ""
            except ValueError as error:
                problems.append(str(error))
    for connected in connectivities:
        mol = Chem.Mol(connected)
        try:
            with CaptureRDKit():
                # formal charges where the valences need them, adding up to the molecule's charge (the
                # alternative, radicals, would not hold the bond orders to the charge at all)
                rdDetermineBonds.DetermineBondOrders(
                    mol,
                    charge=int(charge),
                    allowChargedFragments=True,
                    embedChiral=False,
                    maxIterations=MAX_BOND_ORDER_ITERATIONS,
                )
        except Exception as error:  # RDKit raising on one molecule must not stop the shard
            problems.append(_message(error))
            continue
        return rdkit_bonds(mol), ""
    reasons = "; ".join(dict.fromkeys(problems)) or "RDKit found none"
    reasons = reasons if len(reasons) <= 300 else reasons[:297] + "..."
    return None, f"bonds could not be perceived from the geometry with charge {int(charge):+d} ({reasons})"


def _message(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def complete_bonds(mols: Molecules) -> tuple[Molecules, dict[int, str]]:
    """``mols`` with the bonds of every molecule whose source gave none (``n_bonds`` -1) perceived from
    its geometry, charge and template; and, by position, why for those where they could not be (they
    keep ``n_bonds`` -1)."""
    missing = np.flatnonzero(mols.n_bonds < 0)
    if not len(missing):
        return mols, {}
    ptr, bond_ptr = mols.atom_ptr, mols.bond_ptr
    found: dict[int, np.ndarray] = {}
    problems: dict[int, str] = {}
    for m in missing:
        z, pos = mols.z[ptr[m] : ptr[m + 1]], mols.pos[ptr[m] : ptr[m + 1]]
        bonds, problem = perceive_bonds(z, pos, int(mols.charge[m]), mols.bond_template[m])
        if bonds is None:
            problems[int(m)] = problem
        else:
            found[int(m)] = bonds
    per_molecule = [found.get(m, mols.bonds[bond_ptr[m] : bond_ptr[m + 1]]) for m in range(len(mols))]
    n_bonds = np.array(
        [len(b) if (mols.n_bonds[m] >= 0 or m in found) else -1 for m, b in enumerate(per_molecule)],
        dtype=np.int64,
    )
    bonds = np.concatenate(per_molecule) if per_molecule else no_bonds()
    return mols.with_bonds(bonds, n_bonds), problems


__all__ = [
    "AROMATIC",
    "BOND_TYPES",
    "DOUBLE",
    "OTHER",
    "SINGLE",
    "TRIPLE",
    "complete_bonds",
    "no_bonds",
    "perceive_bonds",
    "rdkit_bonds",
]
