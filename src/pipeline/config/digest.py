"""File checksums (stdlib only, so the workflow can import it when it plans jobs)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["file_sha256", "input_files", "inputs_sha256"]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_files(inputs: Sequence[str | os.PathLike], root: str | os.PathLike = ".") -> list[str]:
    """The files a dataset's ``inputs`` name, as given (relative to ``root``, where they are read):
    a file itself, a folder its visible files (not its subfolders, which are not read), sorted by
    name, after the folder itself; a path that does not exist as given."""
    files: list[str] = []
    for raw in inputs:
        files.append(str(raw))
        folder = Path(root) / raw
        if folder.is_dir():
            inside = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
            files += [str(Path(raw) / name) for name in inside]
    return files


def inputs_sha256(inputs: Sequence[str | os.PathLike], root: str | os.PathLike = ".") -> str:
    """One hex SHA-256 of the content of every file :func:`input_files` lists (with its path): it
    changes when a file inside an input folder is edited or appended to, which the folder's mtime
    does not show."""
    digest = hashlib.sha256()
    for name in input_files(inputs, root):
        path = Path(root) / name
        if path.is_file():
            digest.update(f"{name}\t{file_sha256(path)}\n".encode())
    return digest.hexdigest()
