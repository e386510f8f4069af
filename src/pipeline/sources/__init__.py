"""Molecule sources, chosen by name: the registry below is the one place their names live.

Sources are imported on first use, so featurising QM9 does not pay for importing RDKit.
"""

from __future__ import annotations

import importlib

from .base import Catalogue, Molecules, Reject, Source

#: Source name -> "module:class" within this package.
SOURCES: dict[str, str] = {
    "qm9": "qm9:QM9Source",
    "files": "files:FilesSource",
    "smiles": "smiles:SmilesSource",
}


def get_source(name: str) -> Source:
    """A fresh instance of the source registered under ``name``; the error lists the valid names."""
    try:
        module, cls = SOURCES[name].split(":")
    except KeyError:
        raise ValueError(f"unknown source {name!r}; choose one of {sorted(SOURCES)}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()


__all__ = ["SOURCES", "Catalogue", "Molecules", "Reject", "Source", "get_source"]
