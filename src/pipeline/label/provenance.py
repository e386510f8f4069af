"""Where labels came from: every labelled.parquet carries, in its Parquet metadata, one record per
round of which oracle labelled how many molecules, how many failed, and from which file (with its
SHA-256) (:func:`read_labelling`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config.digest import file_sha256

#: Schema-metadata key of labelled.parquet and holdout_labels.parquet: where their labels came from.
LABELLING_KEY = b"pipeline.labelling"


def read_labelling(path: str | Path) -> list[dict[str, Any]]:
    """Where the labels of ``path`` (labelled.parquet, holdout_labels.parquet) came from.

    One record per labelling, oldest first (labelled.parquet: one per round, with ``round``): the
    ``oracle``, the ``files`` it read (``path`` and ``sha256`` of the answer key, of each label
    chunk, or of the labels file a person filled in), and how many molecules were ``requested``,
    ``labelled`` and ``failed`` (holdout_labels.parquet: each per split, ``{"val": n, "test": n}``).
    Empty for a file written before this was recorded.
    """
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[LABELLING_KEY]) if LABELLING_KEY in meta else []


def with_labelling(frame: pd.DataFrame, records: list[dict[str, Any]]) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {}), LABELLING_KEY: json.dumps(records, sort_keys=True).encode()}
    return table.replace_schema_metadata(meta)


def file_record(path: str | Path) -> dict[str, str]:
    return {"path": str(path), "sha256": file_sha256(path)}
