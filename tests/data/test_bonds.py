"""Bonds in the graph shards (the 2D graph): read right for every source, charged molecules and aromatic
rings included, in the stored atom order; a molecule whose bonds cannot be perceived kept without them
or rejected, as ``bonds.missing`` says. (Shards of the format before bonds are refused:
tests/data/test_graphs.py.)"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.data.featurise import FeaturiseSettings, featurise
from pipeline.data.graphs import load_graphs
from pipeline.data.sources.qm9 import qm9_csvs
from pipeline.data.sources.records import symbols_of

#: Bond type codes of the shards (pipeline.data.store.GRAPH_SCHEMA).
SINGLE, DOUBLE, TRIPLE, AROMATIC = 1, 2, 3, 4
METHYLAMMONIUM = {("C", "N", SINGLE): 1, ("C", "H", SINGLE): 3, ("H", "N", SINGLE): 3}
ACETATE = {("C", "C", SINGLE): 1, ("C", "O", DOUBLE): 1, ("C", "O", SINGLE): 1, ("C", "H", SINGLE): 3}
PYRIDINE = {("C", "C", AROMATIC): 4, ("C", "N", AROMATIC): 2, ("C", "H", SINGLE): 5}


def shard(out: Path) -> dict[str, dict]:
    """Each molecule of a one-shard dataset: its elements, geometry, bonds (i, j, type) and has_bonds."""
    table = pq.read_table(out / "graphs" / "shard-00000.parquet").to_pylist()
    return {
        row["mol_id"]: {
            "z": row["z"],
            "pos": np.array(row["pos"]),
            "bonds": list(zip(row["bond_src"], row["bond_dst"], row["bond_type"], strict=True)),
            "has_bonds": row["has_bonds"],
            "charge": row["charge"],
        }
        for row in table
    }


def kinds(mol: dict) -> Counter:
    """The bonds as (element, element, type), elements in alphabetical order, counted; every bond is
    checked to join two distinct atoms of the stored geometry within 2 Å, listed once as i < j."""
    symbols = symbols_of(np.array(mol["z"]))
    seen = set()
    for i, j, _ in mol["bonds"]:
        assert 0 <= i < j < len(mol["z"]) and (i, j) not in seen, mol["bonds"]
        seen.add((i, j))
        assert np.linalg.norm(mol["pos"][i] - mol["pos"][j]) < 2.0, (i, j, symbols[i], symbols[j])
    return Counter((*sorted((symbols[i], symbols[j])), t) for i, j, t in mol["bonds"])


def ring_bonds(mol: dict) -> Counter:
    """Bond types between heavy atoms, counted."""
    return Counter(t for i, j, t in mol["bonds"] if mol["z"][i] > 1 and mol["z"][j] > 1)


def smiles_dataset(tmp_path: Path, rows: dict[str, str], **settings) -> Path:
    csv = tmp_path / "mols.csv"
    csv.write_text("id,smiles\n" + "".join(f"{k},{v}\n" for k, v in rows.items()))
    out = tmp_path / "out"
    featurise(FeaturiseSettings(source="smiles", inputs=[str(csv)], **settings), out)
    return out


def files_dataset(tmp_path: Path, name: str, text: str, **settings) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    out = tmp_path / "out"
    featurise(FeaturiseSettings(source="files", inputs=[str(path)], **settings), out)
    return out


def embedded(smiles: str, seed: int = 7):
    """An RDKit molecule of ``smiles`` with hydrogens and one 3D conformer."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


