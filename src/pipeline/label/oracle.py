"""Oracles: who labels the molecules the strategy picked (and the val/test molecules).

Chosen per dataset by ``oracle.name`` in the config (:data:`ORACLES`):

``answer_key``
    A lookup in the dataset's answer key (benchmark datasets). Only the ``label`` rules read it (the
    no-leak rule of DESIGN.md).
``pyscf`` / ``xtb``
    Quantum chemistry at the molecule's stored geometry, for its stored net charge and spin
    multiplicity (:mod:`pipeline.label.qc`; graph columns ``charge`` and ``multiplicity``). The molecules
    to label are split into chunks (:func:`chunk_of`), each a separate job (:func:`label_chunk`)
    writing its labels and its failures; the ``label`` stage joins the chunks (:func:`read_parts`). A molecule
    whose calculation fails is listed with its reason and leaves the pool; the round goes on with
    the molecules that were labelled.
``external``
    A person or a lab labels them: :func:`external_labels` writes the request it is given (a
    :class:`LabelRequest`: the geometries as extended XYZ and a CSV form; the workflow's are
    ``to_label.xyz`` and ``to_label.csv``) and stops with :class:`LabelsNeeded`, which says where to
    put the labels file (also given: ``labels.csv``); on the next run that file is read and
    validated (ids, columns, units, no NaN, values within the targets' plausible ranges).

Every oracle returns two tables: ``labels`` (mol_id + one float64 column per target it labels, in the
units of :data:`pipeline.config.units.TARGET_UNITS`) and ``failures`` (mol_id, reason, seconds). A molecule
without a finite value for one of the run's targets is never a label: the answer key's and the QC
oracles' are failures with the reason ("no value for target 'homo' in the answer key"), the external
oracle refuses the file. A value outside the target's plausible range
(:func:`pipeline.config.units.plausible_ranges`, ``oracle.ranges`` in the config) is a failure from a QC
oracle (a calculation gone wrong) and refused in a labels file (a typing or unit error the lab should
fix); the answer key is not range-checked (it is the dataset's own data).

The label stages are here too: :func:`label_round` (L_r = L_{r-1} + oracle(picks), failures
accumulated over rounds) and :func:`label_holdout` (the val and test labels), with the oracle and
what it reads given as an :class:`OracleInput`. Their labels files record, in the schema metadata
(:func:`read_labelling`), which oracle and which files (with their SHA-256) the labels came from and
how many molecules failed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.config import registry
from pipeline.config.registry import OracleInfo
from pipeline.config.units import TARGET_UNITS, plausible_ranges
from pipeline.data.split import holdout_ids
from pipeline.data.store import atomic_path, dataset_shards, file_sha256, read_graph_metadata, write_table

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


def screen(
    labels: pd.DataFrame,
    targets: Sequence[str],
    where: str,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split an oracle's ``labels`` into (labels, failures): a molecule without a finite value for one
    of ``targets``, or (with ``ranges``: target -> (low, high)) with a value outside its range, is a
    failure with the reason, e.g. "no value for target 'homo' in the answer key" (``where`` ends the
    reason) or "homo = 1e+30 eV is outside the plausible range [-50, 50] eV". Row order is kept."""
    ranges = ranges or {}
    reasons = [[] for _ in range(len(labels))]
    for target in targets:
        values = pd.to_numeric(labels[target], errors="coerce").to_numpy(np.float64)
        unit = f" {TARGET_UNITS[target]}" if target in TARGET_UNITS else ""
        for k in np.flatnonzero(~np.isfinite(values)):
            what = "no value" if np.isnan(values[k]) else f"a non-finite value ({values[k]})"
            reasons[k].append(f"{what} for target {target!r} {where}")
        if target in ranges:
            low, high = ranges[target]
            for k in np.flatnonzero(np.isfinite(values) & ((values < low) | (values > high))):
                reasons[k].append(
                    f"{target} = {values[k]:g}{unit} is outside the plausible range "
                    f"[{low:g}, {high:g}]{unit} (oracle.ranges)"
                )
    failed = np.array([bool(r) for r in reasons], dtype=bool)
    failures = pd.DataFrame(
        {
            "mol_id": labels.mol_id.to_numpy(object)[failed],
            "reason": ["; ".join(r) for r in reasons if r],
            "seconds": np.nan,
        }
    )
    return labels[~failed].reset_index(drop=True), failures


