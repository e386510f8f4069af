"""How the reports print numbers: significant digits, mean ± std, and a target's unit."""

from __future__ import annotations

import math
import re

from pipeline.config.units import TARGET_UNITS

_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def decimals(x: float, sig: int) -> int:
    """Decimal places that show ``x`` to ``sig`` significant figures (after rounding: 0.0999.. -> 0.10)."""
    if not math.isfinite(x) or x == 0:
        return 0
    exponent = int(f"{abs(x):.{sig - 1}e}".split("e")[1])
    return min(max(sig - 1 - exponent, 0), 12)


def number_text(x: float, sig: int = 3) -> str:
    """``x`` to ``sig`` significant figures, fixed point ("—" when missing)."""
    if not math.isfinite(x):
        return "—"
    return f"{x:.{decimals(x, sig)}f}"


def mean_std_text(mean: float, std: float) -> str:
    """``"mean ± std"`` at the precision that shows the std to 2 and the mean to 3 significant figures."""
    if not math.isfinite(mean):
        return "—"
    if not math.isfinite(std):
        return number_text(mean)
    d = max(decimals(mean, 3), decimals(std, 2))
    return f"{mean:.{d}f} ± {std:.{d}f}"


def unit_of(target: str) -> str | None:
    """A target's unit with exponents as superscripts (``bohr^3`` -> ``bohr³``), None if unknown."""
    unit = TARGET_UNITS.get(target)
    if unit is None:
        return None
    return re.sub(r"\^(-?\d+)", lambda m: m[1].translate(_SUPERSCRIPTS), unit)


def with_unit(target: str) -> str:
    unit = unit_of(target)
    return f"{target} ({unit})" if unit else target
