"""Molecules from SMILES: CSV files with an ``id`` and a ``smiles`` column, plus optional property columns.

:meth:`SmilesSource.catalogue` reads the CSVs (cheap); :meth:`SmilesSource.materialise` builds a 3D
conformer for each requested row: RDKit parses the SMILES, handles several fragments (below), adds
hydrogens, embeds with ETKDGv3 (seeded from the run seed and the molecule's id, so a molecule gets the
same coordinates whichever shard builds it), falls back once to random starting coordinates, and
relaxes the geometry with MMFF94 (UFF where MMFF has no parameters).

Every step is bounded by a number of iterations, never by wall-clock time (ETKDG's ``maxIterations``
per try, two tries, the force field's ``maxIters``; one thread): the same SMILES and seed give the
same coordinates, bit for bit, on a quiet laptop and on a loaded cluster node, and a molecule that
cannot be embedded is rejected on every machine alike.

Charge and spin come from the SMILES: the net charge is the sum of RDKit's formal charges
(``C[NH3+]`` is +1, ``CC(=O)[O-]`` is -1) and a SMILES with radical electrons (``[CH3]``, ``[O][O]``)
states its multiplicity as one unpaired electron per radical electron (high spin); otherwise the
multiplicity is not stated and the featuriser takes the lowest the electron count allows. The bonds
(the 2D graph) are those of the RDKit molecule embedded, hydrogens included, in the stored atom order.

A SMILES of several fragments (a salt ``C[NH3+].[Cl-]``, a hydrate ``CCO.O``) is never embedded as one
structure (ETKDG would place the fragments on top of each other). With ``fragments: largest`` (the
default) the largest fragment is kept, preferring organic ones, as RDKit's standardiser chooses it
(``rdMolStandardize.LargestFragmentChooser(preferOrganic=True)``), with that fragment's own charge:
``C[NH3+].[Cl-]`` becomes methylammonium, charge +1, and ``CC(=O)[O-].[Na+]`` acetate, charge -1.
With ``fragments: reject`` the molecule is rejected with a reason naming its fragments.

Property columns are kept under their CSV names, in the units the CSV uses. A column most of whose
filled cells are numbers is a property column, and a row with any other text in it (``abc``; empty
cells and NA are missing values) is a reject naming the row, column and cell; a column mostly of text
(a note) is no property and is ignored with a warning. Values outside their plausible range are
rejected by the featuriser (:func:`pipeline.data.featurise.check_properties`). A CSV whose rows do not
fit its header (a row with more or fewer fields, a comma at the end of each row, a header column
without a name) is rejected whole, naming the lines: read anyway, its columns would shift
(:func:`pipeline.data.sources.base.csv_shape_problem`).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.sources.base import (
    DEFAULT_FRAGMENTS,
    FRAGMENT_POLICIES,
    AsGivenUnits,
    CaptureRDKit,
    Catalogue,
    Molecules,
    Reject,
    csv_shape_problem,
    expand_inputs,
    not_text,
    rdkit_messages,
)
from pipeline.data.sources.bonds import rdkit_bonds

log = logging.getLogger(__name__)

ID_COLUMN = "id"
SMILES_COLUMN = "smiles"
CSV_SUFFIXES = frozenset({".csv"})
#: Cell texts that mean "no value" in a property column.
MISSING = frozenset({"", "na", "n/a", "nan", "none", "null", "-"})


def conformer_seed(seed: int, mol_id: str) -> int:
    """The RDKit random seed of molecule ``mol_id`` under run seed ``seed``.

    Keyed by id, not position, so a molecule keeps its conformer whichever shard builds it and when
    rows are added to or removed from the input.
    """
    key = int.from_bytes(hashlib.sha256(mol_id.encode()).digest()[:8], "little")
    return int(np.random.SeedSequence([int(seed), key]).generate_state(1)[0] % 2**31)


def _find_column(columns: Sequence[str], wanted: str) -> str | None:
    """The column called ``wanted`` (exact match first, then ignoring case)."""
    if wanted in columns:
        return wanted
    matches = [c for c in columns if c.lower() == wanted]
    return matches[0] if len(matches) == 1 else None


def _property_column(values: pd.Series) -> tuple[pd.Series | None, np.ndarray]:
    """(float column, [N] bool: cells that are not numbers) if most filled cells are numbers, else
    (None, the non-numeric cells): a column of text (a note, a name) is no property, while a property
    column with a stray ``abc`` is one whose bad cells are their molecules' rejects."""
    text = values.str.strip()
    missing = text.str.lower().isin(MISSING)
    numbers = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = (numbers.isna() & ~missing).to_numpy()
    if bad.any() and bad.sum() >= (~missing).sum() - bad.sum():
        return None, bad
    return numbers.astype(np.float64), bad