# ------------------------------------------------------------------------------ quantum chemistry


def chunk_of(mol_ids: Sequence[str] | np.ndarray, chunk: int, chunks: int) -> np.ndarray:
    """The molecules of chunk ``chunk`` (0-based) of ``chunks`` near-equal contiguous chunks."""
    if not 0 <= chunk < chunks:
        raise ValueError(f"chunk {chunk} is not in 0..{chunks - 1}")
    return np.array_split(np.asarray(mol_ids, dtype=object), chunks)[chunk]


class Geometry(NamedTuple):
    """What a QC oracle computes for one molecule: the species and its geometry."""

    mol_id: str
    z: np.ndarray  # [n] int64 atomic numbers
    pos: np.ndarray  # [n, 3] float64, Å
    charge: int  # net charge (e)
    multiplicity: int  # spin multiplicity 2S + 1


#: Graph columns a QC oracle reads (not the edges).
_GEOMETRY_COLUMNS = ["mol_id", "z", "pos", "charge", "multiplicity"]


def _geometry_columns(shard: Path) -> pa.Table:
    """The geometry columns of one shard, after checking its format version (an old shard without
    charge and multiplicity is an error that says to featurise again, not a neutral molecule)."""
    read_graph_metadata(shard)
    return pq.read_table(shard, columns=_GEOMETRY_COLUMNS)


