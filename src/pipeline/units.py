"""Canonical target names, their units, and conversions. Declared once; everything else imports these."""

from __future__ import annotations

#: CODATA 2018 hartree energy in eV (DESIGN.md: QM9's hartree values times this).
HARTREE_TO_EV = 27.211386245988

#: Canonical targets, in QM9's order, with the unit every file of this project stores them in.
TARGET_UNITS: dict[str, str] = {
    "mu": "D",
    "alpha": "bohr^3",
    "homo": "eV",
    "lumo": "eV",
    "gap": "eV",
    "r2": "bohr^2",
    "zpve": "eV",
    "u0": "eV",
    "u298": "eV",
    "h298": "eV",
    "g298": "eV",
    "cv": "cal/(mol K)",
}
TARGETS: tuple[str, ...] = tuple(TARGET_UNITS)

#: Extensive targets (they grow with molecule size): the model reads them out with a sum.
EXTENSIVE_TARGETS = frozenset({"zpve", "u0", "u298", "h298", "g298", "cv", "alpha", "r2"})
