"""The external oracle (a person or a lab): the request it writes (``to_label.xyz`` and
``to_label.csv``: the molecules, their geometry and charge), and the labels file a person fills in,
read and checked (:func:`read_external_labels`: ids, units in the header, plausible values, reasons
for the molecules that could not be labelled, the checksum the workflow recorded)."""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from pipeline.config.units import TARGET_UNITS
from pipeline.data.sources.base import csv_shape_problem
from pipeline.data.store import atomic_path
from pipeline.label.chunks import in_request_order, read_geometries

log = logging.getLogger(__name__)


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


#: The columns of the request form that say what was asked (the species and its size); a labels file
#: that changes one is refused: its labels are of another species than the one requested.
REQUEST_COLUMNS = ("formula", "n_atoms", "charge", "multiplicity")

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
    from ase.io import write

    atoms, asked = _asked(data, mol_ids)
    with atomic_path(xyz) as tmp:
        write(tmp, atoms, format="extxyz")
    form = asked.assign(**{_header(t): np.nan for t in targets}, failure="")
    with atomic_path(csv) as tmp:
        form.to_csv(tmp, index=False)


def _asked(data: str | Path, mol_ids: Sequence[str] | np.ndarray) -> tuple[list, pd.DataFrame]:
    """The requested molecules as ASE Atoms, and the form's ``mol_id`` and :data:`REQUEST_COLUMNS`."""
    from ase import Atoms

    geometries = read_geometries(data, mol_ids)
    atoms = [
        Atoms(numbers=g.z, positions=g.pos, info={"mol_id": g.mol_id, "charge": g.charge,
                                                  "multiplicity": g.multiplicity})
        for g in geometries
    ]  # fmt: skip
    form = pd.DataFrame(
        {
            "mol_id": [g.mol_id for g in geometries],
            "formula": [a.get_chemical_formula() for a in atoms],
            "n_atoms": [len(a) for a in atoms],
            "charge": [g.charge for g in geometries],
            "multiplicity": [g.multiplicity for g in geometries],
        }
    )
    return atoms, form


def _changed_request(where: str, frame: pd.DataFrame, ids: pd.Series, data: str | Path) -> str | None:
    """Why the request columns of a labels file differ from what was asked (naming the molecule, the
    column and both values), or None: the file does not change them, or has none of them."""
    present = [column for column in REQUEST_COLUMNS if column in frame.columns]
    if not present:
        return None
    asked = _asked(data, ids.to_numpy())[1].set_index("mol_id")
    changed = []
    for column in present:
        given, wanted = frame[column].str.strip().to_numpy(), asked.loc[ids, column].to_numpy()
        if column != "formula":
            numbers = pd.to_numeric(pd.Series(given), errors="coerce").to_numpy(np.float64)
            differs = ~(numbers == wanted.astype(np.float64))
        else:
            differs = given != wanted.astype(str)
        changed += [(ids.iat[k], column, given[k], wanted[k]) for k in np.flatnonzero(differs)]
    if not changed:
        return None
    shown = "; ".join(f"molecule {m!r}: {c} {g!r}, asked {w!r}" for m, c, g, w in changed[:3])
    more = f" (and {len(changed) - 3} more cells)" if len(changed) > 3 else ""
    return (
        f"{where}: the request's columns were changed: {shown}{more}. The labels must be of the species "
        "requested (another charge or spin is another molecule): label it as asked and leave these "
        "columns as the form gives them, or give a reason in the 'failure' column"
    )


def read_external_labels(
    path: str | Path,
    mol_ids: Sequence[str] | np.ndarray,
    targets: Sequence[str],
    ranges: dict[str, tuple[float, float]] | None = None,
    sha256: str | None = None,
    data: str | Path | None = None,
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

    ``data``: the dataset folder the request was written from; the file's request columns
    (:data:`REQUEST_COLUMNS`: a molecule's formula, atom count, charge and multiplicity), where it
    keeps them, must be as the request gave them.
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
        problem = csv_shape_problem(raw.decode("utf-8-sig"))  # rows that do not fit shift the columns
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
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
    changed = _changed_request(where, frame, ids, data) if data is not None else None
    if changed is not None:
        raise ValueError(changed)
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
    labels = in_request_order(values[~failed.to_numpy()], wanted)
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
        labels, failures = read_external_labels(labels_file, mol_ids, targets, ranges, sha256, data)
        log.info("%s: %d labels, %d failures", labels_file, len(labels), len(failures))
        return labels, failures
    xyz, csv = request
    write_request(data, mol_ids, xyz, csv, targets)
    raise LabelsNeeded(
        f"{len(mol_ids)} molecules need labels: their geometries are in {xyz} and the form in {csv}. "
        f"Fill in the columns {', '.join(_header(t) for t in targets)} (or a reason in 'failure' for a "
        f"molecule that cannot be labelled), save it as {labels_file}, and run the workflow again"
    )