def read_geometries(data: str | Path, mol_ids: Sequence[str] | np.ndarray) -> list[Geometry]:
    """(mol_id, z [n], pos [n, 3] in Å, charge, multiplicity) of ``mol_ids``, in that order, from the
    dataset's graph shards.

    Reads only the id, atom, coordinate, charge and multiplicity columns (not the edges).
    """
    shards = dataset_shards(data)
    wanted = pa.array(np.asarray(mol_ids, dtype=object).astype(str), pa.string())
    table = pa.concat_tables(
        [t.filter(pc.is_in(t["mol_id"], wanted)) for t in
         (_geometry_columns(s) for s in shards)]
    )  # fmt: skip
    found = {m: k for k, m in enumerate(table["mol_id"].to_pylist())}
    missing = [m for m in wanted.to_pylist() if m not in found]  # plain str
    if missing:
        raise ValueError(f"{data}: {len(missing)} molecules are not in the dataset, e.g. {missing[:3]}")
    z_col, pos_col = table["z"].to_pylist(), table["pos"].to_pylist()
    charge_col, mult_col = table["charge"].to_pylist(), table["multiplicity"].to_pylist()
    return [
        Geometry(
            m,
            np.asarray(z_col[found[m]], dtype=np.int64),
            np.asarray(pos_col[found[m]], dtype=np.float64).reshape(-1, 3),
            int(charge_col[found[m]]),
            int(mult_col[found[m]]),
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

    ``settings`` are keyword arguments of the oracle's single-point function in :mod:`pipeline.label.qc`
    (e.g. ``{"basis": "def2-SVP", "threads": 2}`` for pyscf); an unknown key fails before any
    calculation. Each molecule is computed with its own charge and multiplicity from the graph shards.
    """
    from pipeline.label.qc import label_molecules

    if get_oracle(name).kind != "compute":
        raise ValueError(f"oracle {name!r} does not compute labels; label chunks are for pyscf and xtb")
    ids = chunk_of(mol_ids, chunk, chunks)
    geometries = read_geometries(data, ids)
    log.info("%s: chunk %d of %d, %d molecules", name, chunk, chunks, len(ids))
    labels, failed = label_molecules(
        name,
        ids,
        [g.z for g in geometries],
        [g.pos for g in geometries],
        settings or {},
        charges=[g.charge for g in geometries],
        multiplicities=[g.multiplicity for g in geometries],
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


class LabelChunk(NamedTuple):
    """What one label_chunk job wrote: its labels and its failures (two files, both given)."""

    labels: Path
    failures: Path


def read_parts(
    parts: Sequence[LabelChunk], mol_ids: Sequence[str] | np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join label chunks (each its labels and its failures file): labels and failures.

    Every molecule of ``mol_ids`` must be in exactly one of them (labelled or failed): a chunk made for
    another set of molecules is an error, not a silent gap.
    """
    labels, failed = [], []
    for part in parts:
        labels.append(pq.read_table(part.labels).to_pandas())
        failed.append(pq.read_table(part.failures).to_pandas())
    labels_df = pd.concat(labels, ignore_index=True) if labels else pd.DataFrame({"mol_id": []})
    failed_df = pd.concat(failed, ignore_index=True) if failed else failures_table().to_pandas()
    done = np.concatenate([labels_df.mol_id.to_numpy(object), failed_df.mol_id.to_numpy(object)])
    wanted = np.asarray(mol_ids, dtype=object).astype(str)
    missing = np.setdiff1d(wanted, done.astype(str)).tolist()
    extra = np.setdiff1d(done.astype(str), wanted).tolist()
    if missing or extra or len(done) != len(wanted):
        raise ValueError(
            f"label chunks {', '.join(str(p.labels) for p in parts)}: they hold {len(done)} molecules for "
            f"{len(wanted)} requested ({len(missing)} missing, e.g. {missing[:3]}; {len(extra)} "
            f"not requested, e.g. {extra[:3]}); delete them to recompute"
        )
    return _in_request_order(labels_df, wanted), failed_df


# -------------------------------------------------------------------------------------- external


class LabelsNeeded(RuntimeError):
    """The external oracle is waiting for a person to provide labels (the run stops, then resumes)."""


class LabelRequest(NamedTuple):
    """The external oracle's request (two files, both given): the molecules' geometries as extended
    XYZ, and the CSV form to fill in and save as the labels file."""

    xyz: Path
    csv: Path


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
    """The molecules to label as extended XYZ (for any QC program) and as a CSV form to fill in.

    Both state each molecule's net charge and spin multiplicity (info keys ``charge`` and
    ``multiplicity`` in the xyz file, columns in the form): the species to compute.
    """
    from ase import Atoms
    from ase.io import write

    geometries = read_geometries(data, mol_ids)
    atoms = [
        Atoms(numbers=g.z, positions=g.pos, info={"mol_id": g.mol_id, "charge": g.charge,
                                                  "multiplicity": g.multiplicity})
        for g in geometries
    ]  # fmt: skip
    with atomic_path(xyz) as tmp:
        write(tmp, atoms, format="extxyz")
    form = pd.DataFrame(
        {
            "mol_id": [g.mol_id for g in geometries],
            "formula": [a.get_chemical_formula() for a in atoms],
            "n_atoms": [len(a) for a in atoms],
            "charge": [g.charge for g in geometries],
            "multiplicity": [g.multiplicity for g in geometries],
            **{_header(t): np.nan for t in targets},
            "failure": "",
        }
    )
    with atomic_path(csv) as tmp:
        form.to_csv(tmp, index=False)


def read_external_labels(
    path: str | Path,
    mol_ids: Sequence[str] | np.ndarray,
    targets: Sequence[str],
    ranges: dict[str, tuple[float, float]] | None = None,
    sha256: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and validate a labels file from a person or lab: (labels, failures).

    The file is the ``to_label.csv`` form filled in: ``mol_id``, one column per target whose header
    names its unit as the form does (``homo [eV]``), and an optional ``failure`` column: a molecule
    with a reason there could not be labelled; it is recorded as a failure and leaves the pool. Every
    requested molecule must appear exactly once; no other may; every target cell of a molecule
    without a failure reason must be a finite number within the target's range in ``ranges``
    (target -> (low, high), :func:`pipeline.config.units.plausible_ranges`): a HOMO of 1e30 eV is a typing or
    unit error, refused naming the molecule, the column and the range.

    ``sha256``: the file must have these bytes (the checksum the workflow planned the job with and
    records in the labels' metadata); a file changed since is refused.
    """
    where = str(path)
    raw = Path(path).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if sha256 is not None and digest != sha256:
        raise ValueError(
            f"{where}: changed since this job was planned (SHA-256 {digest[:12]}..., planned with "
            f"{sha256[:12]}...); run the workflow again to label from the file as it is now"
        )
    ranges = ranges or {}
    try:
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
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
        raise ValueError(
            f"{where}: {'; '.join(problems)} (filled in for another request? The picks change when "
            f"earlier labels change: delete the file to get a new form)"
        )
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
        if target in ranges:
            low, high = ranges[target]
            outside = (numbers.to_numpy(np.float64) < low) | (numbers.to_numpy(np.float64) > high)
            outside &= ~failed.to_numpy()
            if outside.any():
                unit = TARGET_UNITS.get(target, "")
                pairs = zip(ids[outside][:3], numbers[outside][:3], strict=True)
                examples = ", ".join(f"{m!r}: {v:g}" for m, v in pairs)
                raise ValueError(
                    f"{where}: {int(outside.sum())} molecules have a value in {column!r} outside the "
                    f"plausible range [{low:g}, {high:g}] {unit} ({examples}); check the number and "
                    f"its unit, or give a reason in the 'failure' column (the range is the dataset's "
                    f"oracle.ranges.{target} setting)"
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
    labels_file: str | Path,
    request: LabelRequest,
    targets: Sequence[str],
    ranges: dict[str, tuple[float, float]] | None = None,
    sha256: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labels from ``labels_file``; without that file, write ``request`` and stop.

    The request is its two files, ``request.xyz`` and ``request.csv`` (the form), written where
    given; the exception says to save the filled-in form as ``labels_file``. Rerunning the workflow
    then reads and validates it (:func:`read_external_labels`, with ``ranges`` and ``sha256``).
    """
    labels_file = Path(labels_file)
    if labels_file.exists():
        labels, failures = read_external_labels(labels_file, mol_ids, targets, ranges, sha256)
        log.info("%s: %d labels, %d failures", labels_file, len(labels), len(failures))
        return labels, failures
    xyz, csv = request
    write_request(data, mol_ids, xyz, csv, targets)
    raise LabelsNeeded(
        f"{len(mol_ids)} molecules need labels: their geometries are in {xyz} and the form in {csv}. "
        f"Fill in the columns {', '.join(_header(t) for t in targets)} (or a reason in 'failure' for a "
        f"molecule that cannot be labelled), save it as {labels_file}, and run the workflow again"
    )


# ------------------------------------------------------------------------------- the label stages
# (`pipeline label`, `pipeline label-holdout`: no torch, so label jobs start in about a second)


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


def _with_labelling(frame: pd.DataFrame, records: list[dict[str, Any]]) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {}), LABELLING_KEY: json.dumps(records, sort_keys=True).encode()}
    return table.replace_schema_metadata(meta)


def _file_record(path: str | Path) -> dict[str, str]:
    return {"path": str(path), "sha256": file_sha256(path)}


@dataclass(frozen=True)
class OracleInput:
    """Where the label stages get labels from: the oracle's name and what that oracle reads."""

    name: str = "answer_key"
    answer_key: Path | None = None  # answer_key: the dataset's answer_key.parquet
    parts: list[LabelChunk] | None = None  # pyscf, xtb: the label chunks (label_chunk jobs)
    data: Path | None = None  # external: the dataset folder (geometries of the request)
    #: the run's settings: its targets, which every molecule must have a value for (external: the
    #: columns of the form)
    run_json: Path | None = None
    targets: Sequence[str] | None = None  # the targets, instead of run_json (Python callers)
    #: the dataset's ``oracle.ranges``: target -> [low, high] (None: unchecked) over the defaults of
    #: :data:`pipeline.config.units.PLAUSIBLE_RANGES`; QC values outside are failures, external ones refused
    ranges: dict[str, Sequence[float] | None] | None = None
    #: external: the SHA-256 the labels file must have (the workflow's plan of the job)
    labels_sha256: str | None = None
    labels_file: Path | None = None  # external: the filled-in form it reads (labels.csv)
    request: LabelRequest | None = None  # external: the request it writes without that file

    def requested_targets(self) -> list[str]:
        """The targets every labelled molecule must have: ``targets``, else run.json's; a QC oracle
        without either checks all it computes."""
        if self.targets is not None:
            return list(self.targets)
        if self.run_json is not None:
            return list(json.loads(Path(self.run_json).read_text())["targets"])
        info = get_oracle(self.name)
        if info.kind == "compute" and info.targets:
            return list(info.targets)
        raise ValueError(f"the {self.name} oracle needs --run-json (the run's targets)")

    def ask(self, mol_ids: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, str]]]:
        """Labels and failures of ``mol_ids`` (see :mod:`pipeline.label.oracle`), and the files the labels
        came from (path, sha256)."""
        kind = get_oracle(self.name).kind
        targets = self.requested_targets()
        ranges = plausible_ranges(targets, self.ranges)
        if kind == "lookup":
            if self.answer_key is None:
                raise ValueError("the answer_key oracle needs --answer-key")
            labels, failed = answer_key(self.answer_key, mol_ids, targets)
            return labels, failed, [_file_record(self.answer_key)]
        if kind == "compute":
            if self.parts is None:
                raise ValueError(
                    f"the {self.name} oracle needs --parts and --part-failures (the label chunks)"
                )
            labels, failed = read_parts(self.parts, mol_ids)
            labels, implausible = screen(labels, targets, f"from {self.name}", ranges)
            if len(implausible):
                failed = implausible if failed.empty else pd.concat([failed, implausible], ignore_index=True)
            return labels, failed, [_file_record(f) for part in self.parts for f in part]
        if self.data is None:
            raise ValueError("the external oracle needs --data and --run-json")
        if self.labels_file is None or self.request is None:
            raise ValueError(
                "the external oracle needs --labels-file, --request-xyz and --request-csv (the labels "
                "file it reads, and the request it writes while that file is missing)"
            )
        labels_file = Path(self.labels_file)
        sha256 = self.labels_sha256
        if sha256 is None and labels_file.exists():
            sha256 = file_sha256(labels_file)  # read_external_labels checks it parses these bytes
        labels, failed = external_labels(
            self.data, mol_ids, labels_file, self.request, targets, ranges, sha256
        )
        return labels, failed, [{"path": str(labels_file), "sha256": sha256}]


