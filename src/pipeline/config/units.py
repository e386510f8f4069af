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

#: Plausible value of each canonical target, (low, high) inclusive, in its unit above, for closed-shell
#: organic molecules at any DFT, Hartree-Fock or semi-empirical level. Each is QM9's observed range
#: (all 130,831 molecules of qm9pack, B3LYP/6-31G(2df,p); ``tests/data/test_featurise.py`` checks that
#: none falls outside) widened by a margin for larger molecules, ions and other methods (GFN2-xTB's
#: orbital energies lie lower than DFT's: HOMO to -12, LUMO to -9 eV on QM9):
#:
#: ======  ==================  ================  ===================================================
#: target  QM9 min .. max      range             margin
#: ======  ==================  ================  ===================================================
#: mu      0 .. 29.6 D         0 .. 60           zwitterions and push-pull dyes
#: alpha   6.3 .. 197 bohr^3   1 .. 5,000        molecules of a few hundred atoms
#: homo    -11.7 .. -2.8 eV    -20 .. -1         cations lower; above -1 eV: a sign error (+7), or a
#:                                               value in hartree (-0.1 .. -0.45); anions' HOMO can
#:                                               be positive in the gas phase: widen it for anions
#: lumo    -4.8 .. 5.3 eV      -15 .. 10         xTB and cations lower, HF higher
#: gap     0.67 .. 16.9 eV     0 .. 25           HF gaps (about 1.5x DFT's)
#: r2      19 .. 3,375 bohr^2  1 .. 1e5          large molecules
#: zpve    0.43 .. 7.45 eV     0 .. 50           about 0.15 eV per atom: some 300 atoms
#: u0 ...  -19,445 .. -1,101   -1e7 .. -1,000    CH4, the smallest organic molecule, is -1,101 eV;
#:         eV (u0, u298,                         above -1,000 eV: hartree (CH4 is -40.5) or an
#:         h298, g298)                           atomisation energy; heavy elements and thousands
#:                                               of atoms stay above -1e7 eV
#: cv      6.0 .. 47.0         2 .. 500          3/2 R = 3.0 for any gas; large molecules
#:         cal/(mol K)
#: ======  ==================  ================  ===================================================
#:
#: A value in the wrong unit by orders of magnitude, a sign error, or a placeholder such as 1e30 or
#: -999999 falls outside. The external oracle refuses a labels file with a value outside its target's
#: range, the QC oracles record such a molecule as a failure, featurisation rejects a molecule whose
#: own value (a SMILES CSV's, a structure file's) is outside; ``oracle.ranges`` in the config
#: overrides a range per dataset (or switches the check off for a target with ``null``). A target not
#: listed here (a property name of one's own files) is checked only where the config gives it a range.
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "mu": (0.0, 60.0),
    "alpha": (1.0, 5e3),
    "homo": (-20.0, -1.0),
    "lumo": (-15.0, 10.0),
    "gap": (0.0, 25.0),
    "r2": (1.0, 1e5),
    "zpve": (0.0, 50.0),
    "u0": (-1e7, -1e3),
    "u298": (-1e7, -1e3),
    "h298": (-1e7, -1e3),
    "g298": (-1e7, -1e3),
    "cv": (2.0, 500.0),
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
