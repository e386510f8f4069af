"""Molecules from structure files: xyz/extxyz, sdf/mol, ASE databases, and anything else ASE reads.

Every input is a file or a directory (every file in it with a known extension, sorted by name). Files
are parsed whole in :meth:`FilesSource.catalogue` (reading structure files is I/O-bound and cheap next
to featurisation); :meth:`FilesSource.materialise` only gathers the requested rows.

A problem with one molecule never loses the others: each bad frame or record becomes a
:class:`~pipeline.sources.base.Reject` naming the file and the 0-based position of the molecule in it,
and a file that cannot be read at all becomes a reject with index -1. Coordinates are kept in Å as
read; properties (numeric extxyz info keys, calculator energies, numeric SDF tags, numeric ASE db
key-value pairs) are kept under the names the file gives them, in the units the file gives them.
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .base import Catalogue, Molecules, Reject, UnknownElement, symbols_to_z

log = logging.getLogger(__name__)

#: Property keys that name the molecule instead of describing it (first one present wins).
ID_KEYS = ("mol_id", "id")

XYZ_SUFFIXES = frozenset({".xyz", ".extxyz"})
SDF_SUFFIXES = frozenset({".sdf", ".sd", ".mol"})
DB_SUFFIXES = frozenset({".db"})
#: Other structure formats taken from a directory; any file named explicitly is tried with ASE.
ASE_SUFFIXES = frozenset({".traj", ".cif", ".pdb", ".gro", ".g96", ".cjson", ".poscar"})
KNOWN_SUFFIXES = XYZ_SUFFIXES | SDF_SUFFIXES | DB_SUFFIXES | ASE_SUFFIXES
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}

_ID_IN_COMMENT = re.compile(r"""(?:^|\s)(mol_id|id)\s*=\s*("[^"]*"|'[^']*'|\S+)""")
_RDKIT_NOISE = re.compile(
    r"^(\*+|-+|\d+# .*|Stacktrace:|Post-condition Violation|Pre-condition Violation|Violation occurred .*"
    r"|Failed Expression: .*|ERROR: moving to the beginning of the next molecule)$"
)


class AsGivenUnits(dict):
    """Units of a user-supplied source: every property is in whatever unit the input file uses."""

    AS_GIVEN = "as given"

    def __missing__(self, key: str) -> str:
        return self.AS_GIVEN

    def get(self, key: str, default: Any = None) -> str:
        return self.AS_GIVEN if key not in self else super().get(key)


def _split_suffix(path: Path) -> tuple[str, str | None, str]:
    """(structure suffix, compression suffix or None, stem without either), all suffixes lower-case."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes[-1] if suffixes and suffixes[-1] in _OPENERS else None
    name = path.name[: -len(compression)] if compression else path.name
    inner = Path(name)
    return inner.suffix.lower(), compression, inner.stem


def expand_inputs(inputs: Sequence[Path | str], suffixes: frozenset[str]) -> tuple[list[Path], list[Reject]]:
    """Files named by ``inputs``: directories become their files with a known suffix, sorted by name."""
    files: list[Path] = []
    rejects: list[Reject] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and _split_suffix(p)[0] in suffixes
            )
            if not found:
                rejects.append(
                    Reject(
                        str(path),
                        -1,
                        None,
                        f"directory holds no molecule files (looked for {', '.join(sorted(suffixes))})",
                    )
                )
            files.extend(found)
        elif not path.exists():
            rejects.append(Reject(str(path), -1, None, "file does not exist"))
        else:
            files.append(path)
    return files, rejects


def rdkit_messages(text: str) -> str:
    """RDKit's log output reduced to its error lines (no timestamps, stack traces or boilerplate)."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"^\[\d\d:\d\d:\d\d\]\s*", "", line).strip()
        if line and not _RDKIT_NOISE.match(line) and line not in lines:
            lines.append(line)
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    message = "; ".join(errors or lines)
    return message if len(message) <= 300 else message[:297] + "..."


