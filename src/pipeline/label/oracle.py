"""Oracles: who labels the molecules the strategy picked (and the val/test molecules).

Chosen per dataset by ``oracle.name`` in the config (:data:`~pipeline.label.base.ORACLES`):

``answer_key``
    A lookup in the dataset's answer key (benchmark datasets). Only the ``label`` rules read it (no other
    rule may: ``tests/test_workflow.py`` checks the plan).
``pyscf`` / ``xtb``
    Quantum chemistry at the molecule's stored geometry, for its stored net charge and spin
    multiplicity (:mod:`pipeline.label.qc`; graph columns ``charge`` and ``multiplicity``). The molecules
    to label are split into chunks (:func:`~pipeline.label.chunks.chunk_of`), each a separate job
    (:func:`~pipeline.label.chunks.label_chunk`) writing its labels and its failures; the ``label`` stage
    joins the chunks (:func:`~pipeline.label.chunks.read_parts`). A molecule whose calculation fails is
    listed with its reason and leaves the pool; the round goes on with the molecules that were labelled.
``external``
    A person or a lab labels them: :func:`~pipeline.label.external.external_labels` writes the request it is
    given (a :class:`~pipeline.label.external.LabelRequest`: the geometries as extended XYZ and a CSV form;
    the workflow's are ``to_label.xyz`` and ``to_label.csv``) and stops with
    :class:`~pipeline.label.external.LabelsNeeded`, which says where to put the labels file (also given:
    ``labels.csv``); on the next run that file is read and validated (ids, columns, units, no NaN, values
    within the targets' plausible ranges).

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
(:func:`~pipeline.label.provenance.read_labelling`), which oracle and which files (with their SHA-256) the
labels came from and how many molecules failed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config.digest import file_sha256
from pipeline.config.units import plausible_ranges
from pipeline.data.split import holdout_ids
from pipeline.data.store import write_table
from pipeline.label.base import failures_table, get_oracle, screen
from pipeline.label.chunks import LabelChunk, read_parts
from pipeline.label.external import LabelRequest, external_labels
from pipeline.label.lookup import answer_key
from pipeline.label.provenance import file_record, read_labelling, with_labelling

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- the label stages
# (`pipeline label`, `pipeline label-holdout`: no torch, so label jobs start in about a second)


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
            return labels, failed, [file_record(self.answer_key)]
        if kind == "compute":
            if self.parts is None:
                raise ValueError(
                    f"the {self.name} oracle needs --parts and --part-failures (the label chunks)"
                )
            labels, failed = read_parts(self.parts, mol_ids)
            labels, implausible = screen(labels, targets, f"from {self.name}", ranges)
            if len(implausible):
                failed = implausible if failed.empty else pd.concat([failed, implausible], ignore_index=True)
            return labels, failed, [file_record(f) for part in self.parts for f in part]
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
    table = with_labelling(labelled, (read_labelling(previous) if previous is not None else []) + [record])
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
    table = with_labelling(labels, [record])
    write_table(table, out)
    _log_failures(f"val/test (val {record['failed']['val']}, test {record['failed']['test']})", failed,
                  len(ids), failures)  # fmt: skip
    return table


# ------------------------------------------------------------------------------ helping properties


def _chunk_values(
    parts: Sequence[LabelChunk], ids: np.ndarray, properties: Sequence[str], what: str
) -> pd.DataFrame:
    """The ``properties`` of molecules ``ids`` (rows in that order, NaN where the cheap method failed)
    from a dataset's helper chunks (:func:`label_chunk` over every molecule of it); a molecule in
    neither the labels nor the failures is an error (the chunks were made for another dataset)."""
    if not parts:
        raise ValueError(f"{what} need its chunks (--parts, --part-failures)")
    labels = pd.concat([pq.read_table(p.labels).to_pandas() for p in parts], ignore_index=True)
    failed = pd.concat([pq.read_table(p.failures).to_pandas() for p in parts], ignore_index=True)
    done = set(labels.mol_id.astype(str)) | set(failed.mol_id.astype(str))
    missing = [m for m in ids if m not in done]
    if missing:
        raise ValueError(
            f"helper chunks {', '.join(str(p.labels) for p in parts)}: {len(missing)} molecules of the run "
            f"are neither labelled nor failed (e.g. {missing[:3]}); they were made for another "
            "dataset: delete them to compute again"
        )
    absent = sorted(set(properties) - set(labels.columns))
    if absent:
        raise ValueError(
            f"helper chunks {parts[0].labels}: no column {absent} (they have {list(labels.columns)})"
        )
    return labels.set_index(labels.mol_id.astype(str)).reindex(ids)[list(properties)]


def baseline_values(
    split_path: str | Path, delta: dict[str, Any], out: str | Path, parts: Sequence[LabelChunk]
) -> pa.Table:
    """The cheap method's value of each delta target (run key ``delta``) for every pool, val and test
    molecule -> ``out`` (baseline.parquet: mol_id + one float64 column per target, NaN where the
    method failed), from the dataset's helper chunks. Reads no label. Returns the table written."""
    properties = dict(delta.get("properties") or {})
    if not properties:
        raise ValueError("the run learns no target relative to a cheap method (delta.properties is empty)")
    ids = pq.read_table(split_path, columns=["mol_id"])["mol_id"].to_numpy(zero_copy_only=False).astype(str)
    values = _chunk_values(
        parts, ids, list(dict.fromkeys(properties.values())), f"delta from {delta['source']}"
    )
    table = pa.table({"mol_id": ids, **{t: values[p].to_numpy(np.float64) for t, p in properties.items()}})
    write_table(table, out)
    for target, prop in properties.items():
        n = int(np.isfinite(table[target].to_numpy(zero_copy_only=False)).sum())
        log.info(
            "delta %s - %s %s: %d of %d molecules have a baseline", target, delta["source"], prop, n, len(ids)
        )
    return table


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
        values = _chunk_values(parts, pool, properties, f"helpers from {helpers['source']}")
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