def xyz_frame(mol, comment: str = "") -> str:
    """One xyz frame of an RDKit molecule's atoms and conformer (no bonds)."""
    lines = [str(mol.GetNumAtoms()), comment]
    for atom, (x, y, w) in zip(mol.GetAtoms(), mol.GetConformer().GetPositions(), strict=True):
        lines.append(f"{atom.GetSymbol()} {x:.6f} {y:.6f} {w:.6f}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# QM9: connectivity from the geometry, bond orders from its SMILES


def test_qm9_bonds_follow_the_smiles_on_the_geometry(tmp_path, qm9_csv, qm9_lines):
    with open(qm9_csvs()[0]) as fh:
        benzene = [line for k, line in zip(range(210), fh, strict=False)][209]
    assert benzene.startswith('"dsgdb9nsd_000214.xyz"') and '"C1=CC=CC=C1"' in benzene  # Kekulé SMILES
    out = tmp_path / "out"
    featurise(FeaturiseSettings(source="qm9", inputs=[str(qm9_csv(qm9_lines + [benzene]))]), out)
    mols = shard(out)
    assert kinds(mols["dsgdb9nsd_000001"]) == {("C", "H", SINGLE): 4}  # methane
    assert kinds(mols["dsgdb9nsd_000004"]) == {("C", "C", TRIPLE): 1, ("C", "H", SINGLE): 2}  # acetylene
    assert kinds(mols["dsgdb9nsd_000005"]) == {("C", "N", TRIPLE): 1, ("C", "H", SINGLE): 1}  # HCN
    assert kinds(mols["dsgdb9nsd_000006"]) == {("C", "O", DOUBLE): 1, ("C", "H", SINGLE): 2}  # formaldehyde
    assert kinds(mols["dsgdb9nsd_000214"]) == {("C", "C", AROMATIC): 6, ("C", "H", SINGLE): 6}  # benzene
    assert all(m["has_bonds"] and m["bonds"] for m in mols.values())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["without_bonds"] == 0 and manifest["bonds"] == {
        "missing": "keep",
        "without": [],
    }


def test_a_qm9_smiles_that_does_not_match_its_geometry_leaves_the_bonds_to_the_geometry(
    tmp_path, qm9_csv, qm9_lines
):
    lines = list(qm9_lines)
    assert ',"C#N",' in lines[5]
    lines[5] = lines[5].replace(',"C#N",', ',"CC",')  # HCN's geometry under ethane's SMILES
    out = tmp_path / "out"
    featurise(FeaturiseSettings(source="qm9", inputs=[str(qm9_csv(lines))]), out)
    assert kinds(shard(out)["dsgdb9nsd_000005"]) == {("C", "N", TRIPLE): 1, ("C", "H", SINGLE): 1}


# --------------------------------------------------------------------------------------------------
# SMILES: the RDKit molecule the conformer was embedded from


def test_smiles_bonds_are_the_embedded_molecules_charged_and_aromatic_ones_included(tmp_path):
    out = smiles_dataset(
        tmp_path,
        {
            "methylammonium": "C[NH3+]",
            "acetate": "CC(=O)[O-]",
            "pyridine": "c1ccncc1",
            "benzene_kekule": "C1=CC=CC=C1",
            "salt": "C[NH3+].[Cl-]",
        },
    )
    mols = shard(out)
    assert mols["methylammonium"]["charge"] == 1
    assert kinds(mols["methylammonium"]) == METHYLAMMONIUM
    assert mols["acetate"]["charge"] == -1
    assert kinds(mols["acetate"]) == ACETATE
    assert kinds(mols["pyridine"]) == PYRIDINE
    assert ring_bonds(mols["benzene_kekule"]) == {AROMATIC: 6}  # aromatic whatever the Kekulé form
    assert kinds(mols["salt"]) == kinds(mols["methylammonium"])  # the counter-ion is gone, with its atoms


# --------------------------------------------------------------------------------------------------
# SDF: the record's bonds; xyz/extxyz: perceived from the geometry with the charge the frame states


def test_sdf_bonds_are_the_records_in_its_atom_order(tmp_path):
    from rdkit import Chem

    records = {"pyridine": embedded("c1ccncc1"), "methylammonium": embedded("C[NH3+]")}
    text = ""
    for name, mol in records.items():
        mol.SetProp("_Name", name)
        text += Chem.MolToMolBlock(mol) + "$$$$\n"  # a Kekulé structure in the file
    mols = shard(files_dataset(tmp_path, "mols.sdf", text))
    for name, mol in records.items():
        expected = sorted(
            (min(b.GetBeginAtomIdx(), b.GetEndAtomIdx()), max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()))
            for b in mol.GetBonds()
        )
        assert [(i, j) for i, j, _ in mols[name]["bonds"]] == expected  # the record's atom numbers
        assert mols[name]["z"] == [a.GetAtomicNum() for a in mol.GetAtoms()]
    assert kinds(mols["pyridine"]) == PYRIDINE
    assert mols["methylammonium"]["charge"] == 1 and ring_bonds(mols["methylammonium"]) == {SINGLE: 1}


def test_an_sdf_record_without_bonds_has_them_perceived_from_its_geometry(tmp_path):
    from rdkit import Chem

    mol = Chem.RWMol(embedded("C#N"))
    for bond in list(mol.GetBonds()):
        mol.RemoveBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
    mol.SetProp("_Name", "hcn")
    mols = shard(files_dataset(tmp_path, "hcn.sdf", Chem.MolToMolBlock(mol) + "$$$$\n"))
    assert kinds(mols["hcn"]) == {("C", "N", TRIPLE): 1, ("C", "H", SINGLE): 1}


