"""The lookup oracle: labels read from the dataset's answer key (the benchmark's stand-in for a lab),
screened like every oracle's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.label.base import screen


def answer_key(
    path: str | Path, mol_ids: Sequence[str] | np.ndarray, targets: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labels of ``mol_ids`` (in that order) from an answer key: (labels, failures).

    ``labels``: mol_id + every column of the key, for the molecules that have a finite value for each
    of ``targets`` (a property the run does not ask for may be missing); ``failures``: the others,
    with the reason ("no value for target 'homo' in the answer key"). A molecule of a ``files`` or
    ``smiles`` dataset whose file gave it no such property is one of these.
    """
    key = pq.read_table(path).to_pandas().set_index("mol_id")
    ids = np.asarray(mol_ids, dtype=object)
    missing = ids[~np.isin(ids, key.index)]
    if len(missing):
        raise ValueError(f"{path}: no row for {len(missing)} molecules, e.g. {list(missing[:3])}")
    absent = [t for t in targets if t not in key.columns]
    if absent:
        raise ValueError(
            f"{path}: no molecule of the dataset has a value for targets {absent} "
            f"(its properties: {list(key.columns)})"
        )
    return screen(key.loc[ids].reset_index(), targets, "in the answer key")
