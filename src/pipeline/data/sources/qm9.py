"""QM9 (Ramakrishnan et al. 2014) from the ``qm9pack`` wheel: 130,831 molecules, B3LYP/6-31G(2df,p).

The wheel ships QM9 as three CSVs with coordinates and element lists stored as strings. They are
parsed column-wise with Arrow compute kernels (no per-molecule Python): QM9's coordinate strings are
not strict JSON (``0.``, ``1.``, ``-1.0119E-6``), which Arrow's float parser reads as written.

``qm9pack``'s ``__init__`` imports ``pkg_resources`` (absent from modern setuptools), so its data
folder is located with :func:`importlib.util.find_spec` without importing the package.

Bonds: the featuriser perceives each molecule's connectivity from its geometry and takes the bond
orders from its ``SMILES`` column, matched atom for atom (:mod:`pipeline.data.sources.bonds`); where
the SMILES does not match the geometry, the bond orders are perceived from the geometry alone.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from pipeline.config.units import HARTREE_TO_EV, TARGET_UNITS
from pipeline.data.sources.base import (
    Catalogue,
    Molecules,
    Reject,
    UnknownElement,
    csv_shape_problem,
    symbols_to_z,
)

#: Canonical target -> (qm9pack column, factor to the canonical unit).
QM9_COLUMNS: dict[str, tuple[str, float]] = {
    "mu": ("Dipole_debye", 1.0),
    "alpha": ("Polarizability_bohr3", 1.0),
    "homo": ("HOMO_au", HARTREE_TO_EV),
    "lumo": ("LUMO_au", HARTREE_TO_EV),
    "gap": ("HOMO_LUMO_gap_au", HARTREE_TO_EV),
    "r2": ("R2_bohr2", 1.0),
    "zpve": ("ZPVE_au", HARTREE_TO_EV),
    "u0": ("InternalEnergy_0K_au", HARTREE_TO_EV),
    "u298": ("InternalEnergy_298K_au", HARTREE_TO_EV),
    "h298": ("Enthalphy_298K_au", HARTREE_TO_EV),  # sic: qm9pack's spelling
    "g298": ("GibbsFreeEnergy_298K_au", HARTREE_TO_EV),
    "cv": ("Heatcapacity_Cv_cal_mol_K", 1.0),
}
_STRUCTURE_COLUMNS = ["XYZ_file", "N_atoms", "Elements", "XYZ_Ang", "SMILES"]
QM9_SIZE = 130_831


def qm9pack_data_dir() -> Path:
    """The folder of CSVs inside the installed ``qm9pack`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the qm9pack package is not installed: `pip install qm9pack==1.0.3`")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"qm9pack is installed but has no data folder at {data}")
    return data


def qm9_csvs(inputs: Sequence[Path] = ()) -> list[Path]:
    """The molecule CSVs: the given ones, or qm9pack's ``qm9_part*.csv``."""
    if inputs:
        return [Path(p) for p in inputs]
    paths = sorted(qm9pack_data_dir().glob("qm9_part*.csv"))
    if not paths:
        raise FileNotFoundError(f"no qm9_part*.csv in {qm9pack_data_dir()}")
    return paths


class QM9Source:
    """QM9 molecules with all 12 targets in canonical units (energies in eV)."""

    name = "qm9"
    units = TARGET_UNITS

    def catalogue(self, inputs: Sequence[Path] = ()) -> Catalogue:
        columns = _STRUCTURE_COLUMNS + [col for col, _ in QM9_COLUMNS.values()]
        convert = pcsv.ConvertOptions(
            include_columns=columns,
            column_types={
                "XYZ_file": pa.string(),
                "Elements": pa.string(),
                "XYZ_Ang": pa.string(),
                "SMILES": pa.string(),
            },
        )
        tables, origins, index = [], [], []
        for path in qm9_csvs(inputs):
            try:
                table = pcsv.read_csv(path, convert_options=convert)
            except (pa.ArrowInvalid, KeyError) as err:
                # Arrow refuses a row that does not fit the header, without its line: name the lines
                problem = csv_shape_problem(Path(path).read_text(encoding="utf-8", errors="replace"))
                raise ValueError(f"{path}: {problem or f'not a qm9pack CSV ({err})'}") from err
            tables.append(table)
            origins.append(np.full(table.num_rows, path.name, dtype=object))
            index.append(np.arange(table.num_rows))
        table = pa.concat_tables(tables).combine_chunks()
        mol_id = pc.replace_substring(table["XYZ_file"], ".xyz", "").to_numpy(zero_copy_only=False)
        entries = pd.DataFrame(
            {
                "mol_id": mol_id.astype(object),
                "origin": np.concatenate(origins),
                "index": np.concatenate(index),
            }
        )
        return Catalogue(entries=entries, payload=table)

    def materialise(
        self, catalogue: Catalogue, rows: np.ndarray, seed: int = 0
    ) -> tuple[Molecules, list[Reject]]:
        del seed  # QM9 geometries are given; nothing random happens here
        rows = np.asarray(rows, dtype=np.int64)
        table: pa.Table = catalogue.payload.take(pa.array(rows))
        entries = catalogue.entries.iloc[rows].reset_index(drop=True)

        # "['C','H','H']" -> ["C", "H", "H"];  "[[x,y,z],[...]]" -> [x, y, z, ...]
        symbols = pc.split_pattern(_strip(table["Elements"], "[", "]", "'", " "), ",")
        coords = pc.split_pattern(_strip(table["XYZ_Ang"], "[", "]", " "), ",")
        n_declared = table["N_atoms"].to_numpy()
        n_symbols = pc.list_value_length(symbols).to_numpy(zero_copy_only=False)
        n_coords = pc.list_value_length(coords).to_numpy(zero_copy_only=False)

        # Element symbols -> Z through the (tiny) dictionary of distinct symbols.
        encoded = pc.dictionary_encode(pc.list_flatten(symbols)).combine_chunks()
        lookup = np.zeros(len(encoded.dictionary), dtype=np.int64)
        unknown = {}
        for k, symbol in enumerate(encoded.dictionary.to_pylist()):
            try:
                lookup[k] = symbols_to_z([symbol])[0]
            except UnknownElement:
                unknown[k] = symbol
        z = lookup[encoded.indices.to_numpy()]
        try:
            pos = pc.cast(pc.list_flatten(coords), pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            pos = None  # a non-numeric coordinate somewhere: fall back to a per-molecule check below

        rejects: list[Reject] = []
        keep = np.ones(len(rows), dtype=bool)
        bad_count = (n_symbols != n_declared) | (n_coords != 3 * n_declared)
        bad_element = np.zeros(len(rows), dtype=bool)
        if unknown:
            atom_mol = np.repeat(np.arange(len(rows)), n_symbols)
            bad_element[atom_mol[z == 0]] = True
        bad_number = np.zeros(len(rows), dtype=bool)
        if pos is None:
            bad_number = np.array([_has_non_numeric(c) for c in coords.to_pylist()])
        for i in np.flatnonzero(bad_count | bad_element | bad_number):
            if bad_count[i]:
                reason = (
                    f"atom count mismatch: N_atoms says {n_declared[i]}, found {n_symbols[i]} elements "
                    f"and {n_coords[i]} coordinates (expected {3 * n_declared[i]})"
                )
            elif bad_element[i]:
                atoms = symbols[int(i)].as_py()
                bad = next(a for a, symbol in enumerate(atoms) if symbol in unknown.values())
                reason = f"unknown element {atoms[bad]!r} (atom {bad})"
            else:
                reason = "non-numeric coordinate in XYZ_Ang"
            rejects.append(Reject(entries.origin[i], int(entries["index"][i]), entries.mol_id[i], reason))
            keep[i] = False

        if pos is None:  # a coordinate was not a number: parse the good molecules only
            pos = pc.cast(pc.list_flatten(coords.filter(pa.array(keep))), pa.float64()).to_numpy()
        elif not keep.all():
            pos = pos[np.repeat(keep, n_coords)]
        z = z[np.repeat(keep, n_symbols)]
        props = pd.DataFrame(
            {t: table[col].to_numpy(zero_copy_only=False)[keep] * f for t, (col, f) in QM9_COLUMNS.items()}
        )
        return (
            Molecules(
                mol_id=entries.mol_id.to_numpy()[keep],
                n_atoms=n_declared[keep].astype(np.int64),
                z=z,
                pos=pos.reshape(-1, 3),
                properties=props,
                origin=entries.origin.to_numpy()[keep],
                index=entries["index"].to_numpy()[keep],
                # the bonds are perceived from the geometry, their orders taken from the SMILES
                bond_template=table["SMILES"].to_numpy(zero_copy_only=False)[keep],
            ),
            rejects,
        )


def _strip(strings: pa.ChunkedArray, *chars: str) -> pa.ChunkedArray:
    for char in chars:
        strings = pc.replace_substring(strings, char, "")
    return strings


def _has_non_numeric(tokens: list[str]) -> bool:
    try:
        [float(t) for t in tokens]
    except ValueError:
        return True
    return False