def test_xyz_and_extxyz_bonds_are_perceived_with_the_frames_charge(tmp_path):
    frames = (
        xyz_frame(embedded("c1ccccc1"), "benzene")  # plain xyz: neutral
        + xyz_frame(embedded("C[NH3+]"), "mol_id=methylammonium charge=1")
        + xyz_frame(embedded("CC(=O)[O-]"), "mol_id=acetate charge=-1")
    )
    mols = shard(files_dataset(tmp_path, "mols.extxyz", frames))
    assert kinds(mols["mols-0"]) == {("C", "C", AROMATIC): 6, ("C", "H", SINGLE): 6}
    assert mols["methylammonium"]["charge"] == 1
    assert kinds(mols["methylammonium"]) == METHYLAMMONIUM
    assert mols["acetate"]["charge"] == -1
    assert kinds(mols["acetate"]) == ACETATE
    # the same frame with its atoms in another order: the bonds follow the stored order
    lines = xyz_frame(embedded("C[NH3+]"), "mol_id=shuffled charge=1").splitlines()
    order = [5, 1, 7, 0, 3, 2, 6, 4]  # new atom k is old atom order[k]
    text = "\n".join(lines[:2] + [lines[2 + k] for k in order]) + "\n"
    shuffled = shard(files_dataset(tmp_path / "again", "shuffled.xyz", text))["shuffled"]
    new = {old: k for k, old in enumerate(order)}
    moved = sorted((*sorted((new[i], new[j])), t) for i, j, t in mols["methylammonium"]["bonds"])
    assert shuffled["bonds"] == moved and kinds(shuffled) == kinds(mols["methylammonium"])


# --------------------------------------------------------------------------------------------------
# bonds.missing


#: Methane's geometry stated as a cation: no bond orders make a charge of +1 (RDKit refuses it).
CATION = xyz_frame(embedded("C"), "mol_id=impossible charge=1") + xyz_frame(embedded("O"), "mol_id=water")


def test_a_molecule_whose_bonds_cannot_be_perceived_is_kept_without_them_and_listed(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.data.featurise"):
        out = files_dataset(tmp_path, "mols.extxyz", CATION)
    mols = shard(out)
    assert not mols["impossible"]["has_bonds"] and mols["impossible"]["bonds"] == []
    assert len(mols["impossible"]["z"]) == 5 and mols["impossible"]["charge"] == 1  # its 3D graph stays
    assert mols["water"]["has_bonds"] and kinds(mols["water"]) == {("H", "O", SINGLE): 2}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["without_bonds"] == 1
    assert manifest["bonds"] == {"missing": "keep", "without": ["impossible"]}
    assert any(
        "impossible" in r.message and "bonds could not be perceived" in r.message for r in caplog.records
    )
    graphs = load_graphs(out)
    assert graphs.has_bonds.tolist() == [mols[m]["has_bonds"] for m in graphs.mol_id]


def test_with_missing_reject_such_a_molecule_is_a_reject_naming_why(tmp_path):
    out = files_dataset(tmp_path, "mols.extxyz", CATION, missing_bonds="reject")
    assert list(shard(out)) == ["water"]
    rejects = pd.read_parquet(out / "rejects.parquet")
    (reason,) = rejects.loc[rejects.mol_id == "impossible", "reason"]
    assert "bonds could not be perceived from the geometry with charge +1" in reason
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["bonds"] == {"missing": "reject", "without": []} and manifest["counts"]["rejected"] == 1


def test_a_single_atom_has_bonds_none_of_them(tmp_path):
    mols = shard(files_dataset(tmp_path, "ion.xyz", "1\nmol_id=sodium charge=1\nNa 0 0 0\n"))
    assert mols["sodium"]["has_bonds"] and mols["sodium"]["bonds"] == []


def test_a_template_smiles_gives_the_bond_orders_where_the_geometry_alone_cannot():
    """QM9's path: the SMILES, matched onto the geometry's connectivity, decides the bond orders (here
    with a charge the geometry alone cannot be given bonds for), in the geometry's atom order."""
    from pipeline.data.sources.bonds import perceive_bonds

    mol = embedded("C[NH3+]")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])[::-1]  # H..., N, C: another order
    pos = mol.GetConformer().GetPositions()[::-1]
    bonds, problem = perceive_bonds(z, pos, charge=0, template="C[NH3+]")
    assert problem == "" and bonds is not None
    as_stored = {"z": z.tolist(), "pos": pos, "bonds": [tuple(b) for b in bonds.tolist()]}
    assert kinds(as_stored) == METHYLAMMONIUM
    assert perceive_bonds(z, pos, charge=0)[0] is None  # without the template: no bonds for charge 0
    bonds, problem = perceive_bonds(z, pos, charge=0, template="CC")  # not this molecule
    assert bonds is None and "the SMILES 'CC' is not the molecule the geometry" in problem