@dataclass
class SmilesPayload:
    """What materialise needs, aligned with the catalogue rows."""

    smiles: np.ndarray  # [N] str (object)
    properties: pd.DataFrame  # [N rows] float64, as given in the CSVs


def _empty_meta() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mol_id": pd.Series([], dtype=object),
            "origin": pd.Series([], dtype=object),
            "index": pd.Series([], dtype=np.int64),
            "smiles": pd.Series([], dtype=object),
        }
    )


class SmilesSource:
    """Molecules from CSVs of ``id``, ``smiles`` [, numeric property columns]; 3D by RDKit ETKDG."""

    name = "smiles"
    units: dict[str, str] = AsGivenUnits()

    def __init__(
        self,
        max_iterations: int = 1000,
        max_optimiser_steps: int = 500,
        fragments: str = DEFAULT_FRAGMENTS,
    ) -> None:
        self.max_iterations = max_iterations  # ETKDG embedding attempts per try (two tries)
        self.max_optimiser_steps = max_optimiser_steps  # MMFF/UFF iterations
        self.fragments = fragments  # one of FRAGMENT_POLICIES (module doc)

    # ------------------------------------------------------------------------------------------------
    def catalogue(self, inputs: Sequence[Path]) -> Catalogue:
        files, rejects = expand_inputs(inputs, CSV_SUFFIXES)
        metas: list[pd.DataFrame] = []
        props: list[pd.DataFrame] = []
        for path in files:
            problem = not_text(path)
            if problem is not None:
                rejects.append(Reject(str(path), -1, None, problem))
                continue
            try:
                text = path.read_text(encoding="utf-8-sig")
                problem = csv_shape_problem(text)  # rows that do not fit the header shift its columns
                if problem is not None:
                    rejects.append(Reject(str(path), -1, None, problem))
                    continue
                table = pd.read_csv(
                    io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True
                )
            except pd.errors.EmptyDataError:
                rejects.append(Reject(str(path), -1, None, "file is empty"))
                continue
            except Exception as error:  # one unreadable file never stops the others
                reason = f"could not read the CSV: {type(error).__name__}: {error}"
                rejects.append(Reject(str(path), -1, None, reason))
                continue
            meta, properties, file_rejects = self._read_table(path, table)
            metas.append(meta)
            props.append(properties)
            rejects.extend(file_rejects)
            log.info("%s: %d molecules, %d rejected", path, len(meta), len(file_rejects))

        meta = pd.concat(metas, ignore_index=True) if metas else _empty_meta()
        properties = pd.concat(props, ignore_index=True) if props else pd.DataFrame(index=meta.index)
        entries = pd.DataFrame(
            {
                "mol_id": meta["mol_id"].astype(object).to_numpy(),
                "origin": meta["origin"].astype(object).to_numpy(),
                "index": meta["index"].to_numpy(dtype=np.int64),
            }
        )
        payload = SmilesPayload(
            smiles=meta["smiles"].astype(object).to_numpy(), properties=properties.astype(np.float64)
        )
        return Catalogue(entries=entries, payload=payload, rejects=rejects)

    @staticmethod
    def _read_table(path: Path, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[Reject]]:
        """(id, origin, index, smiles of the usable rows; their property columns; rejected rows)."""
        origin = str(path)
        table = table.rename(columns=lambda c: str(c).strip())
        id_column = _find_column(list(table.columns), ID_COLUMN)
        smiles_column = _find_column(list(table.columns), SMILES_COLUMN)
        for wanted, found in ((ID_COLUMN, id_column), (SMILES_COLUMN, smiles_column)):
            if found is None:
                raise ValueError(
                    f"{origin}: missing column {wanted!r} (a SMILES CSV needs columns 'id' and 'smiles'; "
                    f"found {list(table.columns)})"
                )
        ids = table[id_column].str.strip()
        smiles = table[smiles_column].str.strip()

        properties: dict[str, pd.Series] = {}
        not_numbers: list[list[str]] = [[] for _ in range(len(table))]
        for column in table.columns:
            if column in (id_column, smiles_column):
                continue
            values, bad = _property_column(table[column])
            if values is None:
                if bad.any():
                    offending = str(table[column].str.strip()[bad].iloc[0])
                    log.warning("%s: column %r is not numeric (e.g. %r); ignored", origin, column, offending)
                continue
            properties[column] = values
            for row in np.flatnonzero(bad):
                not_numbers[row].append(f"{column} {table[column].iat[row].strip()!r}")

        rejects = []
        empty_id, empty_smiles = ids.eq(""), smiles.eq("")
        for row in np.flatnonzero(empty_id | empty_smiles):
            problems = " and ".join(
                name for name, empty in (("id", empty_id), ("SMILES", empty_smiles)) if empty.iloc[row]
            )
            mol_id = ids.iloc[row] or None
            rejects.append(Reject(origin, int(row), mol_id, f"row {row}: empty {problems} cell"))
        unreadable = np.array([bool(cells) for cells in not_numbers], dtype=bool)
        for row in np.flatnonzero(unreadable & ~(empty_id | empty_smiles).to_numpy()):
            rejects.append(
                Reject(
                    origin,
                    int(row),
                    ids.iloc[row],
                    f"row {row}: not a number in a property column: {', '.join(not_numbers[row])} "
                    "(an empty cell or NA is a missing value)",
                )
            )
        keep = ~(empty_id | empty_smiles).to_numpy() & ~unreadable
        meta = pd.DataFrame(
            {
                "mol_id": ids.to_numpy()[keep],
                "origin": origin,
                "index": np.flatnonzero(keep).astype(np.int64),
                "smiles": smiles.to_numpy()[keep],
            }
        )
        values = pd.DataFrame({column: series.to_numpy()[keep] for column, series in properties.items()})
        return meta, values.reindex(meta.index), rejects

    # ------------------------------------------------------------------------------------------------
    def materialise(
        self, catalogue: Catalogue, rows: np.ndarray, seed: int
    ) -> tuple[Molecules, list[Reject]]:
        payload: SmilesPayload = catalogue.payload
        entries = catalogue.entries
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self.fragments not in FRAGMENT_POLICIES:
            raise ValueError(f"fragments must be one of {FRAGMENT_POLICIES}, got {self.fragments!r}")
        kept: list[int] = []
        z: list[np.ndarray] = []
        pos: list[np.ndarray] = []
        charge: list[int] = []
        multiplicity: list[int] = []
        identity: list[str] = []
        bonds: list[np.ndarray] = []
        rejects: list[Reject] = []
        for row in rows:
            smiles = payload.smiles[row]
            mol_id, origin, index = (entries[c].iat[row] for c in ("mol_id", "origin", "index"))
            try:
                built, reason = self.build(smiles, conformer_seed(seed, mol_id))
            except Exception as error:  # RDKit raising on one molecule must not stop the shard
                built, reason = None, f"RDKit failed on SMILES {smiles!r}: {type(error).__name__}: {error}"
            if built is None:
                rejects.append(Reject(origin, int(index), mol_id, reason))
                continue
            kept.append(int(row))
            z.append(built.z)
            pos.append(built.pos)
            charge.append(built.charge)
            multiplicity.append(built.multiplicity)
            identity.append(built.identity)
            bonds.append(built.bonds)
        molecules = Molecules.from_lists(
            mol_id=entries["mol_id"].to_numpy()[kept],
            z=z,
            pos=pos,
            properties=payload.properties.iloc[kept],
            origin=entries["origin"].to_numpy()[kept],
            index=entries["index"].to_numpy()[kept],
            charge=charge,
            multiplicity=multiplicity,
            identity=identity,
            bonds=bonds,
        )
        return molecules, rejects

    def build(self, smiles: str, random_seed: int) -> tuple[Built | None, str]:
        """(the molecule in 3D, "") for one SMILES, or (None, why not)."""
        from rdkit import Chem
        from rdkit.Chem import AllChem

        with CaptureRDKit() as capture:
            mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            detail = rdkit_messages(capture.text)
            return None, f"RDKit could not parse SMILES {smiles!r}" + (f": {detail}" if detail else "")
        mol, problem = self._one_fragment(mol, smiles)
        if mol is None:
            return None, problem
        identity = Chem.MolToSmiles(mol)  # canonical, isomeric: the same molecule whatever its SMILES
        mol = Chem.AddHs(mol)
        for random_coords in (False, True):
            params = AllChem.ETKDGv3()
            params.randomSeed = random_seed
            params.maxIterations = self.max_iterations
            params.timeout = 0  # no wall-clock limit: the iteration count bounds the work
            params.numThreads = 1
            params.useRandomCoords = random_coords
            with CaptureRDKit():
                conf_id = AllChem.EmbedMolecule(mol, params)
            if conf_id >= 0:
                break
        else:
            return None, (
                f"conformer embedding failed after 2 attempts of at most {self.max_iterations} "
                f"iterations each (SMILES {smiles!r})"
            )
        try:
            with CaptureRDKit():
                if AllChem.MMFFHasAllMoleculeParams(mol):
                    AllChem.MMFFOptimizeMolecule(mol, maxIters=self.max_optimiser_steps)
                elif AllChem.UFFHasAllMoleculeParams(mol):
                    AllChem.UFFOptimizeMolecule(mol, maxIters=self.max_optimiser_steps)
        except Exception as error:  # keep the ETKDG geometry
            log.warning("force-field optimisation failed for %r (%s); ETKDG geometry kept", smiles, error)
        atoms = mol.GetAtoms()
        radicals = sum(a.GetNumRadicalElectrons() for a in atoms)
        return Built(
            z=np.fromiter((a.GetAtomicNum() for a in atoms), dtype=np.int64, count=mol.GetNumAtoms()),
            pos=mol.GetConformer(conf_id).GetPositions(),
            charge=Chem.GetFormalCharge(mol),
            multiplicity=radicals + 1 if radicals else 0,  # 0: not stated, lowest spin
            identity=identity,
            bonds=rdkit_bonds(mol),  # of the molecule embedded, hydrogens included, in its atom order
        ), ""

    def _one_fragment(self, mol: Any, smiles: str) -> tuple[Any, str]:
        """(the RDKit molecule, "") if it is one fragment or the policy keeps one; else (None, why not)."""
        from rdkit import Chem
        from rdkit.Chem.MolStandardize import rdMolStandardize

        fragments = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
        if len(fragments) < 2:
            return mol, ""
        names = ", ".join(Chem.MolToSmiles(f) for f in fragments)
        if self.fragments == "reject":
            return None, (
                f"SMILES {smiles!r} has {len(fragments)} disconnected fragments ({names}); "
                "they cannot be embedded as one molecule (fragments: reject; 'largest' keeps the largest)"
            )
        kept = rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)
        log.info("SMILES %r: %d fragments (%s); kept the largest, %s", smiles, len(fragments), names,
                 Chem.MolToSmiles(kept))  # fmt: skip
        return kept, ""


@dataclass
class Built:
    """One molecule built from a SMILES."""

    z: np.ndarray  # [n] int64
    pos: np.ndarray  # [n, 3] float64, Å
    charge: int  # net formal charge
    multiplicity: int  # 2S + 1 from the radical electrons; 0: none stated
    identity: str = ""  # canonical isomeric SMILES of the molecule kept (duplicates are found by it)
    bonds: np.ndarray | None = None  # [b, 3] (i, j, type) (pipeline.data.sources.bonds)


__all__ = ["Built", "SmilesPayload", "SmilesSource", "conformer_seed"]
