"""Oracles: who labels the molecules the strategy picked (and the val/test molecules).

Chosen per dataset by ``oracle.name`` in the config (:data:`ORACLES`):

``answer_key``
    A lookup in the dataset's answer key (benchmark datasets). Only the ``label`` rules read it (the
    no-leak rule of DESIGN.md).
``pyscf`` / ``xtb``
    Quantum chemistry at the molecule's stored geometry (:mod:`pipeline.qc`). The molecules to label
    are split into chunks (:func:`chunk_of`), each a separate job (:func:`label_chunk`) writing its
    labels and its failures; the ``label`` stage joins the chunks (:func:`read_parts`). A molecule
    whose calculation fails is listed with its reason and leaves the pool; the round goes on with
    the molecules that were labelled.
``external``
    A person or a lab labels them: :func:`external_labels` writes ``to_label.xyz`` and
    ``to_label.csv`` and stops with :class:`LabelsNeeded`, which says where to put the labels file;
    on the next run the file is read and validated (ids, columns, units, no NaN).

Every oracle returns two tables: ``labels`` (mol_id + one float64 column per target it labels, in the
units of :data:`pipeline.units.TARGET_UNITS`) and ``failures`` (mol_id, reason, seconds).

The label stages are here too: :func:`label_round` (L_r = L_{r-1} + oracle(picks), failures
accumulated over rounds) and :func:`label_holdout` (the val and test labels), with the oracle and
what it reads given as an :class:`OracleInput`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import registry
from .registry import OracleInfo
from .split import holdout_ids
from .store import atomic_path, write_table
from .units import TARGET_UNITS

log = logging.getLogger(__name__)


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


# ------------------------------------------------------------------------------------ answer key


def answer_key(path: str | Path, mol_ids: Sequence[str] | np.ndarray) -> pd.DataFrame:
    """Labels of ``mol_ids`` (in that order) from an answer key: mol_id + one column per target."""
    key = pq.read_table(path).to_pandas().set_index("mol_id")
    ids = np.asarray(mol_ids, dtype=object)
    missing = ids[~np.isin(ids, key.index)]
    if len(missing):
        raise KeyError(f"{path}: no labels for {len(missing)} molecules, e.g. {list(missing[:3])}")
    return key.loc[ids].reset_index()


# ------------------------------------------------------------------------------ quantum chemistry


def chunk_of(mol_ids: Sequence[str] | np.ndarray, chunk: int, chunks: int) -> np.ndarray:
    """The molecules of chunk ``chunk`` (0-based) of ``chunks`` near-equal contiguous chunks."""
    if not 0 <= chunk < chunks:
        raise ValueError(f"chunk {chunk} is not in 0..{chunks - 1}")
    return np.array_split(np.asarray(mol_ids, dtype=object), chunks)[chunk]


def read_geometries(
    data: str | Path, mol_ids: Sequence[str] | np.ndarray
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(mol_id, z [n], pos [n, 3] in Å) of ``mol_ids``, in that order, from the dataset's graph shards.

    Reads only the id, atom and coordinate columns (not the edges).
    """
    shards = sorted((Path(data) / "graphs").glob("shard-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{data}: no graphs/shard-*.parquet (featurise the dataset first)")
    wanted = pa.array(np.asarray(mol_ids, dtype=object).astype(str), pa.string())
    table = pa.concat_tables(
        [t.filter(pc.is_in(t["mol_id"], wanted)) for t in
         (pq.read_table(s, columns=["mol_id", "z", "pos"]) for s in shards)]
    )  # fmt: skip
    found = {m: k for k, m in enumerate(table["mol_id"].to_pylist())}
    missing = [m for m in wanted.to_pylist() if m not in found]  # plain str
    if missing:
        raise ValueError(f"{data}: {len(missing)} molecules are not in the dataset, e.g. {missing[:3]}")
    z_col, pos_col = table["z"].to_pylist(), table["pos"].to_pylist()
    return [
        (
            m,
            np.asarray(z_col[found[m]], dtype=np.int64),
            np.asarray(pos_col[found[m]], dtype=np.float64).reshape(-1, 3),
        )
        for m in wanted.to_pylist()
    ]


def label_chunk(
    name: str,
    data: str | Path,
    mol_ids: Sequence[str] | np.ndarray,
    chunk: int,
    chunks: int,
    out: str | Path,
    failures: str | Path,
    settings: dict[str, Any] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Label chunk ``chunk`` of ``mol_ids`` with QC oracle ``name``: labels to ``out``, failures beside.

    ``settings`` are keyword arguments of the oracle's single-point function in :mod:`pipeline.qc`
    (e.g. ``{"basis": "def2-SVP", "threads": 2}`` for pyscf); an unknown key fails before any
    calculation.
    """
    from .qc import label_molecules

    if get_oracle(name).kind != "compute":
        raise ValueError(f"oracle {name!r} does not compute labels; label chunks are for pyscf and xtb")
    ids = chunk_of(mol_ids, chunk, chunks)
    geometries = read_geometries(data, ids)
    log.info("%s: chunk %d of %d, %d molecules", name, chunk, chunks, len(ids))
    labels, failed = label_molecules(
        name, ids, [g[1] for g in geometries], [g[2] for g in geometries], settings or {}
    )
    labels_table = pa.Table.from_pandas(labels, preserve_index=False)
    failed_table = failures_table(failed)
    write_table(failed_table, failures)
    write_table(labels_table, out)
    log.info("%s: chunk %d: %d labelled, %d failed", name, chunk, len(labels), len(failed))
    return labels_table, failed_table


def _in_request_order(labels: pd.DataFrame, wanted: np.ndarray) -> pd.DataFrame:
    """``labels`` rows sorted as their mol_ids come in ``wanted`` (the request), index reset."""
    order = {m: k for k, m in enumerate(wanted)}
    return labels.sort_values("mol_id", key=lambda ids: ids.map(order), ignore_index=True)


def read_parts(
    parts: Sequence[str | Path], mol_ids: Sequence[str] | np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join label chunks (``*.parquet`` with their ``*.failures.parquet``): labels and failures.

    Every molecule of ``mol_ids`` must be in exactly one of them (labelled or failed): a chunk made for
    another set of molecules is an error, not a silent gap.
    """
    labels, failed = [], []
    for part in map(Path, parts):
        labels.append(pq.read_table(part).to_pandas())
        failed.append(pq.read_table(part.with_suffix(".failures.parquet")).to_pandas())
    labels_df = pd.concat(labels, ignore_index=True) if labels else pd.DataFrame({"mol_id": []})
    failed_df = pd.concat(failed, ignore_index=True) if failed else failures_table().to_pandas()
    done = np.concatenate([labels_df.mol_id.to_numpy(object), failed_df.mol_id.to_numpy(object)])
    wanted = np.asarray(mol_ids, dtype=object).astype(str)
    missing = np.setdiff1d(wanted, done.astype(str)).tolist()
    extra = np.setdiff1d(done.astype(str), wanted).tolist()
    if missing or extra or len(done) != len(wanted):
        raise ValueError(
            f"label chunks {', '.join(map(str, parts))}: they hold {len(done)} molecules for "
            f"{len(wanted)} requested ({len(missing)} missing, e.g. {missing[:3]}; {len(extra)} "
            f"not requested, e.g. {extra[:3]}); delete them to recompute"
        )
    return _in_request_order(labels_df, wanted), failed_df


# -------------------------------------------------------------------------------------- external


class LabelsNeeded(RuntimeError):
    """The external oracle is waiting for a person to provide labels (the run stops, then resumes)."""


def _header(target: str) -> str:
    """Column header of a target in the external files: ``homo [eV]``."""
    return f"{target} [{TARGET_UNITS.get(target, '?')}]"


_HEADER = re.compile(r"^\s*(?P<name>[^\[\]]+?)\s*(?:\[\s*(?P<unit>[^\]]*?)\s*\])?\s*$")


def write_request(
    data: str | Path,
    mol_ids: Sequence[str] | np.ndarray,
    xyz: str | Path,
    csv: str | Path,
    targets: Sequence[str],
) -> None:
    """The molecules to label as extended XYZ (for any QC program) and as a CSV form to fill in."""
    from ase import Atoms
    from ase.io import write

    geometries = read_geometries(data, mol_ids)
    atoms = [Atoms(numbers=z, positions=pos, info={"mol_id": m}) for m, z, pos in geometries]
    with atomic_path(xyz) as tmp:
        write(tmp, atoms, format="extxyz")
    form = pd.DataFrame(
        {
            "mol_id": [m for m, _, _ in geometries],
            "formula": [a.get_chemical_formula() for a in atoms],
            "n_atoms": [len(a) for a in atoms],
            **{_header(t): np.nan for t in targets},
            "failure": "",
        }
    )
    with atomic_path(csv) as tmp:
        form.to_csv(tmp, index=False)


def read_external_labels(
    path: str | Path, mol_ids: Sequence[str] | np.ndarray, targets: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and validate a labels file from a person or lab: (labels, failures).

    The file is the ``to_label.csv`` form filled in: ``mol_id``, one column per target whose header
    names its unit as the form does (``homo [eV]``), and an optional ``failure`` column: a molecule
    with a reason there could not be labelled; it is recorded as a failure and leaves the pool. Every
    requested molecule must appear exactly once; no other may; every target cell of a molecule
    without a failure reason must be a finite number.
    """
    where = str(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{where}: not a readable CSV file: {err}") from err
    if "mol_id" not in frame.columns:
        raise ValueError(f"{where}: no 'mol_id' column (columns: {list(frame.columns)})")
    columns: dict[str, str] = {}
    for column in frame.columns:
        match = _HEADER.match(column)
        name, unit = (match["name"], match["unit"]) if match else (column, None)
        if name in targets:
            expected = TARGET_UNITS.get(name)
            if unit is None or (expected is not None and unit != expected):
                raise ValueError(
                    f"{where}: column {column!r} must state the unit as {_header(name)!r} "
                    f"(labels are stored in {expected or 'the dataset unit'}; convert before filling in)"
                )
            if name in columns:
                raise ValueError(f"{where}: target {name!r} appears in two columns")
            columns[name] = column
    absent = [t for t in targets if t not in columns]
    if absent:
        raise ValueError(f"{where}: no column for targets {[_header(t) for t in absent]}")

    ids = frame["mol_id"].str.strip()
    wanted = np.asarray(mol_ids, dtype=object).astype(str)
    duplicated = ids[ids.duplicated()].unique()
    if len(duplicated):
        raise ValueError(f"{where}: molecules listed twice: {list(duplicated[:5])}")
    missing, extra = np.setdiff1d(wanted, ids).tolist(), np.setdiff1d(ids, wanted).tolist()
    problems = []
    if missing:
        problems.append(f"{len(missing)} requested molecules have no row (e.g. {missing[:3]})")
    if extra:
        problems.append(f"{len(extra)} rows are not requested molecules (e.g. {extra[:3]})")
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)}")
    reason = frame["failure"].str.strip() if "failure" in frame.columns else pd.Series("", index=frame.index)
    failed = reason != ""
    values = pd.DataFrame({"mol_id": ids})
    for target, column in columns.items():
        numbers = pd.to_numeric(frame[column].str.strip(), errors="coerce")
        bad = ~np.isfinite(numbers.to_numpy(np.float64)) & ~failed.to_numpy()
        if bad.any():
            raise ValueError(
                f"{where}: {int(bad.sum())} molecules have no finite value in {column!r} "
                f"(e.g. {ids[bad][:3].tolist()}); fill it in, or give a reason in the 'failure' column"
            )
        values[target] = numbers.astype(np.float64)
    labels = _in_request_order(values[~failed.to_numpy()], wanted)
    failures = pd.DataFrame(
        {"mol_id": ids[failed].to_numpy(object), "reason": reason[failed].to_numpy(object), "seconds": np.nan}
    )
    return labels, failures


def external_labels(
    data: str | Path,
    mol_ids: Sequence[str] | np.ndarray,
    folder: str | Path,
    prefix: str,
    targets: Sequence[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labels from ``{folder}/{prefix}labels.csv``; without that file, write the request and stop.

    The request is ``{prefix}to_label.xyz`` and ``{prefix}to_label.csv`` in ``folder``; the exception
    says where the filled-in form goes. Rerunning the workflow then reads and validates it.
    """
    folder = Path(folder)
    labels_file = folder / f"{prefix}labels.csv"
    if labels_file.exists():
        labels, failures = read_external_labels(labels_file, mol_ids, targets)
        log.info("%s: %d labels, %d failures", labels_file, len(labels), len(failures))
        return labels, failures
    xyz, csv = folder / f"{prefix}to_label.xyz", folder / f"{prefix}to_label.csv"
    write_request(data, mol_ids, xyz, csv, targets)
    raise LabelsNeeded(
        f"{len(mol_ids)} molecules need labels: their geometries are in {xyz} and the form in {csv}. "
        f"Fill in the columns {', '.join(_header(t) for t in targets)} (or a reason in 'failure' for a "
        f"molecule that cannot be labelled), save it as {labels_file}, and run the workflow again"
    )


# ------------------------------------------------------------------------------- the label stages
# (`pipeline label`, `pipeline label-holdout`: no torch, so label jobs start in about a second)


@dataclass(frozen=True)
class OracleInput:
    """Where the label stages get labels from: the oracle's name and what that oracle reads."""

    name: str = "answer_key"
    answer_key: Path | None = None  # answer_key: the dataset's answer_key.parquet
    parts: list[Path] | None = None  # pyscf, xtb: the label chunks (label_chunk jobs)
    data: Path | None = None  # external: the dataset folder (geometries of the request)
    run_json: Path | None = None  # external: the run's settings (the targets to ask for)

    def ask(self, mol_ids: np.ndarray, folder: Path, prefix: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Labels and failures of ``mol_ids`` (see :mod:`pipeline.oracle`); ``folder``/``prefix``
        place the external oracle's request and labels file."""
        kind = get_oracle(self.name).kind
        if kind == "lookup":
            if self.answer_key is None:
                raise ValueError("the answer_key oracle needs --answer-key")
            return answer_key(self.answer_key, mol_ids), failures_table().to_pandas()
        if kind == "compute":
            if self.parts is None:
                raise ValueError(f"the {self.name} oracle needs --parts (the label chunks)")
            return read_parts(self.parts, mol_ids)
        if self.data is None or self.run_json is None:
            raise ValueError("the external oracle needs --data and --run-json")
        targets = json.loads(Path(self.run_json).read_text())["targets"]
        return external_labels(self.data, mol_ids, folder, prefix, targets)


def label_round(
    selected: Path,
    round: int,
    out: Path,
    failures: Path,
    source: OracleInput,
    previous: Path | None = None,
    previous_failures: Path | None = None,
) -> pa.Table:
    """L_r = L_{r-1} + oracle(selected); failures_r = failures_{r-1} + the picks the oracle could not label.

    The only per-round stage that reads the answer key. A failed molecule is listed with its reason
    and round in ``failures`` (cumulative over rounds); selection never offers it again.
    """
    picked = pq.read_table(selected)["mol_id"].to_numpy().astype(str)
    before = pq.read_table(previous).to_pandas() if previous is not None else None
    failed_before = pq.read_table(previous_failures).to_pandas() if previous_failures is not None else None
    if before is not None and np.isin(picked, before.mol_id).any():
        raise ValueError(f"{selected}: picks molecules that are already labelled in {previous}")
    if failed_before is not None and np.isin(picked, failed_before.mol_id).any():
        raise ValueError(f"{selected}: picks molecules the oracle failed on before ({previous_failures})")
    if len(set(picked)) != len(picked):
        raise ValueError(f"{selected}: the same molecule is picked twice")
    new, failed = source.ask(picked, Path(out).parent, "")
    new["round_added"] = np.int32(round)
    failed["round"] = np.int32(round)
    labelled = new if before is None else pd.concat([before, new], ignore_index=True)
    failed_all = failed if failed_before is None else pd.concat([failed_before, failed], ignore_index=True)
    write_table(failures_table(failed_all), failures)
    table = pa.Table.from_pandas(labelled, preserve_index=False)
    write_table(table, out)
    log.info("round %d: %d labelled (%d new, %d failed)", round, len(labelled), len(new), len(failed))
    return table


def label_holdout(split_path: Path, out: Path, failures: Path, source: OracleInput) -> pa.Table:
    """Labels of the val and test molecules (early stopping and the reported error).

    A molecule the oracle could not label is listed in ``failures`` and left out of val or test.
    """
    held = holdout_ids(split_path)
    ids = held.mol_id.to_numpy().astype(str)
    labels, failed = source.ask(ids, Path(out).parent, "holdout_")
    labels.insert(1, "split", held.set_index("mol_id").loc[labels.mol_id, "split"].to_numpy())
    write_table(failures_table(failed), failures)
    table = pa.Table.from_pandas(labels, preserve_index=False)
    write_table(table, out)
    if len(failed):
        log.warning("%d of %d val/test molecules could not be labelled", len(failed), len(ids))
    return table