class CaptureRDKit:
    """Collect RDKit's log messages for one call (older RDKit without CaptureErrorLog: silenced only)."""

    def __init__(self) -> None:
        from rdkit import rdBase

        capture = getattr(rdBase, "CaptureErrorLog", None)
        self._inner = capture() if capture is not None else rdBase.BlockLogs()
        self.text = ""

    def __enter__(self) -> CaptureRDKit:
        if hasattr(self._inner, "__enter__"):
            self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if hasattr(self._inner, "__exit__"):
            self._inner.__exit__(*exc)
        self.text = str(getattr(self._inner, "messages", "") or "")


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not a bool, not an array, not text), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return float(value)
    return None


def _id_text(value: Any) -> str | None:
    text = str(value).strip().strip("\"'")
    return text or None


@dataclass
class _Collected:
    """Molecules parsed so far, one list entry per molecule (packed once at the end)."""

    mol_id: list[str] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    z: list[np.ndarray] = field(default_factory=list)
    pos: list[np.ndarray] = field(default_factory=list)
    props: list[dict[str, float]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def add(self, origin: str, index: int, mol_id: str, z: np.ndarray, pos: np.ndarray, props: dict) -> None:
        self.mol_id.append(mol_id)
        self.origin.append(origin)
        self.index.append(index)
        self.z.append(np.asarray(z, dtype=np.int64))
        self.pos.append(np.asarray(pos, dtype=np.float64).reshape(-1, 3))
        self.props.append(props)

    def reject(self, origin: str, index: int, mol_id: str | None, reason: str) -> None:
        self.rejects.append(Reject(origin, index, mol_id, reason))


def _check_z(z: np.ndarray, symbols: Callable[[], Sequence[str]]) -> None:
    """Raise UnknownElement unless every atomic number is a real element (dummy atoms 'X' are not)."""
    if len(z) and (z.min() < 1 or z.max() > 118):
        symbols_to_z(symbols())  # raises with the symbol and the atom index
        raise UnknownElement(f"atomic number {int(z.min() if z.min() < 1 else z.max())} is not an element")


def _atoms_properties(atoms: Any) -> tuple[dict[str, float], str | None]:
    """Numeric info entries and scalar calculator results of an ASE Atoms, and its id if it has one."""
    props: dict[str, float] = {}
    calc = getattr(atoms, "calc", None)
    results = getattr(calc, "results", None) or {}
    for key, value in results.items():
        number = _number(value)
        if number is not None:
            props[key] = number
    mol_id = None
    for key in ID_KEYS:
        if key in atoms.info and mol_id is None:
            mol_id = _id_text(atoms.info[key])
    for key, value in atoms.info.items():
        if key in ID_KEYS:
            continue
        number = _number(value)
        if number is not None:
            props[key] = number
    return props, mol_id


# ----------------------------------------------------------------------------------------------------
# xyz / extxyz: frames split here, each parsed by ASE, so that one bad frame loses only itself


def _count(line: str) -> int | None:
    """The atom count if ``line`` is an xyz count line (one non-negative integer), else None."""
    text = line.strip()
    return int(text) if text.isdigit() else None


def _is_atom_line(line: str) -> bool:
    return len(line.split()) >= 4


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _frame_id(comment: str) -> str | None:
    found = dict(m.groups() for m in _ID_IN_COMMENT.finditer(comment))
    for key in ID_KEYS:
        if key in found:
            return _id_text(found[key])
    return None


def _diagnose_frame(lines: list[str], first_line: int) -> str | None:
    """Why the atom lines of a frame cannot be parsed, found by reading them (None: no idea)."""
    for k, line in enumerate(lines[2:]):
        tokens = line.split()
        where = f"atom {k} (line {first_line + 2 + k + 1})"
        try:
            symbols_to_z([tokens[0]])
        except UnknownElement:
            if not tokens[0].isdigit():
                return f"unknown element symbol {tokens[0]!r} at {where}"
        for token in tokens[1:4]:
            if not _is_float(token):
                return f"non-numeric coordinate {token!r} at {where}"
    return None


def _numbers_to_symbols(lines: list[str]) -> list[str] | None:
    """Frame lines with atomic numbers in the species column (some plain xyz writers) made symbols."""
    from ase.data import chemical_symbols

    out = lines[:2]
    for line in lines[2:]:
        species, rest = (line.split(None, 1) + [""])[:2]
        if not species.isdigit() or not 1 <= int(species) < len(chemical_symbols):
            return None
        out.append(f"{chemical_symbols[int(species)]} {rest}")
    return out


def _parse_xyz_frame(lines: list[str], first_line: int) -> tuple[Any, str | None]:
    """(ASE Atoms, None) or (None, reason) for the lines of one frame (count, comment, atom lines)."""
    import ase.io

    try:
        return ase.io.read(io.StringIO("\n".join(lines) + "\n"), format="extxyz"), None
    except Exception as error:
        renamed = _numbers_to_symbols(lines)
        if renamed is not None:
            try:
                return ase.io.read(io.StringIO("\n".join(renamed) + "\n"), format="extxyz"), None
            except Exception:
                pass
        reason = _diagnose_frame(lines, first_line)
        return None, reason or f"ASE could not parse the frame: {type(error).__name__}: {error}"


def _parse_plain_frame(lines: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(z, pos) of a plain xyz frame (comment without key=value pairs), or None to let ASE decide.

    ASE would give the same atoms and nothing numeric from such a comment line, only ~10x slower.
    """
    if "=" in lines[1]:
        return None
    rows = [line.split() for line in lines[2:]]
    try:
        z = symbols_to_z([row[0] for row in rows])
        pos = np.array([row[1:4] for row in rows], dtype=np.float64).reshape(-1, 3)
    except ValueError:  # UnknownElement is a ValueError too: ASE's path diagnoses both
        return None
    return z, pos


def _read_text(path: Path, compression: str | None) -> str:
    opener = _OPENERS.get(compression, open) if compression else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        return handle.read()


def _xyz_frames(lines: list[str]) -> Iterator[tuple[int, int, list[str] | None, str | None]]:
    """Split xyz text into frames: yields (frame index, first line, frame lines or None, problem or None).

    After a frame whose count line disagrees with its atom lines, reading resumes at the next count
    line, so later frames are kept. A count line that is not an integer ends the file (nothing after
    it can be trusted); so does a truncated last frame.
    """
    n_lines = len(lines)
    i = frame = 0
    while i < n_lines:
        if not lines[i].strip():
            i += 1
            continue
        count = _count(lines[i])
        if count is None:
            yield (
                frame,
                i,
                None,
                f"expected an atom count (one integer) but found {lines[i].strip()[:60]!r}; "
                "the rest of the file cannot be read",
            )
            return
        body = i + 2
        atom_lines = lines[body : body + count]
        bad = next((k for k, line in enumerate(atom_lines) if not _is_atom_line(line)), None)
        if bad is not None and not any(line.strip() for line in lines[body + bad :]):
            atom_lines, bad = atom_lines[:bad], None  # only blank lines left: a truncated last frame
        if bad is not None:
            resume = next((j for j in range(body + bad, n_lines) if _count(lines[j]) is not None), n_lines)
            yield (
                frame,
                i,
                None,
                f"count line says {count} atoms but frame has {bad} atom lines "
                f"(line {body + bad + 1} is {lines[body + bad].strip()[:60]!r})",
            )
            i, frame = resume, frame + 1
            continue
        if len(atom_lines) < count:
            yield (
                frame,
                i,
                None,
                f"truncated frame: count line says {count} atoms but the file ends after "
                f"{len(atom_lines)} atom lines",
            )
            return
        end = body + count
        extra = 0
        while end + extra < n_lines and _count(lines[end + extra]) is None:
            if not _is_atom_line(lines[end + extra]):
                break
            extra += 1
        if extra:
            yield frame, i, None, f"count line says {count} atoms but frame has {count + extra} atom lines"
            i, frame = end + extra, frame + 1
            continue
        yield frame, i, lines[i:end], None
        i, frame = end, frame + 1


def _read_xyz(path: Path, compression: str | None, stem: str, out: _Collected) -> None:
    origin = str(path)
    lines = _read_text(path, compression).splitlines()
    for frame, first, frame_lines, problem in _xyz_frames(lines):
        comment = lines[first + 1] if first + 1 < len(lines) else ""
        default_id = _frame_id(comment) or f"{stem}-{frame}"
        if problem is not None:
            out.reject(origin, frame, default_id, f"frame {frame} (line {first + 1}): {problem}")
            continue
        plain = _parse_plain_frame(frame_lines)
        if plain is not None and len(plain[0]):
            out.add(origin, frame, default_id, plain[0], plain[1], {})
            continue
        atoms, problem = _parse_xyz_frame(frame_lines, first)
        if atoms is None:
            out.reject(origin, frame, default_id, f"frame {frame} (line {first + 1}): {problem}")
            continue
        _add_atoms(out, origin, frame, stem, atoms, where=f"frame {frame} (line {first + 1})")


def _add_atoms(out: _Collected, origin: str, index: int, stem: str, atoms: Any, where: str) -> None:
    props, mol_id = _atoms_properties(atoms)
    mol_id = mol_id or f"{stem}-{index}"
    if len(atoms) == 0:
        out.reject(origin, index, mol_id, f"{where}: molecule has no atoms")
        return
    z = np.asarray(atoms.numbers, dtype=np.int64)
    try:
        _check_z(z, atoms.get_chemical_symbols)
    except UnknownElement as error:
        out.reject(origin, index, mol_id, f"{where}: {error}")
        return
    out.add(origin, index, mol_id, z, atoms.positions, props)


# ----------------------------------------------------------------------------------------------------
# sdf / mol (RDKit, unsanitised: the geometry is what matters, not valence rules)


def _sdf_header_dimension(mol: Any) -> str:
    info = mol.GetProp("_MolFileInfo") if mol.HasProp("_MolFileInfo") else ""
    return info[20:22]


def _read_sdf(path: Path, compression: str | None, stem: str, out: _Collected) -> None:
    from rdkit import Chem

    origin = str(path)
    if compression:
        handle = _OPENERS[compression](path, "rb")
        supplier = Chem.ForwardSDMolSupplier(handle, sanitize=False, removeHs=False)
    else:
        handle = None
        supplier = Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)
    try:
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
                    out.reject(origin, index, None, reason)
                    break
            if mol is None:
                detail = rdkit_messages(capture.text)
                reason = f"record {index}: RDKit could not read the record"
                reason += f" ({detail})" if detail else ""
                out.reject(origin, index, None, reason)
            else:
                _add_rdkit_record(out, origin, index, stem, mol)
            index += 1
    finally:
        if handle is not None:
            handle.close()


def _add_rdkit_record(out: _Collected, origin: str, index: int, stem: str, mol: Any) -> None:
    props: dict[str, float] = {}
    tags: dict[str, str] = {name: mol.GetProp(name) for name in mol.GetPropNames()}
    mol_id = next((_id_text(tags[k]) for k in ID_KEYS if k in tags and _id_text(tags[k])), None)
    if mol_id is None and mol.HasProp("_Name"):
        mol_id = _id_text(mol.GetProp("_Name"))
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
        _check_z(z, lambda: [a.GetSymbol() for a in mol.GetAtoms()])
    except UnknownElement as error:
        out.reject(origin, index, mol_id, f"{where}: {error}")
        return
    out.add(origin, index, mol_id, z, conformer.GetPositions(), props)


# ----------------------------------------------------------------------------------------------------
# ASE databases and every other format ASE reads


def _symbols_of(z: np.ndarray) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[n] if 0 <= n < len(chemical_symbols) else f"#{n}" for n in z]


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


def _read_db(path: Path, stem: str, out: _Collected) -> None:
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
            mol_id = next((_id_text(kv[k]) for k in ID_KEYS if k in kv and _id_text(kv[k])), None)
            mol_id = mol_id or f"{stem}-{index}"
            numbers = {k: _number(v) for k, v in kv.items() if k not in ID_KEYS}
            props = {k: v for k, v in numbers.items() if v is not None}
            for key in ("energy", "free_energy"):
                number = _number(row.get(key))
                if number is not None and key not in props:
                    props[key] = number
            z = np.asarray(row.numbers, dtype=np.int64)
            pos = np.asarray(row.positions, dtype=np.float64)
        except Exception as error:
            out.reject(origin, index, None, f"{where}: could not read the row: {error}")
            index += 1
            continue
        if len(z) == 0:
            out.reject(origin, index, mol_id, f"{where}: molecule has no atoms")
        else:
            try:
                _check_z(z, partial(_symbols_of, z))
            except UnknownElement as error:
                out.reject(origin, index, mol_id, f"{where}: {error}")
            else:
                out.add(origin, index, mol_id, z, pos, props)
        index += 1


def _read_ase(path: Path, stem: str, out: _Collected) -> None:
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
        _add_atoms(out, origin, index, stem, atoms, where=f"molecule {index}")
        index += 1


def _unreadable(path: Path, error: Exception) -> str:
    if type(error).__name__ == "UnknownFileTypeError":
        return f"unrecognised file format {''.join(path.suffixes) or path.name!r}: ASE cannot read it"
    return f"could not read the file: {type(error).__name__}: {error}"


class FilesSource:
    """Molecules from structure files (xyz, extxyz, sdf, mol, ASE db, and any format ASE reads)."""

    name = "files"
    units: dict[str, str] = AsGivenUnits()

    def catalogue(self, inputs: Sequence[Path]) -> Catalogue:
        files, rejects = expand_inputs(inputs, KNOWN_SUFFIXES)
        out = _Collected(rejects=rejects)
        for path in files:
            suffix, compression, stem = _split_suffix(path)
            if path.stat().st_size == 0:
                out.reject(str(path), -1, None, "file is empty")
                continue
            n_before, n_rejects_before = len(out.mol_id), len(out.rejects)
            try:
                if suffix in XYZ_SUFFIXES:
                    _read_xyz(path, compression, stem, out)
                elif suffix in SDF_SUFFIXES:
                    _read_sdf(path, compression, stem, out)
                elif suffix in DB_SUFFIXES and compression is None:
                    _read_db(path, stem, out)
                else:
                    _read_ase(path, stem, out)
            except Exception as error:
                del out.mol_id[n_before:], out.origin[n_before:], out.index[n_before:]
                del out.z[n_before:], out.pos[n_before:], out.props[n_before:], out.rejects[n_rejects_before:]
                out.reject(str(path), -1, None, _unreadable(path, error))
                continue
            if len(out.mol_id) == n_before and len(out.rejects) == n_rejects_before:
                out.reject(str(path), -1, None, "file holds no molecules")
            log.info("%s: %d molecules", path, len(out.mol_id) - n_before)
        packed = Molecules.from_lists(out.mol_id, out.z, out.pos, out.props, out.origin, out.index)
        entries = pd.DataFrame(
            {"mol_id": packed.mol_id, "origin": packed.origin, "index": packed.index}
        ).astype({"index": np.int64})
        return Catalogue(entries=entries, payload=packed, rejects=out.rejects)

    def materialise(
        self, catalogue: Catalogue, rows: np.ndarray, seed: int
    ) -> tuple[Molecules, list[Reject]]:
        return catalogue.payload.take_rows(rows), []


__all__ = ["AsGivenUnits", "CaptureRDKit", "FilesSource", "expand_inputs", "rdkit_messages"]
