"""What every oracle's answer looks like: the oracles by name (:data:`ORACLES`), the failures table
(a molecule, its reason, the seconds spent), and the plausibility screen every label passes
(:func:`screen`: a value outside the target's range is a failure with its reason, not a label)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.config import registry
from pipeline.config.registry import OracleInfo
from pipeline.data.values import value_problems

#: Oracle name -> what it is (kind, targets, what its jobs need): the registry's.
ORACLES: dict[str, OracleInfo] = registry.ORACLES


FAILURE_SCHEMA = pa.schema([("mol_id", pa.string()), ("reason", pa.string()), ("seconds", pa.float64())])


def get_oracle(name: str) -> OracleInfo:
    """The oracle registered under ``name``; the error lists the valid names."""
    return registry.oracle_info(name)


def failures_table(frame: pd.DataFrame | None = None) -> pa.Table:
    """A failures table (mol_id, reason, seconds[, round]) from a DataFrame, or an empty one."""
    if frame is None or frame.empty:
        schema = FAILURE_SCHEMA
        if frame is not None and "round" in frame.columns:
            schema = schema.append(pa.field("round", pa.int32()))
        return schema.empty_table()
    return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)


def screen(
    labels: pd.DataFrame,
    targets: Sequence[str],
    where: str,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split an oracle's ``labels`` into (labels, failures): a molecule without a finite value for one
    of ``targets``, or (with ``ranges``: target -> (low, high)) with a value outside its range, is a
    failure with the reason (:func:`pipeline.data.values.value_problems`), e.g. "no value for target
    'homo' in the answer key" (``where`` ends the reason) or "homo = 1e+30 eV is outside the
    plausible range [-50, 50] eV ...". Row order is kept."""
    reasons = value_problems(labels, targets, ranges or {}, missing=where)
    failed = np.array([bool(r) for r in reasons], dtype=bool)
    failures = pd.DataFrame(
        {
            "mol_id": labels.mol_id.to_numpy(object)[failed],
            "reason": ["; ".join(r) for r in reasons if r],
            "seconds": np.nan,
        }
    )
    return labels[~failed].reset_index(drop=True), failures
