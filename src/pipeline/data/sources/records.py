"""What every structure-file reader of :mod:`pipeline.data.sources.files` fills: :class:`Collected`
(one entry per molecule, or a reject with its reason), and the checks of one molecule's atoms, charge,
spin, id and properties that xyz/extxyz, SDF and ASE's formats share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.config.units import TARGETS
from pipeline.data.sources.base import (
    Reject,
    UnknownElement,
    symbols_to_z,
)

#: Property keys that name the molecule instead of describing it (first one present wins).
ID_KEYS = ("mol_id", "id")


#: Info keys (extxyz, ASE) / key-value pairs (ASE db) of the net charge, and of the multiplicity 2S + 1
#: (first one present wins). They describe the species, so they are never properties.
CHARGE_KEYS = ("charge",)


MULTIPLICITY_KEYS = ("multiplicity", "spin")


STATE_KEYS = CHARGE_KEYS + MULTIPLICITY_KEYS


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not a bool, not an array, not text), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return float(value)
    return None


def id_text(value: Any) -> str | None:
    text = str(value).strip().strip("\"'")
    return text or None


@dataclass
class Collected:
    """Molecules parsed so far, one list entry per molecule (packed once at the end)."""

    mol_id: list[str] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    z: list[np.ndarray] = field(default_factory=list)
    pos: list[np.ndarray] = field(default_factory=list)
    props: list[dict[str, float]] = field(default_factory=list)
    charge: list[int] = field(default_factory=list)
    multiplicity: list[int] = field(default_factory=list)  # 0: not stated
    #: [b, 3] bonds (pipeline.data.sources.bonds) where the file gives them (sdf), else None
    bonds: list[np.ndarray | None] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def add(
        self,
        origin: str,
        index: int,
        mol_id: str,
        z: np.ndarray,
        pos: np.ndarray,
        props: dict,
        charge: int = 0,
        multiplicity: int = 0,
        bonds: np.ndarray | None = None,
    ) -> None:
        self.mol_id.append(mol_id)
        self.origin.append(origin)
        self.index.append(index)
        self.z.append(np.asarray(z, dtype=np.int64))
        self.pos.append(np.asarray(pos, dtype=np.float64).reshape(-1, 3))
        self.props.append(props)
        self.charge.append(int(charge))
        self.multiplicity.append(int(multiplicity))
        self.bonds.append(bonds)

    def truncate(self, n_molecules: int, n_rejects: int) -> None:
        """Forget everything added after the first ``n_molecules`` molecules and ``n_rejects`` rejects."""
        for name in ("mol_id", "origin", "index", "z", "pos", "props", "charge", "multiplicity", "bonds"):
            del getattr(self, name)[n_molecules:]
        del self.rejects[n_rejects:]

    def reject(self, origin: str, index: int, mol_id: str | None, reason: str) -> None:
        self.rejects.append(Reject(origin, index, mol_id, reason))


def check_z(z: np.ndarray, symbols: Callable[[], Sequence[str]]) -> None:
    """Raise UnknownElement unless every atomic number is a real element (dummy atoms 'X' are not)."""
    if len(z) and (z.min() < 1 or z.max() > 118):
        symbols_to_z(symbols())  # raises with the symbol and the atom index
        raise UnknownElement(f"atomic number {int(z.min() if z.min() < 1 else z.max())} is not an element")


def _whole(value: Any) -> int | None:
    """``value`` as an int if it is a whole number (``1``, ``-1.0``), else None."""
    number = as_number(value)
    if number is None or not np.isfinite(number) or number != round(number):
        return None
    return int(round(number))


def _shown(value: Any) -> str:
    """A value as the file wrote it (``0.5``, not ``np.float64(0.5)``)."""
    return str(value.item() if isinstance(value, np.generic) else value)


def state_of(values: dict[str, Any]) -> tuple[int, int, str | None]:
    """(charge, multiplicity or 0 if not stated, problem or None) from info keys / key-value pairs."""
    charge, multiplicity = 0, 0
    key = next((k for k in CHARGE_KEYS if k in values), None)
    if key is not None:
        charge = _whole(values[key])
        if charge is None:
            return 0, 0, f"{key}={_shown(values[key])} is not a whole number of elementary charges"
    key = next((k for k in MULTIPLICITY_KEYS if k in values), None)
    if key is not None:
        multiplicity = _whole(values[key])
        if multiplicity is None or multiplicity < 1:
            reason = f"{key}={_shown(values[key])} is not a spin multiplicity 2S + 1 (a whole number >= 1)"
            return 0, 0, reason
    return charge, multiplicity, None


def _atoms_properties(atoms: Any) -> tuple[dict[str, float], str | None]:
    """Numeric info entries and scalar calculator results of an ASE Atoms, and its id if it has one
    (charge and multiplicity keys are not properties: :func:`state_of` reads them)."""
    props: dict[str, float] = {}
    calc = getattr(atoms, "calc", None)
    results = getattr(calc, "results", None) or {}
    for key, value in results.items():
        number = as_number(value)
        if number is not None:
            props[key] = number
    mol_id = None
    for key in ID_KEYS:
        if key in atoms.info and mol_id is None:
            mol_id = id_text(atoms.info[key])
    for key, value in atoms.info.items():
        if key in ID_KEYS or key in STATE_KEYS:
            continue
        number = as_number(value)
        if number is not None:
            props[key] = number
    return props, mol_id


def _text_target(info: dict[str, Any]) -> str | None:
    """Why a structure's info is refused: a key named like a canonical target (``homo``, ``u0``, ...)
    whose value is not a number (``homo=abc``); None if there is none. Other text-valued keys are
    descriptions, not properties, and are left out quietly."""
    for key, value in info.items():
        if key in TARGETS and as_number(value) is None:
            return f"{key}={_shown(value)} is not a number (a property named like a target must be one)"
    return None


def add_atoms(out: Collected, origin: str, index: int, stem: str, atoms: Any, where: str) -> None:
    props, mol_id = _atoms_properties(atoms)
    mol_id = mol_id or f"{stem}-{index}"
    if len(atoms) == 0:
        out.reject(origin, index, mol_id, f"{where}: molecule has no atoms")
        return
    z = np.asarray(atoms.numbers, dtype=np.int64)
    try:
        check_z(z, atoms.get_chemical_symbols)
    except UnknownElement as error:
        out.reject(origin, index, mol_id, f"{where}: {error}")
        return
    charge, multiplicity, problem = state_of(atoms.info)
    problem = problem or _text_target(atoms.info)
    problem = problem or periodic(atoms.pbc, np.linalg.norm(np.asarray(atoms.cell), axis=1))
    if problem is not None:
        out.reject(origin, index, mol_id, f"{where}: {problem}")
        return
    out.add(origin, index, mol_id, z, atoms.positions, props, charge, multiplicity)


#: Cell lengths (Å) up to this are no cell (:func:`periodic`).
_NO_CELL = 1.001


def periodic(pbc: Any, lengths: np.ndarray) -> str | None:
    """Why a structure with periodic boundary conditions (``pbc`` true along any axis; extxyz's
    ``Lattice`` with ``pbc`` left out is periodic) is no molecule, or None: featurised as a molecule
    its cell would be dropped and the atoms across its faces would not see each other. An axis of
    1 Å or less is no cell: PDB's ``CRYST1 1 1 1`` is its placeholder for "not a crystal", which ASE
    reads as periodic."""
    flags = np.asarray(pbc, dtype=bool).reshape(-1)
    axes = [axis for axis, on, length in zip("abc", flags, lengths, strict=False) if on and length > _NO_CELL]
    if not axes:
        return None
    cell = " x ".join(f"{length:g}" for length in lengths)
    return (
        f"periodic structure (pbc along {', '.join(axes)}; cell {cell} Å): a crystal or slab, not a "
        'molecule, and its cell would be dropped (pbc="F F F" if it is a molecule in a box)'
    )


def symbols_of(z: np.ndarray) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[n] if 0 <= n < len(chemical_symbols) else f"#{n}" for n in z]
