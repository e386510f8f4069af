"""Canonical target names, their units, and conversions. Declared once; everything else imports these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: CODATA 2018 hartree energy in eV: QM9's hartree values are converted with it.
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

#: Extensive targets (they grow with molecule size): the model reads them out with a sum. "energy" is
#: the QC oracles' total energy (a helping property, pipeline.config.settings.helper_columns).
EXTENSIVE_TARGETS = frozenset({"zpve", "u0", "u298", "h298", "g298", "cv", "alpha", "r2", "energy"})

#: Plausible value of each canonical target, (low, high) inclusive, in its unit above: wide enough for
#: any organic molecule and any level of theory (QM9 spans mu 0-30 D, alpha 6-200 bohr^3, HOMO -11 to
#: -2 eV, LUMO -5 to 5 eV, r2 19-3400 bohr^2, zpve up to 7 eV, u0 -19,500 to -1,100 eV, Cv 6-47), narrow
#: enough that a value in the wrong unit by orders of magnitude, a sign-flipped magnitude, or a
#: placeholder such as 1e30 or -999999 falls outside. Total energies are negative (a heavy-atom
#: complex of thousands of atoms stays above -1e7 eV); magnitudes, gaps and counts are not. The
#: external oracle refuses a labels file with a value outside its target's range, the QC oracles
#: record such a molecule as a failure, featurisation rejects a molecule whose own value (a SMILES
#: CSV's, a structure file's) is outside; ``oracle.ranges`` in the config overrides a range per dataset
#: (or switches the check off for a target with ``null``). A target not listed here (a property name
#: of one's own files) is checked only where the config gives it a range.
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "mu": (0.0, 100.0),
    "alpha": (0.0, 1e4),
    "homo": (-50.0, 50.0),
    "lumo": (-50.0, 50.0),
    "gap": (0.0, 100.0),
    "r2": (0.0, 1e6),
    "zpve": (0.0, 100.0),
    "u0": (-1e7, 0.0),
    "u298": (-1e7, 0.0),
    "h298": (-1e7, 0.0),
    "g298": (-1e7, 0.0),
    "cv": (0.0, 1e3),
}


def plausible_ranges(
    targets: Sequence[str], overrides: Mapping[str, Sequence[float] | None] | None = None
) -> dict[str, tuple[float, float]]:
    """The (low, high) range each of ``targets`` is checked against: ``overrides`` (the config's
    ``oracle.ranges``; ``None`` for a target: no check) over :data:`PLAUSIBLE_RANGES`. Targets without
    a range are left out. A malformed override is an error naming it."""
    overrides = dict(overrides or {})
    ranges: dict[str, tuple[float, float]] = {}
    for target in targets:
        bounds = overrides.get(target, PLAUSIBLE_RANGES.get(target))
        if bounds is None:
            continue
        try:
            low, high = (float(b) for b in bounds)
        except (TypeError, ValueError):
            low = high = float("nan")
        if not low < high:
            raise ValueError(f"oracle.ranges.{target}: expected [low, high] with low < high, got {bounds!r}")
        ranges[target] = (low, high)
    return ranges
