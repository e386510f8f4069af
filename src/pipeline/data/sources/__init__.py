"""Molecule sources, chosen by name (their names live in :data:`pipeline.config.registry.SOURCES`).

Sources are imported on first use, so featurising QM9 does not pay for importing RDKit.
"""

from __future__ import annotations

import importlib

from pipeline.config.registry import SOURCES
from pipeline.data.sources.base import Catalogue, Molecules, Reject, Source


def get_source(name: str) -> Source:
    """A fresh instance of the source registered under ``name``; the error lists the valid names."""
    try:
        module, cls = SOURCES[name].split(":")
    except KeyError:
        raise ValueError(f"unknown source {name!r}; choose one of {sorted(SOURCES)}") from None
    return getattr(importlib.import_module(module), cls)()


__all__ = ["SOURCES", "Catalogue", "Molecules", "Reject", "Source", "get_source"]
