"""xyz and extxyz files (:func:`read_xyz`): frames read one by one, so a broken frame is a reject naming
its line and the frames around it are kept; extxyz through ASE, plain xyz (symbols or atomic numbers)
parsed here."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.sources.base import (
    UnknownElement,
    read_text,
    symbols_to_z,
)
from pipeline.data.sources.records import ID_KEYS, Collected, add_atoms, id_text

_ID_IN_COMMENT = re.compile(r"""(?:^|\s)(mol_id|id)\s*=\s*("[^"]*"|'[^']*'|[^\s=]+)(?=\s|$)""")
#: An id key with nothing after its "=", or only the next key=value (ASE would take that for the id).
_EMPTY_ID = re.compile(r"""(?:^|\s)(mol_id|id)\s*=\s*(?:$|""|''|[^\s="']+\s*=)""")


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
    found = _id_keys(comment)
    for key in ID_KEYS:
        if key in found:
            return id_text(found[key])
    return None


def _id_keys(comment: str) -> dict[str, str]:
    """The id keys of a comment line and their values as written (quotes kept)."""
    return dict(m.groups() for m in _ID_IN_COMMENT.finditer(comment))


def _id_problem(comment: str, atoms: Any) -> str | None:
    """Why the id of a frame cannot be kept as the comment line gives it, or None; sets the id ASE
    read back to the text as written where ASE only made a number of it (``mol_id=007``).

    An empty ``mol_id=`` makes ASE take the next key (``homo=-8.4``) for the id and lose its value;
    a backslash in an id is read as an escape (``"a\\nb"`` becomes ``anb``).
    """
    empty = _EMPTY_ID.search(comment)
    if empty is not None:
        return (
            f"empty {empty.group(1)}= in the comment line: the next key would be read as the id and its "
            "value lost; give an id or leave the key out"
        )
    found = _id_keys(comment)
    key = next((k for k in ID_KEYS if k in found), None)
    if key is None or atoms is None:
        return None
    written, read = id_text(found[key]), atoms.info.get(key)
    if isinstance(read, str) and id_text(read) != written:
        return f"{key} {written!r} is read as {id_text(read)!r} (a backslash is an escape in extxyz)"
    atoms.info[key] = written  # a number to ASE (007, 1.50): the id as written
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


def read_xyz(path: Path, compression: str | None, stem: str, out: Collected) -> None:
    origin = str(path)
    lines = read_text(path, compression).splitlines()
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
        problem = problem or _id_problem(comment, atoms)
        if problem is not None:
            out.reject(origin, frame, default_id, f"frame {frame} (line {first + 1}): {problem}")
            continue
        add_atoms(out, origin, frame, stem, atoms, where=f"frame {frame} (line {first + 1})")
