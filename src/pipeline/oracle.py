"""Oracles: who labels the molecules the strategy picked.

For benchmark datasets the oracle is a lookup in the dataset's answer key, which only the ``label``
rules read (the no-leak rule of DESIGN.md). Other oracles (quantum chemistry, an external lab) plug
into :data:`ORACLES` with the same signature: molecule ids in, one row of labels per id out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq


def answer_key(path: str | Path, mol_ids: Sequence[str] | np.ndarray) -> pd.DataFrame:
    """Labels of ``mol_ids`` (in that order) from an answer key: mol_id + one column per target."""
    key = pq.read_table(path).to_pandas().set_index("mol_id")
    ids = np.asarray(mol_ids, dtype=object)
    missing = ids[~np.isin(ids, key.index)]
    if len(missing):
        raise KeyError(f"{path}: no labels for {len(missing)} molecules, e.g. {list(missing[:3])}")
    return key.loc[ids].reset_index()


#: Oracle name -> function(source, mol_ids) -> labels DataFrame.
ORACLES: dict[str, Callable[..., pd.DataFrame]] = {"answer_key": answer_key}
