"""Molecule sources, chosen by name: the registry below is the one place their names live."""

from __future__ import annotations

from .base import Catalogue, Molecules, Reject, Source
from .files import FilesSource
from .qm9 import QM9Source
from .smiles import SmilesSource

SOURCES: dict[str, Source] = {
    "qm9": QM9Source(),
    "files": FilesSource(),
    "smiles": SmilesSource(),
}


def get_source(name: str) -> Source:
    """The source registered under ``name``; the error lists the valid names."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; choose one of {sorted(SOURCES)}") from None


__all__ = ["SOURCES", "Catalogue", "Molecules", "Reject", "Source", "get_source"]
