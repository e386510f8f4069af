"""SDF and MOL files (:func:`read_sdf`) through RDKit: each record's id (title or an id tag), numeric
tags as properties, formal charges and radicals, its bonds (a record of several atoms without any bond
has its bonds perceived from the geometry by the featuriser), and the dataset's ``fragments`` policy
for a record of several fragments."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.sources.base import (
    CaptureRDKit,
    UnknownElement,
    rdkit_messages,
    read_text,
)
from pipeline.data.sources.bonds import rdkit_bonds
from pipeline.data.sources.records import ID_KEYS, Collected, check_z, id_text

log = logging.getLogger(__name__)


def _sdf_header_dimension(mol: Any) -> str:
    info = mol.GetProp("_MolFileInfo") if mol.HasProp("_MolFileInfo") else ""
    return info[20:22]


def read_sdf(path: Path, compression: str | None, stem: str, out: Collected, fragments: str) -> None:
    from rdkit import Chem

    origin = str(path)
    if compression:  # random access (GetItemText for a failed record's name) needs the whole text
        supplier = Chem.SDMolSupplier()
        supplier.SetData(read_text(path, compression), sanitize=False, removeHs=False)
    else:
        supplier = Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)
    records = iter(supplier)
    index = 0
    while True:
        with CaptureRDKit() as capture:
            try:
                mol = next(records)
            except StopIteration:
                break
            except Exception as error:
                reason = f"record {index}: RDKit stopped reading the file: {error}"
                out.reject(origin, index, _record_id(supplier, index, stem), reason)
                break
        if mol is None:
            detail = rdkit_messages(capture.text)
            reason = f"record {index}: RDKit could not read the record"
            reason += f" ({detail})" if detail else ""
            out.reject(origin, index, _record_id(supplier, index, stem), reason)
        else:
            _add_rdkit_record(out, origin, index, stem, mol, fragments)
        index += 1


_SDF_TAG = re.compile(r"^>\s*.*<([^>]+)>")


def _record_id(supplier: Any, index: int, stem: str) -> str:
    """The id of SDF record ``index`` read from its text (for a record RDKit could not parse): an id
    tag, else its title line, else the automatic ``{stem}-{index}``, as for a record that parses."""
    try:
        lines = supplier.GetItemText(index).splitlines()
    except Exception:  # past the end of a broken file
        lines = []
    for k, line in enumerate(lines[:-1]):
        tag = _SDF_TAG.match(line)
        if tag and tag.group(1).strip() in ID_KEYS and id_text(lines[k + 1]):
            return id_text(lines[k + 1])
    title = id_text(lines[0]) if lines else None
    return title or f"{stem}-{index}"


def _formula(mol: Any) -> str:
    """Hill formula with charge of an RDKit molecule (unsanitised is fine): ``CH6N+``, ``Cl-``."""
    counts: dict[str, int] = {}
    for atom in mol.GetAtoms():
        counts[atom.GetSymbol()] = counts.get(atom.GetSymbol(), 0) + 1
    first = [k for k in ("C", "H") if k in counts] if "C" in counts else []
    order = first + sorted(k for k in counts if k not in first)
    text = "".join(f"{k}{counts[k] if counts[k] > 1 else ''}" for k in order)
    charge = sum(a.GetFormalCharge() for a in mol.GetAtoms())
    sign = "+" if charge > 0 else "-"
    return text + ("" if charge == 0 else sign if abs(charge) == 1 else f"{abs(charge)}{sign}")


def _fragments(mol: Any) -> list[Any]:
    """The disconnected fragments of an RDKit molecule (unsanitised is fine); one for a record without
    bonds, which has no connectivity to split it by."""
    from rdkit import Chem

    if mol.GetNumBonds() == 0:
        return [mol]
    return list(Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False))


def _largest_fragment(mol: Any) -> Any:
    """RDKit's choice of the largest fragment, organic ones first (LargestFragmentChooser)."""
    from rdkit import Chem
    from rdkit.Chem.MolStandardize import rdMolStandardize

    work = Chem.Mol(mol)
    with CaptureRDKit():
        work.UpdatePropertyCache(strict=False)  # the chooser counts hydrogens
        return rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(work)


def _add_rdkit_record(out: Collected, origin: str, index: int, stem: str, mol: Any, fragments: str) -> None:
    props: dict[str, float] = {}
    tags: dict[str, str] = {name: mol.GetProp(name) for name in mol.GetPropNames()}
    mol_id = next((id_text(tags[k]) for k in ID_KEYS if k in tags and id_text(tags[k])), None)
    if mol_id is None and mol.HasProp("_Name"):
        mol_id = id_text(mol.GetProp("_Name"))
    mol_id = mol_id or f"{stem}-{index}"
    for name, text in tags.items():
        if name in ID_KEYS:
            continue
        try:
            props[name] = float(text.strip())
        except ValueError:
            continue
    where = f"record {index}"
    if mol.GetNumAtoms() == 0:
        out.reject(origin, index, mol_id, f"{where}: molecule has no atoms")
        return
    if mol.GetNumConformers() == 0:
        out.reject(origin, index, mol_id, f"{where}: record has no coordinates")
        return
    conformer = mol.GetConformer()
    if not conformer.Is3D() and _sdf_header_dimension(mol) == "2D":
        reason = f"{where}: record has 2D coordinates (header says 2D); 3D coordinates are needed"
        out.reject(origin, index, mol_id, reason)
        return
    atoms = mol.GetAtoms()
    z = np.fromiter((a.GetAtomicNum() for a in atoms), dtype=np.int64, count=mol.GetNumAtoms())
    try:
        check_z(z, lambda: [a.GetSymbol() for a in mol.GetAtoms()])
    except UnknownElement as error:
        out.reject(origin, index, mol_id, f"{where}: {error}")
        return
    parts = _fragments(mol)
    if len(parts) > 1:
        names = ", ".join(_formula(f) for f in parts)
        if fragments == "reject":
            reason = (
                f"{where}: {len(parts)} disconnected fragments ({names}); with fragments: reject they "
                "are rejected (fragments: largest keeps the largest)"
            )
            out.reject(origin, index, mol_id, reason)
            return
        mol = _largest_fragment(mol)
        log.info("%s %s (%s): %d fragments (%s); kept the largest, %s",
                 origin, where, mol_id, len(parts), names, _formula(mol))  # fmt: skip
    atoms = mol.GetAtoms()
    z = np.fromiter((a.GetAtomicNum() for a in atoms), dtype=np.int64, count=mol.GetNumAtoms())
    charge = sum(a.GetFormalCharge() for a in atoms)
    radicals = sum(a.GetNumRadicalElectrons() for a in atoms)
    multiplicity = radicals + 1 if radicals else 0  # M  RAD: high spin; none: not stated
    # the record's own bonds; a record of several atoms without any is perceived from its geometry
    bonds = rdkit_bonds(mol) if mol.GetNumBonds() or mol.GetNumAtoms() == 1 else None
    out.add(origin, index, mol_id, z, mol.GetConformer().GetPositions(), props, charge, multiplicity, bonds)
