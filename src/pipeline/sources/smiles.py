"""Molecules from SMILES: CSV files with an ``id`` and a ``smiles`` column, plus optional property columns.

:meth:`SmilesSource.catalogue` reads the CSVs (cheap); :meth:`SmilesSource.materialise` builds a 3D
conformer for each requested row: RDKit parses the SMILES, adds hydrogens, embeds with ETKDGv3 (seeded
from the run seed and the catalogue row, so a molecule gets the same coordinates whichever shard builds
it), falls back once to random starting coordinates, and relaxes the geometry with MMFF94 (UFF where
MMFF has no parameters). Every step is bounded, so no molecule can hang a shard.

Property columns are kept under their CSV names, in the units the CSV uses.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .base import Catalogue, Molecules, Reject
from .files import AsGivenUnits, CaptureRDKit, expand_inputs, rdkit_messages

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


def _property_column(values: pd.Series) -> tuple[pd.Series | None, str | None]:
    """(float column, None) if every filled cell is a number, else (None, an offending cell)."""
    text = values.str.strip()
    missing = text.str.lower().isin(MISSING)
    numbers = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = numbers.isna() & ~missing
    if bad.any():
        return None, str(text[bad].iloc[0])
    return numbers.astype(np.float64), None


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
        self, max_iterations: int = 1000, timeout_s: int = 60, max_optimiser_steps: int = 500
    ) -> None:
        self.max_iterations = max_iterations  # ETKDG embedding attempts per try
        self.timeout_s = timeout_s  # per try and fragment (RDKit's EmbedParameters.timeout)
        self.max_optimiser_steps = max_optimiser_steps

    # ------------------------------------------------------------------------------------------------
    def catalogue(self, inputs: Sequence[Path]) -> Catalogue:
        files, rejects = expand_inputs(inputs, CSV_SUFFIXES)
        metas: list[pd.DataFrame] = []
        props: list[pd.DataFrame] = []
        for path in files:
            try:
                table = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
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
        for column in table.columns:
            if column in (id_column, smiles_column):
                continue
            values, offending = _property_column(table[column])
            if values is None:
                log.warning("%s: column %r is not numeric (e.g. %r); ignored", origin, column, offending)
                continue
            properties[column] = values

        rejects = []
        empty_id, empty_smiles = ids.eq(""), smiles.eq("")
        for row in np.flatnonzero(empty_id | empty_smiles):
            problems = " and ".join(
                name for name, empty in (("id", empty_id), ("SMILES", empty_smiles)) if empty.iloc[row]
            )
            mol_id = ids.iloc[row] or None
            rejects.append(Reject(origin, int(row), mol_id, f"row {row}: empty {problems} cell"))
        keep = ~(empty_id | empty_smiles).to_numpy()
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
        kept: list[int] = []
        z: list[np.ndarray] = []
        pos: list[np.ndarray] = []
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
            z.append(built[0])
            pos.append(built[1])
        molecules = Molecules.from_lists(
            mol_id=entries["mol_id"].to_numpy()[kept],
            z=z,
            pos=pos,
            properties=payload.properties.iloc[kept],
            origin=entries["origin"].to_numpy()[kept],
            index=entries["index"].to_numpy()[kept],
        )
        return molecules, rejects

    def build(self, smiles: str, random_seed: int) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
        """((atomic numbers, coordinates in Å), "") for one SMILES, or (None, why not)."""
        from rdkit import Chem
        from rdkit.Chem import AllChem

        with CaptureRDKit() as capture:
            mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            detail = rdkit_messages(capture.text)
            return None, f"RDKit could not parse SMILES {smiles!r}" + (f": {detail}" if detail else "")
        mol = Chem.AddHs(mol)
        for random_coords in (False, True):
            params = AllChem.ETKDGv3()
            params.randomSeed = random_seed
            params.maxIterations = self.max_iterations
            params.timeout = self.timeout_s
            params.numThreads = 1
            params.useRandomCoords = random_coords
            with CaptureRDKit():
                conf_id = AllChem.EmbedMolecule(mol, params)
            if conf_id >= 0:
                break
        else:
            return None, f"conformer embedding failed after 2 attempts (SMILES {smiles!r})"
        try:
            with CaptureRDKit():
                if AllChem.MMFFHasAllMoleculeParams(mol):
                    AllChem.MMFFOptimizeMolecule(mol, maxIters=self.max_optimiser_steps)
                elif AllChem.UFFHasAllMoleculeParams(mol):
                    AllChem.UFFOptimizeMolecule(mol, maxIters=self.max_optimiser_steps)
        except Exception as error:  # keep the ETKDG geometry
            log.warning("force-field optimisation failed for %r (%s); ETKDG geometry kept", smiles, error)
        z = np.fromiter((a.GetAtomicNum() for a in mol.GetAtoms()), dtype=np.int64, count=mol.GetNumAtoms())
        return (z, mol.GetConformer(conf_id).GetPositions()), ""


__all__ = ["SmilesPayload", "SmilesSource", "conformer_seed"]
