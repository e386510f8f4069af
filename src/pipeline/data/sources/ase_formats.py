"""ASE databases (:func:`read_db`: checked to be an ASE SQLite file first) and every other format ASE
reads (:func:`read_ase`: traj, cif, pdb, gro, g96, cjson, poscar)."""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path

import numpy as np

from pipeline.data.sources.base import (
    UnknownElement,
)
from pipeline.data.sources.records import (
    ID_KEYS,
    STATE_KEYS,
    Collected,
    add_atoms,
    as_number,
    check_z,
    id_text,
    periodic,
    state_of,
    symbols_of,
)


def _check_ase_sqlite(path: Path) -> None:
    """Raise unless ``path`` is an ASE SQLite database (ASE would otherwise write its tables into it)."""
    with open(path, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise ValueError("not an SQLite database")
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        found = connection.execute("SELECT name FROM sqlite_master WHERE name = 'systems'").fetchall()
    finally:
        connection.close()
    if not found:
        raise ValueError("an SQLite database, but not an ASE database (no 'systems' table)")


def read_db(path: Path, stem: str, out: Collected) -> None:
    import ase.db

    origin = str(path)
    _check_ase_sqlite(path)
    rows = ase.db.connect(str(path), type="db").select()  # the file exists: connect() would create it
    index = 0
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as error:
            if index == 0:
                raise
            out.reject(origin, index, None, f"row {index}: database unreadable from here on: {error}")
            return
        where = f"row {index} (db id {row.id})"
        try:
            kv = dict(row.key_value_pairs)
            mol_id = next((id_text(kv[k]) for k in ID_KEYS if k in kv and id_text(kv[k])), None)
            mol_id = mol_id or f"{stem}-{index}"
            numbers = {k: as_number(v) for k, v in kv.items() if k not in ID_KEYS and k not in STATE_KEYS}
            props = {k: v for k, v in numbers.items() if v is not None}
            for key in ("energy", "free_energy"):
                number = as_number(row.get(key))
                if number is not None and key not in props:
                    props[key] = number
            z = np.asarray(row.numbers, dtype=np.int64)
            pos = np.asarray(row.positions, dtype=np.float64)
        except Exception as error:
            out.reject(origin, index, None, f"{where}: could not read the row: {error}")
            index += 1
            continue
        charge, multiplicity, problem = state_of(kv)
        problem = problem or periodic(row.pbc, np.linalg.norm(np.asarray(row.cell, dtype=np.float64), axis=1))
        if len(z) == 0:
            out.reject(origin, index, mol_id, f"{where}: molecule has no atoms")
        elif problem is not None:
            out.reject(origin, index, mol_id, f"{where}: {problem}")
        else:
            try:
                check_z(z, partial(symbols_of, z))
            except UnknownElement as error:
                out.reject(origin, index, mol_id, f"{where}: {error}")
            else:
                out.add(origin, index, mol_id, z, pos, props, charge, multiplicity)
        index += 1


def read_ase(path: Path, stem: str, out: Collected) -> None:
    import ase.io

    origin = str(path)
    frames = ase.io.iread(str(path), index=":")
    index = 0
    while True:
        try:
            atoms = next(frames)
        except StopIteration:
            return
        except Exception as error:
            if index == 0:
                raise
            out.reject(
                origin,
                index,
                None,
                f"molecule {index}: file is truncated or unparsable from here on "
                f"({type(error).__name__}: {error}); the {index} molecules before it are kept",
            )
            return
        add_atoms(out, origin, index, stem, atoms, where=f"molecule {index}")
        index += 1
