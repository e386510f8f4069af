"""What every molecule source hands to the featuriser.

A source works in two steps so that large inputs can be split into shard jobs:

1. ``catalogue(inputs)`` lists every molecule of the inputs, cheaply, in input order: its id, where
   it came from, and whatever the source needs to build it later (``payload``). Failures that affect
   a whole input or a whole record (unreadable file, truncated frame) are reported here as rejects.
2. ``materialise(catalogue, rows, seed)`` builds the molecules at the given catalogue rows (atomic
   numbers, coordinates in Å, properties in canonical units) and reports the ones it cannot build.

Checks that are the same for every source (non-finite coordinates, atoms closer than 0.1 Å,
duplicate ids, atomic numbers outside the periodic table, a charge or multiplicity the electron count
cannot have) live in :mod:`pipeline.data.featurise`, not here.

Each molecule carries its net charge and, where the source states it, its spin multiplicity
(:attr:`Molecules.charge`, :attr:`Molecules.multiplicity`; 0 = not stated). Multi-fragment records
(salts, hydrates) are handled by the source as :data:`FRAGMENT_POLICIES` say.

The readers shared by the file-based sources (structure files, SMILES tables) live here too: input
files and folders expanded (:func:`expand_inputs`), compressed and binary files recognised
(:func:`not_text`, :func:`read_text`), RDKit's messages captured per molecule (:class:`CaptureRDKit`),
and properties kept in the units a file gives (:class:`AsGivenUnits`).
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import gzip
import io
import logging
import lzma
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from ase.data import atomic_numbers

log = logging.getLogger(__name__)

#: What a source does with a record of several disconnected fragments (a salt ``C[NH3+].[Cl-]``, a
#: hydrate ``CCO.O``), the dataset setting ``fragments``. ``largest``: keep the largest fragment,
#: preferring organic ones (RDKit's ``LargestFragmentChooser(preferOrganic=True)``), with that
#: fragment's charge; ``reject``: reject the record, naming its fragments. Several fragments are never
#: kept together: a conformer generator stacks them on top of each other.
FRAGMENT_POLICIES = ("largest", "reject")
DEFAULT_FRAGMENTS = "largest"


@dataclass(frozen=True)
class Reject:
    """A molecule (or a whole input) that could not be featurised, with a reason a person understands."""

    origin: str  # input file path, or the dataset name for packaged data
    index: int  # 0-based position of the molecule in its origin (-1: the whole input)
    mol_id: str | None
    reason: str


@dataclass
class Catalogue:
    """Every molecule the inputs hold, in input order (one row of ``entries`` per molecule)."""

    entries: pd.DataFrame  # columns: mol_id (str), origin (str), index (int)
    payload: Any = None  # source-specific; indexed by catalogue row in materialise
    rejects: list[Reject] = field(default_factory=list)


@dataclass
class Molecules:
    """Molecules in packed form: per-atom arrays concatenated in molecule order."""

    mol_id: np.ndarray  # [N] str (object)
    n_atoms: np.ndarray  # [N] int64
    z: np.ndarray  # [A] int64, A = n_atoms.sum()
    pos: np.ndarray  # [A, 3] float64, Å
    properties: pd.DataFrame  # [N rows] float64 columns in canonical units; NaN = missing label
    origin: np.ndarray  # [N] str (object): input each molecule came from
    index: np.ndarray  # [N] int64: position within its origin
    charge: np.ndarray | None = None  # [N] int64 net charge (e); None: every molecule neutral
    #: [N] int64 spin multiplicity 2S + 1 as the source states it, 0 where it does not (the default
    #: is then :meth:`spin_multiplicity`'s); None: stated for none.
    multiplicity: np.ndarray | None = None
    #: [N] str or None (object): what the molecule is where the source knows it regardless of its
    #: geometry (smiles: the canonical SMILES), which finds duplicates; None: for none
    #: (:mod:`pipeline.data.duplicates` compares geometries).
    identity: np.ndarray | None = None
    #: [N] int64 bonds of each molecule, -1 where none are known (the featuriser perceives them from
    #: the geometry: pipeline.data.sources.bonds); None: none known for any molecule.
    n_bonds: np.ndarray | None = None
    #: [B, 3] int64 rows (i, j, type), i < j local atom indices, type a code of
    #: pipeline.data.sources.bonds.BOND_TYPES; the bonds of each molecule with n_bonds >= 0, in
    #: molecule order (:attr:`bond_ptr`). None: no bonds.
    bonds: np.ndarray | None = None
    #: [N] str or None (object): a SMILES of the molecule whose bond orders its perceived bonds take,
    #: matched onto the geometry's connectivity (qm9); None: for none.
    bond_template: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.mol_id)
        for name in ("charge", "multiplicity"):
            value = getattr(self, name)
            value = np.zeros(n, np.int64) if value is None else np.asarray(value, dtype=np.int64).reshape(-1)
            if len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} molecules")
            setattr(self, name, value)
        for name in ("identity", "bond_template"):
            value = getattr(self, name)
            value = np.full(n, None, dtype=object) if value is None else np.asarray(value, dtype=object)
            if len(value.reshape(-1)) != n:
                raise ValueError(f"{name} has {len(value.reshape(-1))} entries for {n} molecules")
            setattr(self, name, value.reshape(-1))
        n_bonds, bonds = self.n_bonds, self.bonds
        self.n_bonds = np.full(n, -1, np.int64) if n_bonds is None else np.asarray(n_bonds, np.int64)
        self.n_bonds = self.n_bonds.reshape(-1)
        self.bonds = np.zeros((0, 3), np.int64) if bonds is None else np.asarray(bonds, np.int64)
        self.bonds = self.bonds.reshape(-1, 3)
        if len(self.n_bonds) != n or np.maximum(self.n_bonds, 0).sum() != len(self.bonds):
            raise ValueError(f"{len(self.bonds)} bonds for n_bonds {self.n_bonds.tolist()} of {n} molecules")

    def n_electrons(self) -> np.ndarray:
        """[N] int64 electrons of each molecule: the sum of its atomic numbers minus its charge."""
        atom_mol = np.repeat(np.arange(len(self)), self.n_atoms)
        protons = np.bincount(atom_mol, weights=self.z, minlength=len(self)).astype(np.int64)
        return protons - self.charge

    def spin_multiplicity(self) -> np.ndarray:
        """[N] int64 multiplicity: the stated one; where none is stated, 1 (singlet) for an even
        electron count and 2 (doublet) for an odd one, the lowest spin the electrons allow."""
        default = 1 + self.n_electrons() % 2
        return np.where(self.multiplicity > 0, self.multiplicity, default)

    def __len__(self) -> int:
        return len(self.mol_id)

    @property
    def atom_ptr(self) -> np.ndarray:
        """[N + 1] offsets of each molecule's atoms in ``z`` and ``pos``."""
        return np.concatenate([[0], np.cumsum(self.n_atoms)])

    @property
    def bond_ptr(self) -> np.ndarray:
        """[N + 1] offsets of each molecule's rows in ``bonds`` (none for a molecule without bonds)."""
        return np.concatenate([[0], np.cumsum(np.maximum(self.n_bonds, 0))])

    def with_bonds(self, bonds: np.ndarray, n_bonds: np.ndarray) -> Molecules:
        """These molecules with other bonds (``n_bonds`` -1: none known)."""
        return dataclasses.replace(self, bonds=bonds, n_bonds=n_bonds)

    def take(self, keep: np.ndarray) -> Molecules:
        """The molecules selected by boolean mask ``keep`` ([N]), in the same order."""
        return self.take_rows(np.flatnonzero(keep))

    def take_rows(self, rows: np.ndarray) -> Molecules:
        """The molecules at positions ``rows``, in the order of ``rows``."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"molecule rows out of range 0..{len(self) - 1}")
        counts = self.n_atoms[rows]
        # atoms of each chosen molecule, concatenated: its atom offset + 0..count-1
        starts = self.atom_ptr[rows] - np.concatenate([[0], np.cumsum(counts)[:-1]])
        atoms = np.repeat(starts, counts) + np.arange(counts.sum(), dtype=np.int64)
        bond_counts = np.maximum(self.n_bonds[rows], 0)
        bond_starts = self.bond_ptr[rows] - np.concatenate([[0], np.cumsum(bond_counts)[:-1]])
        bond_rows = np.repeat(bond_starts, bond_counts) + np.arange(bond_counts.sum(), dtype=np.int64)
        return Molecules(
            mol_id=self.mol_id[rows],
            n_atoms=counts,
            z=self.z[atoms],
            pos=self.pos[atoms],
            properties=self.properties.iloc[rows].reset_index(drop=True),
            origin=self.origin[rows],
            index=self.index[rows],
            charge=self.charge[rows],
            multiplicity=self.multiplicity[rows],
            identity=self.identity[rows],
            n_bonds=self.n_bonds[rows],
            bonds=self.bonds[bond_rows],
            bond_template=self.bond_template[rows],
        )

    @classmethod
    def from_lists(
        cls,
        mol_id: Sequence[str],
        z: Sequence[np.ndarray],
        pos: Sequence[np.ndarray],
        properties: Sequence[dict[str, float]] | pd.DataFrame,
        origin: Sequence[str],
        index: Sequence[int],
        charge: Sequence[int] | None = None,
        multiplicity: Sequence[int] | None = None,
        identity: Sequence[str | None] | None = None,
        bonds: Sequence[np.ndarray | None] | None = None,
    ) -> Molecules:
        """Pack per-molecule arrays (for sources that build molecules one at a time).

        ``charge`` defaults to neutral, ``multiplicity`` to "not stated" (0) for every molecule;
        ``bonds`` (each molecule's [b, 3] rows, None where it has none known) to none known.
        """
        n_atoms = np.array([len(a) for a in z], dtype=np.int64)
        if bonds is not None:
            n_bonds = np.array([-1 if b is None else len(b) for b in bonds], dtype=np.int64)
            given = [np.asarray(b, dtype=np.int64).reshape(-1, 3) for b in bonds if b is not None]
            packed_bonds = np.concatenate(given) if given else None
        else:
            n_bonds = packed_bonds = None
        props = properties if isinstance(properties, pd.DataFrame) else pd.DataFrame(list(properties))
        return cls(
            mol_id=np.asarray(mol_id, dtype=object),
            n_atoms=n_atoms,
            z=np.concatenate(z).astype(np.int64) if len(z) else np.zeros(0, np.int64),
            pos=np.concatenate(pos).astype(np.float64).reshape(-1, 3) if len(pos) else np.zeros((0, 3)),
            properties=props.astype(np.float64).reset_index(drop=True),
            origin=np.asarray(origin, dtype=object),
            index=np.asarray(index, dtype=np.int64),
            charge=charge,
            multiplicity=multiplicity,
            identity=None if identity is None else np.array(list(identity) or [], dtype=object),
            n_bonds=n_bonds,
            bonds=packed_bonds,
        )


class Source(Protocol):
    """A named molecule source (registered in :data:`pipeline.config.registry.SOURCES`).

    A source whose records can hold several disconnected fragments (files, smiles) also has a
    ``fragments`` attribute, one of :data:`FRAGMENT_POLICIES`, which the featuriser sets from the
    dataset's settings.
    """

    name: str
    #: Unit of each property column the source reports, e.g. {"homo": "eV"}.
    units: dict[str, str]

    def catalogue(self, inputs: Sequence[Path]) -> Catalogue: ...

    def materialise(
        self, catalogue: Catalogue, rows: np.ndarray, seed: int
    ) -> tuple[Molecules, list[Reject]]: ...


class UnknownElement(ValueError):
    """An element symbol that is not in the periodic table."""


def symbols_to_z(symbols: Sequence[str]) -> np.ndarray:
    """Atomic numbers of element symbols (case as in the periodic table); raise on an unknown symbol."""
    z = np.empty(len(symbols), dtype=np.int64)
    for i, symbol in enumerate(symbols):
        z[i] = atomic_numbers.get(symbol, 0)  # ASE maps the dummy atom "X" to 0 as well
        if z[i] == 0:
            raise UnknownElement(f"unknown element {symbol!r} (atom {i})")
    return z


_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


#: Bytes read to decide whether a file is text.
_SNIFF_BYTES = 65536


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


def split_suffix(path: Path) -> tuple[str, str | None, str]:
    """(structure suffix, compression suffix or None, stem without either), all suffixes lower-case."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes[-1] if suffixes and suffixes[-1] in _OPENERS else None
    name = path.name[: -len(compression)] if compression else path.name
    inner = Path(name)
    return inner.suffix.lower(), compression, inner.stem


def expand_inputs(inputs: Sequence[Path | str], suffixes: frozenset[str]) -> tuple[list[Path], list[Reject]]:
    """Files named by ``inputs``: directories become their files with a known suffix, sorted by name.

    The other files of a directory (hidden ones aside), and its subfolders (folders are not read
    recursively), are skipped loudly: a warning, and a reject (index -1) each, so that a file with a
    mistyped extension or a folder of molecules does not vanish unnoticed.
    """
    files: list[Path] = []
    rejects: list[Reject] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            visible = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            found = [p for p in visible if p.is_file() and split_suffix(p)[0] in suffixes]
            skipped = [p for p in visible if p not in found]
            if skipped:
                log.warning(
                    "%s: skipped %d files or folders of a type this source does not read: %s",
                    path,
                    len(skipped),
                    ", ".join(p.name for p in skipped[:10]) + (", ..." if len(skipped) > 10 else ""),
                )
            for p in skipped:
                kind = split_suffix(p)[0] or "no extension"
                reason = (
                    "skipped: a folder; the folders inside an input folder are not read (name it in "
                    "inputs to read it)"
                    if p.is_dir()
                    else f"skipped: not a molecule file ({kind!r}); in a directory only "
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


def csv_shape_problem(text: str) -> str | None:
    """Why CSV ``text`` is not a table whose rows fit its header, naming the lines; None if it is.

    A row with more or fewer fields than the header shifts or pads the columns without an error
    (pandas even takes the first field of a longer first row for an index), and the reader's
    complaints then speak of the wrong cells: an empty id, a SMILES '-7'. So the shape is checked
    first: every header cell has a name, and every row has as many fields as the header, as Python's
    :mod:`csv` splits them (quoted commas are one field). A comma at the end of every row, which
    adds an empty field the header lacks, is named as such. Blank lines are skipped, as readers do.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:  # blank lines skipped
        records = [(reader.line_num, row) for row in reader if len(row) > 1 or (row and row[0].strip())]
    except csv.Error as err:
        return f"not a readable CSV file (line {reader.line_num}): {err}"
    if not records:
        return None
    (head, header), rows = records[0], records[1:]
    unnamed = [k + 1 for k, name in enumerate(header) if not name.strip()]
    if unnamed:
        return (
            f"column {unnamed[0]} of the header (line {head}) has no name (a comma at the end of the "
            "header?); every column needs one"
        )
    width = len(header)
    wrong = [(line, len(row)) for line, row in rows if len(row) != width]
    if not wrong:
        return None
    if len(wrong) == len(rows) and all(len(row) == width + 1 and not row[-1].strip() for _, row in rows):
        return (
            f"every row has {width + 1} fields, one more than the header (line {head}), and the last is "
            "empty: a comma at the end of each row? (remove it, or name the column in the header)"
        )
    shown = ", ".join(f"line {line} has {n} field{'s' if n != 1 else ''}" for line, n in wrong[:3])
    more = len(wrong) - 3
    more_text = f" and {more} more line{'s' if more != 1 else ''}" if more > 0 else ""
    return (
        f"{shown}{more_text}, the header (line {head}) has {width}: a cell with an unquoted comma, or "
        "one left out? (every row needs the header's fields, empty ones too)"
    )


def file_labels(files: Sequence[Path]) -> list[str]:
    """What the automatic ids of each file start with (module doc): its stem, unless another file has
    the same stem; then its path (without the structure suffix) relative to the colliding files'
    common folder; and its path with the full file name where even that is shared."""
    stems = [split_suffix(f)[2] for f in files]
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
        short = {p: (p.parent / split_suffix(p)[2]).relative_to(root).as_posix() for p in clash}
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


def read_text(path: Path, compression: str | None) -> str:
    opener = _OPENERS.get(compression, open) if compression else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        return handle.read()


def unreadable(path: Path, error: Exception) -> str:
    if type(error).__name__ == "UnknownFileTypeError":
        return f"unrecognised file format {''.join(path.suffixes) or path.name!r}: ASE cannot read it"
    if isinstance(error, UnicodeDecodeError):
        return "not a text file (binary content, or text that is not UTF-8)"
    message = "".join(c if c.isprintable() else "?" for c in " ".join(str(error).split()))
    return f"could not read the file: {type(error).__name__}: {message}"
