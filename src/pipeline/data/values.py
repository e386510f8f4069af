"""Property values checked for plausibility: what featurisation (the dataset's own values) and the
oracles (labels from QC or a lab) share, so a value is judged, and its reason worded, the same way
wherever it comes from. Ranges are :func:`pipeline.config.units.plausible_ranges` (the dataset's
``oracle.ranges`` over the defaults)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.config.units import TARGET_UNITS


def value_problems(
    values: pd.DataFrame,
    columns: Sequence[str],
    ranges: dict[str, tuple[float, float]],
    missing: str | None = None,
) -> list[list[str]]:
    """Per row of ``values``, what is wrong with its ``columns``: a value that is not finite, or
    outside its column's range in ``ranges`` (e.g. "homo = 1e+30 eV is outside the plausible range
    [-20, 0] eV (oracle.ranges.homo ...)"). NaN is a missing value: a problem only where ``missing``
    is given, ending its reason ("no value for target 'homo' in the answer key")."""
    problems: list[list[str]] = [[] for _ in range(len(values))]
    for column in columns:
        numbers = pd.to_numeric(values[column], errors="coerce").to_numpy(np.float64)
        unit = f" {TARGET_UNITS[column]}" if column in TARGET_UNITS else ""
        where = f" {missing}" if missing is not None else ""
        if missing is not None:
            for k in np.flatnonzero(np.isnan(numbers)):
                problems[k].append(f"no value for target {column!r}{where}")
        for k in np.flatnonzero(np.isinf(numbers)):
            problems[k].append(f"a non-finite value ({numbers[k]}) for {column!r}{where}")
        if column in ranges:
            low, high = ranges[column]
            for k in np.flatnonzero(np.isfinite(numbers) & ((numbers < low) | (numbers > high))):
                problems[k].append(
                    f"{column} = {numbers[k]:g}{unit} is outside the plausible range [{low:g}, {high:g}]"
                    f"{unit} (a wrong unit or sign? the dataset's oracle.ranges.{column} widens the "
                    "range, null switches the check off)"
                )
    return problems