def _log_failures(what: str, failed: pd.DataFrame, asked: int, failures: Path) -> None:
    if len(failed):
        first = failed.iloc[0]
        log.warning(
            "%s: %d of %d molecules could not be labelled and are left out (listed in %s), e.g. %s: %s",
            what, len(failed), asked, failures, first.mol_id, first.reason,
        )  # fmt: skip


class NothingLabelled(RuntimeError):
    """Every molecule of a request failed: a round (or val/test) with no label must not train."""


def _refuse_if_nothing_labelled(what: str, labelled: int, failed: pd.DataFrame) -> None:
    """Stop, with the most common reasons, when ``failed`` holds the whole request."""
    if labelled == 0 and len(failed):
        reasons = failed.reason.value_counts().head(3)
        raise NothingLabelled(
            f"{what}: the oracle labelled none of the {len(failed)} molecules asked for, so nothing "
            "would be trained or scored on them; most common reasons: "
            + "; ".join(f"{n} x {r}" for r, n in reasons.items())
            + " (fix the oracle's settings or the dataset, then run again)"
        )


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

    The only per-round stage that reads the answer key. A round whose every pick failed stops
    (:class:`NothingLabelled`) instead of training on nothing new. A failed molecule (no value for one of the
    run's targets, a calculation that failed, a reason in a labels file) is listed with its reason
    and round in ``failures`` (cumulative over rounds); selection never offers it again. ``out``
    records where each round's labels came from and how many failed (:func:`read_labelling`).
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
    new, failed, files = source.ask(picked)
    _refuse_if_nothing_labelled(f"round {round} ({selected})", len(new), failed)
    new["round_added"] = np.int32(round)
    failed["round"] = np.int32(round)
    labelled = new if before is None else pd.concat([before, new], ignore_index=True)
    failed_all = failed if failed_before is None else pd.concat([failed_before, failed], ignore_index=True)
    write_table(failures_table(failed_all), failures)
    record = {"round": int(round), "oracle": source.name, "files": files, "requested": len(picked),
              "labelled": len(new), "failed": len(failed)}  # fmt: skip
    table = _with_labelling(labelled, (read_labelling(previous) if previous is not None else []) + [record])
    write_table(table, out)
    log.info("round %d: %d labelled (%d new, %d failed)", round, len(labelled), len(new), len(failed))
    _log_failures(f"round {round}", failed, len(picked), failures)
    return table


def label_holdout(split_path: Path, out: Path, failures: Path, source: OracleInput) -> pa.Table:
    """Labels of the val and test molecules (early stopping and the reported error).

    A molecule the oracle could not label (as in :func:`label_round`) is listed in ``failures`` and
    left out of val or test; ``out`` records how many of each (:func:`read_labelling`).
    """
    held = holdout_ids(split_path)
    ids = held.mol_id.to_numpy().astype(str)
    labels, failed, files = source.ask(ids)
    split_of = held.set_index("mol_id")["split"]
    labels.insert(1, "split", split_of.loc[labels.mol_id].to_numpy())
    for part in ("val", "test"):
        mine = failed[split_of.loc[failed.mol_id.to_numpy(object)].to_numpy() == part]
        _refuse_if_nothing_labelled(
            f"{part} molecules of {split_path}", int((labels.split == part).sum()), mine
        )
    write_table(failures_table(failed), failures)

    def per_split(mol_ids: pd.Series) -> dict[str, int]:
        counts = split_of.loc[mol_ids.to_numpy(object)].value_counts()
        return {part: int(counts.get(part, 0)) for part in ("val", "test")}

    record = {"oracle": source.name, "files": files, "requested": per_split(held.mol_id),
              "labelled": per_split(labels.mol_id), "failed": per_split(failed.mol_id)}  # fmt: skip
    table = _with_labelling(labels, [record])
    write_table(table, out)
    _log_failures(f"val/test (val {record['failed']['val']}, test {record['failed']['test']})", failed,
                  len(ids), failures)  # fmt: skip
    return table


# ------------------------------------------------------------------------------ helping properties


def helper_labels(
    split_path: str | Path,
    helpers: dict[str, Any],
    targets: Sequence[str],
    out: str | Path,
    *,
    answer_key: str | Path | None = None,
    parts: Sequence[LabelChunk] = (),
) -> pa.Table:
    """Every pool molecule's helping properties (run key ``helpers``) -> ``out`` (helpers.parquet:
    mol_id + one float64 column per :func:`pipeline.config.settings.helper_columns` name, NaN where the
    helper has no value).

    ``helpers["source"]`` ``dataset`` reads them from ``answer_key`` (never one of the run's
    ``targets``: refused, as that would hand the teacher the answer for every pool molecule);
    ``xtb`` from the dataset's helper chunks (``parts``, computed by :func:`label_chunk` over every
    molecule of the dataset), whose failures become NaN. The molecules' target values are never
    read. Returns the table written.
    """
    from pipeline.config.settings import helper_columns

    properties, columns = list(helpers.get("properties") or ()), helper_columns(helpers)
    if not properties:
        raise ValueError("the run has no helping properties (helpers.properties is empty)")
    split = pq.read_table(split_path).to_pandas()
    pool = split.mol_id[split.split.astype(str) == "pool"].astype(str).to_numpy()
    if helpers["source"] == "dataset":
        leaked = sorted(set(properties) & set(targets))
        if leaked:
            raise ValueError(f"helping properties {leaked} are targets of the run: refused (label leak)")
        if answer_key is None:
            raise ValueError("helpers from the dataset need its answer key (--answer-key)")
        names = pq.read_schema(answer_key).names
        absent = [p for p in properties if p not in names]
        if absent:
            raise ValueError(f"{answer_key}: no property {absent} (its properties: {names[1:]})")
        key = pq.read_table(answer_key, columns=["mol_id", *properties]).to_pandas()
        values = key.set_index(key.mol_id.astype(str)).reindex(pool)[properties]
        where = str(answer_key)
    else:
        if not parts:
            raise ValueError(f"helpers from {helpers['source']} need its chunks (--parts, --part-failures)")
        labels = pd.concat([pq.read_table(p.labels).to_pandas() for p in parts], ignore_index=True)
        failed = pd.concat([pq.read_table(p.failures).to_pandas() for p in parts], ignore_index=True)
        done = set(labels.mol_id.astype(str)) | set(failed.mol_id.astype(str))
        missing = [m for m in pool if m not in done]
        if missing:
            raise ValueError(
                f"helper chunks {', '.join(str(p.labels) for p in parts)}: {len(missing)} pool molecules "
                f"are neither labelled nor failed (e.g. {missing[:3]}); they were made for another "
                "dataset: delete them to compute again"
            )
        values = labels.set_index(labels.mol_id.astype(str)).reindex(pool)[properties]
        where = f"{helpers['source']} chunks"
    table = pa.table(
        {
            "mol_id": pool,
            **{c: values[p].to_numpy(np.float64) for c, p in zip(columns, properties, strict=True)},
        }
    )
    write_table(table, out)
    for c in columns:
        n = int(np.isfinite(table[c].to_numpy(zero_copy_only=False)).sum())
        log.info("helper %s: %d of %d pool molecules have a value (%s)", c, n, len(pool), where)
    return table
