"""Molecules from structure files: xyz/extxyz, sdf/mol, ASE databases, and anything else ASE reads.

Every input is a file or a directory (every file in it with a known extension, sorted by name; the
other files of a directory are logged and listed as rejects, "skipped: ..."). Files are parsed whole in
:meth:`FilesSource.catalogue` (reading structure files is I/O-bound and cheap next to featurisation);
:meth:`FilesSource.materialise` only gathers the requested rows.

A problem with one molecule never loses the others: each bad frame or record becomes a
:class:`~pipeline.data.sources.base.Reject` naming the file and the 0-based position of the molecule in it
(and its id, from the file or the automatic one), and a file that cannot be read at all becomes a
reject with index -1 (a binary file where text is expected: "not a text file (binary content)").
Coordinates are kept in Å as read; properties (numeric extxyz info keys, calculator energies, numeric
SDF tags, numeric ASE db key-value pairs) are kept under the names the file gives them, in the units
the file gives them.

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

import bz2
import gzip
import io
import logging
import lzma
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.sources.base import (
    DEFAULT_FRAGMENTS,
    FRAGMENT_POLICIES,
    Catalogue,
    Molecules,
    Reject,
    UnknownElement,
    symbols_to_z,
)

log = logging.getLogger(__name__)

#: Property keys that name the molecule instead of describing it (first one present wins).
ID_KEYS = ("mol_id", "id")
#: Info keys (extxyz, ASE) / key-value pairs (ASE db) of the net charge, and of the multiplicity 2S + 1
#: (first one present wins). They describe the species, so they are never properties.
CHARGE_KEYS = ("charge",)
MULTIPLICITY_KEYS = ("multiplicity", "spin")
STATE_KEYS = CHARGE_KEYS + MULTIPLICITY_KEYS

XYZ_SUFFIXES = frozenset({".xyz", ".extxyz"})
SDF_SUFFIXES = frozenset({".sdf", ".sd", ".mol"})
DB_SUFFIXES = frozenset({".db"})
#: Other structure formats taken from a directory; any file named explicitly is tried with ASE.
ASE_SUFFIXES = frozenset({".traj", ".cif", ".pdb", ".gro", ".g96", ".cjson", ".poscar"})
KNOWN_SUFFIXES = XYZ_SUFFIXES | SDF_SUFFIXES | DB_SUFFIXES | ASE_SUFFIXES
#: Formats that are text files (checked for binary content before parsing); .db and .traj are binary.
TEXT_SUFFIXES = XYZ_SUFFIXES | SDF_SUFFIXES | frozenset({".cif", ".pdb", ".gro", ".g96", ".cjson", ".poscar"})
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
#: Bytes read to decide whether a file is text.
_SNIFF_BYTES = 65536

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
    """Files named by ``inputs``: directories become their files with a known suffix, sorted by name.

    The other files of a directory (hidden ones aside) are skipped loudly: a warning, and a reject
    (index -1) each, so that a file with a mistyped extension does not vanish unnoticed.
    """
    files: list[Path] = []
    rejects: list[Reject] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            visible = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            found = [p for p in visible if _split_suffix(p)[0] in suffixes]
            skipped = [p for p in visible if _split_suffix(p)[0] not in suffixes]
            if skipped:
                log.warning(
                    "%s: skipped %d files of a type this source does not read: %s",
                    path,
                    len(skipped),
                    ", ".join(p.name for p in skipped[:10]) + (", ..." if len(skipped) > 10 else ""),
                )
            for p in skipped:
                kind = _split_suffix(p)[0] or "no extension"
                reason = (
                    f"skipped: not a molecule file ({kind!r}); in a directory only "
                    f"{', '.join(sorted(suffixes))} files are read (name a file explicitly to try it)"
                )
                rejects.append(Reject(str(p), -1, None, reason))
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


def _looks_binary(sample: bytes) -> bool:
    """Whether ``sample`` (a file's first bytes) is binary: a NUL byte, or over 10 % of characters that
    are neither printable nor whitespace once decoded as UTF-8 (undecodable bytes count as such)."""
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    text = sample.decode("utf-8", errors="replace")
    odd = sum(1 for c in text if c == "\ufffd" or (not c.isprintable() and c not in "\t\n\r\f\v"))
    return odd > 0.1 * len(text)


def not_text(path: Path, compression: str | None = None) -> str | None:
    """Why ``path`` cannot be read as a text file (binary content, a broken compressed file), or None.

    The reason is readable: it never quotes the file's bytes.
    """
    opener = _OPENERS[compression] if compression else open
    try:
        with opener(path, "rb") as handle:
            sample = handle.read(_SNIFF_BYTES)
    except (OSError, EOFError, lzma.LZMAError) as error:  # gzip.BadGzipFile is an OSError
        if compression is None:
            return f"could not read the file: {type(error).__name__}: {error.strerror or 'I/O error'}"
        return f"not a valid {compression} file (damaged, or not compressed with {compression.lstrip('.')})"
    if _looks_binary(sample):
        return "not a text file (binary content)"
    return None


def file_labels(files: Sequence[Path]) -> list[str]:
    """What the automatic ids of each file start with (module doc): its stem, unless another file has
    the same stem; then its path (without the structure suffix) relative to the colliding files'
    common folder; and its path with the full file name where even that is shared."""
    stems = [_split_suffix(f)[2] for f in files]
    where = [Path(os.path.abspath(f)) for f in files]
    by_stem: dict[str, set[Path]] = {}
    for stem, path in zip(stems, where, strict=True):
        by_stem.setdefault(stem, set()).add(path)
    labels = []
    for stem, path in zip(stems, where, strict=True):
        clash = by_stem[stem]
        if len(clash) == 1:  # one file (perhaps named twice: its molecules are duplicates, rightly)
            labels.append(stem)
            continue
        root = Path(os.path.commonpath([p.parent for p in clash]))
        short = {p: (p.parent / _split_suffix(p)[2]).relative_to(root).as_posix() for p in clash}
        if len(set(short.values())) < len(clash):
            short = {p: p.relative_to(root).as_posix() for p in clash}
        labels.append(short[path])
    return labels


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
    charge: list[int] = field(default_factory=list)
    multiplicity: list[int] = field(default_factory=list)  # 0: not stated
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
    ) -> None:
        self.mol_id.append(mol_id)
        self.origin.append(origin)
        self.index.append(index)
        self.z.append(np.asarray(z, dtype=np.int64))
        self.pos.append(np.asarray(pos, dtype=np.float64).reshape(-1, 3))
        self.props.append(props)
        self.charge.append(int(charge))
        self.multiplicity.append(int(multiplicity))

    def truncate(self, n_molecules: int, n_rejects: int) -> None:
        """Forget everything added after the first ``n_molecules`` molecules and ``n_rejects`` rejects."""
        for name in ("mol_id", "origin", "index", "z", "pos", "props", "charge", "multiplicity"):
            del getattr(self, name)[n_molecules:]
        del self.rejects[n_rejects:]

    def reject(self, origin: str, index: int, mol_id: str | None, reason: str) -> None:
        self.rejects.append(Reject(origin, index, mol_id, reason))


def _check_z(z: np.ndarray, symbols: Callable[[], Sequence[str]]) -> None:
    """Raise UnknownElement unless every atomic number is a real element (dummy atoms 'X' are not)."""
    if len(z) and (z.min() < 1 or z.max() > 118):
        symbols_to_z(symbols())  # raises with the symbol and the atom index
        raise UnknownElement(f"atomic number {int(z.min() if z.min() < 1 else z.max())} is not an element")


def _whole(value: Any) -> int | None:
    """``value`` as an int if it is a whole number (``1``, ``-1.0``), else None."""
    number = _number(value)
    if number is None or not np.isfinite(number) or number != round(number):
        return None
    return int(round(number))


def _shown(value: Any) -> str:
    """A value as the file wrote it (``0.5``, not ``np.float64(0.5)``)."""
    return str(value.item() if isinstance(value, np.generic) else value)


def _state(values: dict[str, Any]) -> tuple[int, int, str | None]:
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
    (charge and multiplicity keys are not properties: :func:`_state` reads them)."""
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
        if key in ID_KEYS or key in STATE_KEYS:
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
    charge, multiplicity, problem = _state(atoms.info)
    if problem is not None:
        out.reject(origin, index, mol_id, f"{where}: {problem}")
        return
    out.add(origin, index, mol_id, z, atoms.positions, props, charge, multiplicity)


# ----------------------------------------------------------------------------------------------------
# sdf / mol (RDKit, unsanitised: the geometry is what matters, not valence rules)


def _sdf_header_dimension(mol: Any) -> str:
    info = mol.GetProp("_MolFileInfo") if mol.HasProp("_MolFileInfo") else ""
    return info[20:22]


def _read_sdf(path: Path, compression: str | None, stem: str, out: _Collected, fragments: str) -> None:
    from rdkit import Chem

    origin = str(path)
    if compression:  # random access (GetItemText for a failed record's name) needs the whole text
        supplier = Chem.SDMolSupplier()
        supplier.SetData(_read_text(path, compression), sanitize=False, removeHs=False)
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
        if tag and tag.group(1).strip() in ID_KEYS and _id_text(lines[k + 1]):
            return _id_text(lines[k + 1])
    title = _id_text(lines[0]) if lines else None
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


def _add_rdkit_record(out: _Collected, origin: str, index: int, stem: str, mol: Any, fragments: str) -> None:
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
    out.add(origin, index, mol_id, z, mol.GetConformer().GetPositions(), props, charge, multiplicity)


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
            numbers = {k: _number(v) for k, v in kv.items() if k not in ID_KEYS and k not in STATE_KEYS}
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
        charge, multiplicity, problem = _state(kv)
        if len(z) == 0:
            out.reject(origin, index, mol_id, f"{where}: molecule has no atoms")
        elif problem is not None:
            out.reject(origin, index, mol_id, f"{where}: {problem}")
        else:
            try:
                _check_z(z, partial(_symbols_of, z))
            except UnknownElement as error:
                out.reject(origin, index, mol_id, f"{where}: {error}")
            else:
                out.add(origin, index, mol_id, z, pos, props, charge, multiplicity)
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
    if isinstance(error, UnicodeDecodeError):
        return "not a text file (binary content, or text that is not UTF-8)"
    message = "".join(c if c.isprintable() else "?" for c in " ".join(str(error).split()))
    return f"could not read the file: {type(error).__name__}: {message}"


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
        out = _Collected(rejects=rejects)
        for path, label in zip(files, file_labels(files), strict=True):
            suffix, compression, _ = _split_suffix(path)
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
                    _read_xyz(path, compression, label, out)
                elif suffix in SDF_SUFFIXES:
                    _read_sdf(path, compression, label, out, self.fragments)
                elif suffix in DB_SUFFIXES and compression is None:
                    _read_db(path, label, out)
                else:
                    _read_ase(path, label, out)
            except Exception as error:
                out.truncate(n_before, n_rejects_before)
                out.reject(str(path), -1, None, _unreadable(path, error))
                continue
            if len(out.mol_id) == n_before and len(out.rejects) == n_rejects_before:
                out.reject(str(path), -1, None, "file holds no molecules")
            log.info("%s: %d molecules", path, len(out.mol_id) - n_before)
        packed = Molecules.from_lists(
            out.mol_id, out.z, out.pos, out.props, out.origin, out.index, out.charge, out.multiplicity
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
    "CaptureRDKit",
    "FilesSource",
    "expand_inputs",
    "file_labels",
    "not_text",
    "rdkit_messages",
]
