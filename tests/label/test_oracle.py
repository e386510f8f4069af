"""Oracles as the label stages use them (pipeline.label.oracle): chunks that partition the request, QC
labels joined from chunk files with their failures, and the external oracle's request, stop and
validated labels file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ase.io import read

from pipeline.config.digest import file_sha256
from pipeline.data.featurise import FeaturiseSettings, featurise
from pipeline.data.graphs import load_graphs
from pipeline.data.store import write_json, write_table
from pipeline.label import base as label_base
from pipeline.label import chunks, external, lookup, oracle, provenance
from pipeline.label.chunks import LabelChunk, chunk_of, read_parts
from pipeline.label.external import LabelRequest, LabelsNeeded, read_external_labels

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, qm9_lines: list[str]) -> Path:
    """The first 12 QM9 molecules featurised in two shards (so geometries come from both)."""
    tmp = tmp_path_factory.mktemp("oracle")
    csv = tmp / "first12.csv"
    csv.write_text("".join(qm9_lines[:13]))
    featurise(FeaturiseSettings(source="qm9", inputs=[str(csv)], num_shards=2), tmp / "data", shard_size=6)
    return tmp / "data"


@pytest.fixture(scope="module")
def ids(data: Path) -> np.ndarray:
    return load_graphs(data).mol_id.astype(str)


@pytest.mark.parametrize(("n", "chunks"), [(10, 3), (2, 4), (0, 2), (7, 1)])
def test_chunks_partition_the_request_in_order(n, chunks):
    ids = np.array([f"m{i}" for i in range(n)], dtype=object)
    parts = [chunk_of(ids, c, chunks) for c in range(chunks)]
    assert np.concatenate(parts).tolist() == ids.tolist()
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError, match="chunk 3 is not in 0..2"):
        chunk_of(ids, 3, 3)


def test_geometries_are_the_featurised_ones_in_request_order(data, ids):
    graphs = load_graphs(data)
    wanted = ids[[7, 2, 11]]
    got = chunks.read_geometries(data, wanted)
    assert [g.mol_id for g in got] == wanted.tolist()
    assert [(g.charge, g.multiplicity) for g in got] == [(0, 1)] * 3  # QM9: neutral singlets
    for mol_id, z, pos, _, _ in got:
        k = int(graphs.index_of([mol_id])[0])
        a, b = int(graphs.atom_ptr[k]), int(graphs.atom_ptr[k + 1])
        assert np.array_equal(z, graphs.z[a:b].numpy()) and np.allclose(pos, graphs.pos[a:b].numpy())
    with pytest.raises(ValueError, match=r"1 molecules are not in the dataset, e.g. \['nope'\]"):
        chunks.read_geometries(data, [ids[0], "nope"])


def test_xtb_chunks_label_and_join(data, ids, tmp_path):
    pytest.importorskip("tblite")
    request = ids[:5]
    parts = []
    for c in range(2):
        part = LabelChunk(tmp_path / f"chunk-{c:03d}.parquet", tmp_path / f"failed-{c}.parquet")
        chunks.label_chunk("xtb", data, request, c, 2, part.labels, part.failures)
        parts.append(part)
    assert len(pq.read_table(parts[0].labels)) == 3 and len(pq.read_table(parts[1].labels)) == 2
    labels, failures = read_parts(parts, request)
    assert labels.mol_id.tolist() == request.tolist() and failures.empty
    assert np.isfinite(labels[["homo", "lumo", "gap", "mu"]].to_numpy()).all()
    assert (labels.gap - (labels.lumo - labels.homo)).abs().max() < 1e-9
    # chunks made for another request are refused, not silently joined
    with pytest.raises(ValueError, match="2 molecules for 5 requested .3 missing"):
        read_parts(parts[1:], request)
    with pytest.raises(ValueError, match="unknown settings \\['basis'\\]"):
        chunks.label_chunk("xtb", data, request, 0, 1, tmp_path / "x.parquet", tmp_path / "y.parquet",
                           {"basis": "sto-3g"})  # fmt: skip
    with pytest.raises(ValueError, match="does not compute labels"):
        chunks.label_chunk("answer_key", data, request, 0, 1, tmp_path / "x.parquet", tmp_path / "y.parquet")


def test_pyscf_chunk_labels_and_records_scf_failures_through_the_cli(data, ids, tmp_path):
    """`pipeline label-chunk` as the label_chunk rule calls it: settings as JSON, failures kept."""
    pytest.importorskip("pyscf")
    from pipeline.cli import main

    write_table(pa.table({"mol_id": ids[:3].tolist(), "pick": [0, 1, 2]}), tmp_path / "selected.parquet")
    common = [
        "label-chunk",
        "--oracle",
        "pyscf",
        "--data",
        str(data),
        "--request",
        str(tmp_path / "selected.parquet"),
    ]
    out = tmp_path / "chunk-000.parquet"
    args = [
        *common,
        "--chunk",
        "0",
        "--chunks",
        "1",
        "--out",
        str(out),
        "--failures",
        str(tmp_path / "f.parquet"),
    ]
    assert main([*args, "--settings", '{"basis": "sto-3g", "threads": 1}']) == 0
    labels = pq.read_table(out).to_pandas()
    assert labels.mol_id.tolist() == ids[:3].tolist() and (labels.homo < labels.lumo).all()
    assert pq.read_table(tmp_path / "f.parquet").num_rows == 0
    # an SCF capped at 2 cycles cannot converge: every molecule is a failure with its reason
    assert main([*args, "--settings", '{"basis": "sto-3g", "max_cycle": 2}']) == 0
    failures = pq.read_table(tmp_path / "f.parquet").to_pandas()
    assert pq.read_table(out).num_rows == 0 and failures.mol_id.tolist() == ids[:3].tolist()
    assert failures.reason.str.startswith("SCF did not converge in 2 cycles").all()
    assert main([*args, "--settings", '["basis"]']) == 2  # not a JSON object: refused, one line


def _chunk(path: Path, labels: pd.DataFrame, failures: pd.DataFrame) -> LabelChunk:
    """A label chunk's two files (the failures under a name unrelated to the labels': the stages are
    given both, nothing is derived)."""
    chunk = LabelChunk(path, path.parent / f"failed-in-{path.stem}.parquet")
    write_table(label_base.failures_table(failures), chunk.failures)
    write_table(pa.Table.from_pandas(labels, preserve_index=False), chunk.labels)
    return chunk


def test_label_stage_keeps_going_without_failed_molecules_and_never_offers_them_again(tmp_path, ids):
    """A failed pick is recorded with its round and reason, L_r grows by the rest, failures accumulate."""
    picks0, picks1 = ids[:4], ids[4:7]
    for name, picks in (("initial", picks0), ("selected", picks1)):
        write_table(pa.table({"mol_id": picks.tolist()}), tmp_path / f"{name}.parquet")
    ok = lambda m: {"mol_id": m, "homo": -7.0, "lumo": 1.0, "gap": 8.0, "mu": 1.5, "energy": -1e3}  # noqa: E731
    fail = lambda m: {"mol_id": m, "reason": "SCF did not converge in 100 cycles", "seconds": 3.0}  # noqa: E731
    part0 = _chunk(
        tmp_path / "r0.parquet", pd.DataFrame([ok(m) for m in picks0[:3]]), pd.DataFrame([fail(picks0[3])])
    )
    oracle.label_round(tmp_path / "initial.parquet", 0, tmp_path / "l0.parquet", tmp_path / "f0.parquet",
                 oracle.OracleInput("xtb", parts=[part0]))  # fmt: skip
    part1 = _chunk(
        tmp_path / "r1.parquet", pd.DataFrame([ok(m) for m in picks1[1:]]), pd.DataFrame([fail(picks1[0])])
    )
    oracle.label_round(tmp_path / "selected.parquet", 1, tmp_path / "l1.parquet", tmp_path / "f1.parquet",
                 oracle.OracleInput("xtb", parts=[part1]), previous=tmp_path / "l0.parquet",
                 previous_failures=tmp_path / "f0.parquet")  # fmt: skip
    l1 = pq.read_table(tmp_path / "l1.parquet").to_pandas()
    f1 = pq.read_table(tmp_path / "f1.parquet").to_pandas()
    assert l1.mol_id.tolist() == [*picks0[:3], *picks1[1:]] and l1.round_added.tolist() == [0, 0, 0, 1, 1]
    assert f1.mol_id.tolist() == [picks0[3], picks1[0]] and f1["round"].tolist() == [0, 1]
    assert (f1.reason == "SCF did not converge in 100 cycles").all()
    # a selection that offers a failed molecule again is refused
    write_table(pa.table({"mol_id": [picks0[3]]}), tmp_path / "again.parquet")
    with pytest.raises(ValueError, match="picks molecules the oracle failed on before"):
        oracle.label_round(tmp_path / "again.parquet", 2, tmp_path / "l2.parquet", tmp_path / "f2.parquet",
                     oracle.OracleInput("xtb", parts=[part1]), previous=tmp_path / "l1.parquet",
                     previous_failures=tmp_path / "f1.parquet")  # fmt: skip


# ---------------------------------------------------------------------------------------- external


def _fill(
    form: Path, out: Path, values: dict[str, float], failures: dict[str, str] | None = None
) -> pd.DataFrame:
    """A person filling in the form: the target column for every row, or a reason in 'failure'."""
    frame = pd.read_csv(form, keep_default_na=False)
    for mol_id, reason in (failures or {}).items():
        frame.loc[frame.mol_id == mol_id, "failure"] = reason
    frame["homo [eV]"] = [values.get(m, "") for m in frame.mol_id]
    frame.to_csv(out, index=False)
    return frame


def _request(folder: Path, prefix: str = "") -> LabelRequest:
    """The workflow's request files in ``folder``: {prefix}to_label.xyz and {prefix}to_label.csv."""
    return LabelRequest(folder / f"{prefix}to_label.xyz", folder / f"{prefix}to_label.csv")


def test_external_oracle_writes_a_request_stops_and_reads_the_filled_form(data, ids, tmp_path):
    request = ids[[3, 0, 5]]
    labels_file = tmp_path / "labels.csv"
    with pytest.raises(
        LabelsNeeded, match=r"3 molecules need labels.*to_label\.xyz.*homo \[eV\].*labels\.csv"
    ):
        external.external_labels(data, request, labels_file, _request(tmp_path), ["homo"])
    atoms = read(tmp_path / "to_label.xyz", index=":")
    geometries = chunks.read_geometries(data, request)
    assert [a.info["mol_id"] for a in atoms] == request.tolist()
    for a, g in zip(atoms, geometries, strict=True):
        assert np.array_equal(a.numbers, g.z) and np.allclose(a.positions, g.pos, atol=1e-6)
        assert (a.info["charge"], a.info["multiplicity"]) == (0, 1)  # the species to compute
    form = pd.read_csv(tmp_path / "to_label.csv")
    assert form.columns.tolist() == [
        "mol_id", "formula", "n_atoms", "charge", "multiplicity", "homo [eV]", "failure"
    ]  # fmt: skip
    assert form.mol_id.tolist() == request.tolist() and form.formula[1] == "CH4"

    _fill(tmp_path / "to_label.csv", tmp_path / "labels.csv", {request[0]: -7.5, request[2]: -6.25},
          failures={request[1]: "sample decomposed"})  # fmt: skip
    labels, failures = external.external_labels(data, request, labels_file, _request(tmp_path), ["homo"])
    assert labels.mol_id.tolist() == [request[0], request[2]] and labels.homo.tolist() == [-7.5, -6.25]
    assert failures.mol_id.tolist() == [request[1]] and failures.reason.tolist() == ["sample decomposed"]


@pytest.mark.parametrize(
    ("column", "value"), [("charge", "1"), ("multiplicity", "3"), ("formula", "CH3"), ("n_atoms", "4")]
)
def test_a_labels_file_that_changes_what_was_requested_is_refused_naming_molecule_and_column(
    data, ids, tmp_path, column, value
):
    """Labels of a charge or spin other than the one requested are of another species: the file is
    refused naming the file, the molecule and the column, not read as labels of the molecule asked."""
    request = ids[[3, 0]]
    labels_file = tmp_path / "labels.csv"
    with pytest.raises(LabelsNeeded):
        external.external_labels(data, request, labels_file, _request(tmp_path), ["homo"])
    _fill(tmp_path / "to_label.csv", labels_file, {request[0]: -7.5, request[1]: -6.25})
    form = pd.read_csv(labels_file, dtype=str, keep_default_na=False)
    form.loc[1, column] = value
    form.to_csv(labels_file, index=False)
    with pytest.raises(ValueError) as err:
        external.external_labels(data, request, labels_file, _request(tmp_path), ["homo"])
    message = str(err.value)
    assert str(labels_file) in message and f"molecule '{request[1]}': {column} '{value}'" in message
    # the form as given (without its request columns, too) is read
    form.drop(columns=column).to_csv(labels_file, index=False)
    labels, _ = external.external_labels(data, request, labels_file, _request(tmp_path), ["homo"])
    assert labels.homo.tolist() == [-7.5, -6.25]


def test_external_oracle_writes_and_reads_exactly_the_files_it_is_given(data, ids, tmp_path):
    """The request and the labels file are the paths given, in any layout: nothing is derived from
    --out's folder or from another file's name."""
    request = ids[[1, 4]]
    asked = LabelRequest(tmp_path / "outbox" / "geometries.xyz", tmp_path / "forms" / "please-fill.csv")
    asked.xyz.parent.mkdir()
    asked.csv.parent.mkdir()
    labels_file = tmp_path / "inbox" / "from-the-lab.csv"
    write_table(pa.table({"mol_id": request.tolist()}), tmp_path / "picks.parquet")
    out = tmp_path / "stage" / "labelled.parquet"
    out.parent.mkdir()
    source = oracle.OracleInput(
        "external", data=data, targets=["homo"], labels_file=labels_file, request=asked
    )
    with pytest.raises(LabelsNeeded) as err:
        oracle.label_round(tmp_path / "picks.parquet", 0, out, tmp_path / "stage" / "f.parquet", source)
    assert str(asked.xyz) in str(err.value) and str(asked.csv) in str(err.value)
    assert f"save it as {labels_file}" in str(err.value)
    assert [a.info["mol_id"] for a in read(asked.xyz, index=":")] == request.tolist()
    assert pd.read_csv(asked.csv).mol_id.tolist() == request.tolist()
    assert list(out.parent.iterdir()) == []  # nothing beside --out
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "forms/please-fill.csv", "outbox/geometries.xyz", "picks.parquet"
    ]  # fmt: skip

    # a labels file elsewhere is read from where told; a labels.csv beside --out is not looked at
    labels_file.parent.mkdir()
    _fill(asked.csv, labels_file, {request[0]: -7.5, request[1]: -6.25})
    (out.parent / "labels.csv").write_text("mol_id,homo [eV],failure\nnot-requested,1,\n")
    oracle.label_round(tmp_path / "picks.parquet", 0, out, tmp_path / "stage" / "f.parquet", source)
    assert pq.read_table(out).to_pandas().homo.tolist() == [-7.5, -6.25]
    (record,) = provenance.read_labelling(out)
    assert record["files"] == [{"path": str(labels_file), "sha256": file_sha256(labels_file)}]


def test_the_external_oracle_without_its_files_names_the_options(data, ids, tmp_path):
    write_table(pa.table({"mol_id": ids[:2].tolist()}), tmp_path / "picks.parquet")
    given = {"labels_file": tmp_path / "labels.csv", "request": _request(tmp_path)}
    for missing in given:
        source = oracle.OracleInput(
            "external", data=data, targets=["homo"], **{k: v for k, v in given.items() if k != missing}
        )
        with pytest.raises(ValueError, match="the external oracle needs --labels-file, --request-xyz and"):
            oracle.label_round(
                tmp_path / "picks.parquet", 0, tmp_path / "l.parquet", tmp_path / "f.parquet", source
            )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picks.parquet"]


NAN_HOMO = {"homo [eV]": ["-7", "NaN", "-6"]}
EMPTY_HOMO = {"homo [eV]": ["-7", "", "-6"]}
BAD_LABELS = [
    (lambda f: f.drop(index=2), r"1 requested molecules have no row \(e.g. \['c'\]\)"),
    (lambda f: pd.concat([f, f.iloc[[0]]]), r"molecules listed twice: \['a'\]"),
    (lambda f: pd.concat([f, f.iloc[[0]].assign(mol_id="zz")]), r"1 rows are not requested .*'zz'"),
    (
        lambda f: f.rename(columns={"homo [eV]": "homo [Ha]"}),
        r"column 'homo \[Ha\]' must state the unit as 'homo \[eV\]'",
    ),
    (lambda f: f.rename(columns={"homo [eV]": "homo"}), r"column 'homo' must state the unit"),
    (lambda f: f.drop(columns="homo [eV]"), r"no column for targets \['homo \[eV\]'\]"),
    (lambda f: f.assign(**NAN_HOMO), r"1 molecules have no finite value in 'homo \[eV\]' \(e.g. \['b'\]\)"),
    (lambda f: f.assign(**EMPTY_HOMO), r"no finite value.*give a reason in the 'failure' column"),
    (lambda f: f.drop(columns="mol_id"), r"no 'mol_id' column"),
]


@pytest.mark.parametrize(("edit", "message"), BAD_LABELS)
def test_bad_labels_files_are_refused_naming_the_problem(tmp_path, edit, message):
    good = pd.DataFrame({"mol_id": ["a", "b", "c"], "homo [eV]": ["-7", "-6.5", "-6"], "failure": ""})
    path = tmp_path / "labels.csv"
    edit(good).to_csv(path, index=False)
    with pytest.raises(ValueError, match=message) as err:
        read_external_labels(path, ["a", "b", "c"], ["homo"])
    assert str(path) in str(err.value)  # the file is named


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "mol_id,homo [eV],failure\na,-7,,\nb,-6.5,,\n",
            r"every row has 4 fields, one more than the header \(line 1\), and the last is empty",
        ),
        ("mol_id,homo [eV],failure\na,-7,\nb,-6.5\n", r"line 3 has 2 fields, the header \(line 1\) has 3"),
    ],
)
def test_a_labels_file_whose_rows_do_not_fit_its_header_is_refused_naming_the_lines(tmp_path, text, message):
    """A trailing comma on each row, or a cell left out, would shift the columns (mol_id '-7')."""
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: .*{message}"):
        read_external_labels(path, ["a", "b"], ["homo"])


def test_labels_file_columns_may_come_in_any_order_and_extra_columns_are_kept_out(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("note,gap [eV],mol_id,homo [eV]\nx, 9.0 ,b,-6.5\ny,8.5,a,-7\n")
    labels, failures = read_external_labels(path, ["a", "b"], ["homo", "gap"])
    assert labels.to_dict("list") == {"mol_id": ["a", "b"], "homo": [-7.0, -6.5], "gap": [8.5, 9.0]}
    assert failures.empty


# ------------------------------------------------------------- missing and implausible values


def _answer_key(path: Path, rows: dict[str, dict[str, float]]) -> Path:
    write_table(pa.Table.from_pandas(pd.DataFrame([{"mol_id": m, **v} for m, v in rows.items()])), path)
    return path


def test_a_pick_without_the_target_in_the_answer_key_is_a_failure_not_a_nan_label(tmp_path):
    """A `files` dataset whose file gives some molecules no HOMO: those picks are failures with the
    reason (so selection drops them), not NaN rows in labelled.parquet; a property the run does not
    learn may be missing."""
    key = _answer_key(tmp_path / "answer_key.parquet", {
        "a": {"homo": -7.0, "lumo": np.nan},  # no lumo: the run does not learn it
        "b": {"homo": np.nan, "lumo": 1.0},
        "c": {"homo": -6.0, "lumo": 2.0},
    })  # fmt: skip
    write_table(pa.table({"mol_id": ["a", "b", "c"]}), tmp_path / "initial.parquet")
    source = oracle.OracleInput(answer_key=key, targets=["homo"])
    oracle.label_round(
        tmp_path / "initial.parquet", 0, tmp_path / "l0.parquet", tmp_path / "f0.parquet", source
    )
    labelled = pq.read_table(tmp_path / "l0.parquet").to_pandas()
    failures = pq.read_table(tmp_path / "f0.parquet").to_pandas()
    assert labelled.mol_id.tolist() == ["a", "c"] and labelled.homo.notna().all()
    assert failures.mol_id.tolist() == ["b"] and failures["round"].tolist() == [0]
    assert failures.reason.tolist() == ["no value for target 'homo' in the answer key"]
    (record,) = provenance.read_labelling(tmp_path / "l0.parquet")
    assert (record["requested"], record["labelled"], record["failed"]) == (3, 2, 1)
    assert record["files"] == [{"path": str(key), "sha256": file_sha256(key)}]
    # a failed molecule is never offered again
    write_table(pa.table({"mol_id": ["b"]}), tmp_path / "again.parquet")
    with pytest.raises(ValueError, match="picks molecules the oracle failed on before"):
        oracle.label_round(
            tmp_path / "again.parquet", 1, tmp_path / "l1.parquet", tmp_path / "f1.parquet", source,
            previous=tmp_path / "l0.parquet", previous_failures=tmp_path / "f0.parquet",
        )  # fmt: skip
    # a target no molecule has is a setup error naming the file, not a round of failures
    with pytest.raises(ValueError, match=r"answer_key.parquet: no molecule of the dataset has .*\['gap'\]"):
        lookup.answer_key(key, ["a"], ["homo", "gap"])


def test_a_round_whose_every_pick_failed_stops_instead_of_training_on_nothing(tmp_path):
    key = _answer_key(
        tmp_path / "answer_key.parquet", {m: {"homo": np.nan} for m in "abc"} | {"d": {"homo": -6.0}}
    )
    write_table(pa.table({"mol_id": ["a", "b", "c"]}), tmp_path / "picked.parquet")
    source = oracle.OracleInput(answer_key=key, targets=["homo"])
    with pytest.raises(
        oracle.NothingLabelled,
        match=r"round 2 .*labelled none of the 3 molecules.*3 x no value for target 'homo'",
    ):
        oracle.label_round(
            tmp_path / "picked.parquet", 2, tmp_path / "l.parquet", tmp_path / "f.parquet", source
        )
    assert not (tmp_path / "l.parquet").exists() and not (tmp_path / "f.parquet").exists()
    # val/test: every val molecule failed -> no early stopping possible, so the stage stops too
    split = pd.DataFrame({"mol_id": list("abcd"), "split": ["val", "val", "test", "test"]})
    write_table(pa.Table.from_pandas(split), tmp_path / "split.parquet")
    with pytest.raises(oracle.NothingLabelled, match=r"val molecules of .*split.parquet: .*none of the 2"):
        oracle.label_holdout(
            tmp_path / "split.parquet", tmp_path / "h.parquet", tmp_path / "hf.parquet", source
        )


def test_val_and_test_molecules_without_the_target_are_left_out_and_listed(tmp_path):
    split = pd.DataFrame({"mol_id": list("pqrstu"), "split": ["pool", "val", "val", "test", "test", "test"]})
    write_table(pa.Table.from_pandas(split), tmp_path / "split.parquet")
    values = {"p": -7.0, "q": np.nan, "r": -6.0, "s": -5.0, "t": np.nan, "u": np.nan}
    key = _answer_key(
        tmp_path / "answer_key.parquet", {m: {"homo": v, "gap": 5.0} for m, v in values.items()}
    )
    source = oracle.OracleInput(answer_key=key, targets=["gap", "homo"])
    oracle.label_holdout(tmp_path / "split.parquet", tmp_path / "h.parquet", tmp_path / "hf.parquet", source)
    holdout = pq.read_table(tmp_path / "h.parquet").to_pandas()
    failures = pq.read_table(tmp_path / "hf.parquet").to_pandas()
    assert holdout[["mol_id", "split"]].values.tolist() == [["r", "val"], ["s", "test"]]
    assert failures.mol_id.tolist() == ["q", "t", "u"]
    assert (failures.reason == "no value for target 'homo' in the answer key").all()
    (record,) = provenance.read_labelling(tmp_path / "h.parquet")
    assert record["failed"] == {"val": 1, "test": 2} and record["labelled"] == {"val": 1, "test": 1}


def test_qc_values_that_are_missing_or_implausible_are_failures(tmp_path):
    """A QC result outside the target's plausible range (or NaN) is a failure with the reason: the
    round goes on without it. Ranges come from pipeline.config.units, overridden by oracle.ranges."""
    ok = {"homo": -7.0, "lumo": 1.0, "gap": 8.0, "mu": 1.5, "energy": -1e3}
    labels = pd.DataFrame([
        {"mol_id": "a", **ok},
        {"mol_id": "b", **ok, "homo": 1e30},
        {"mol_id": "c", **ok, "gap": np.nan},
        {"mol_id": "d", **ok, "mu": np.nan},  # mu is not a target of this run
    ])  # fmt: skip
    part = _chunk(tmp_path / "chunk-000.parquet", labels, pd.DataFrame())
    write_table(pa.table({"mol_id": list("abcd")}), tmp_path / "initial.parquet")
    source = oracle.OracleInput("xtb", parts=[part], targets=["homo", "gap"])
    oracle.label_round(
        tmp_path / "initial.parquet", 0, tmp_path / "l.parquet", tmp_path / "f.parquet", source
    )
    assert pq.read_table(tmp_path / "l.parquet")["mol_id"].to_pylist() == ["a", "d"]
    failures = pq.read_table(tmp_path / "f.parquet").to_pandas().set_index("mol_id").reason.to_dict()
    assert failures == {
        "b": "homo = 1e+30 eV is outside the plausible range [-20, -1] eV (a wrong unit or sign? the "
        "dataset's oracle.ranges.homo widens the range, null switches the check off)",
        "c": "no value for target 'gap' from xtb",
    }
    # oracle.ranges: a narrower range for homo, none for gap
    strict = oracle.OracleInput("xtb", parts=[part], targets=["homo"], ranges={"homo": [-6.5, 0]})
    labelled, failed, _ = strict.ask(np.array(list("abcd")))
    assert labelled.empty and failed.mol_id.tolist() == ["a", "b", "c", "d"]  # (label_round would stop)
    unchecked = oracle.OracleInput("xtb", parts=[part], targets=["homo"], ranges={"homo": None})
    oracle.label_round(
        tmp_path / "initial.parquet", 0, tmp_path / "l3.parquet", tmp_path / "f3.parquet", unchecked
    )
    assert pq.read_table(tmp_path / "l3.parquet")["mol_id"].to_pylist() == list("abcd")
    with pytest.raises(ValueError, match=r"oracle.ranges.homo: expected \[low, high\] with low < high"):
        oracle.OracleInput("xtb", parts=[part], targets=["homo"], ranges={"homo": [1, -1]}).ask(
            np.array(list("abcd"))
        )


def test_an_implausible_value_in_a_labels_file_is_refused_naming_file_molecule_column_and_range(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("mol_id,homo [eV],failure\na,-7,\nb,1e30,\nc,-6,\n")
    write_table(pa.table({"mol_id": ["a", "b", "c"]}), tmp_path / "initial.parquet")
    source = oracle.OracleInput(
        "external", data=tmp_path, targets=["homo"], labels_file=path, request=_request(tmp_path)
    )
    with pytest.raises(ValueError) as err:
        oracle.label_round(
            tmp_path / "initial.parquet", 0, tmp_path / "l.parquet", tmp_path / "f.parquet", source
        )
    message = str(err.value)
    assert str(path) in message and "'b': 1e+30" in message and "'homo [eV]'" in message
    assert "outside the plausible range [-20, -1] eV" in message and "oracle.ranges.homo" in message
    assert not (tmp_path / "l.parquet").exists()
    # the same value with a reason in 'failure' is a failure, not a label
    path.write_text("mol_id,homo [eV],failure\na,-7,\nb,1e30,instrument overflow\nc,-6,\n")
    oracle.label_round(
        tmp_path / "initial.parquet", 0, tmp_path / "l.parquet", tmp_path / "f.parquet", source
    )
    assert pq.read_table(tmp_path / "f.parquet")["mol_id"].to_pylist() == ["b"]


def test_labels_record_the_labels_file_and_its_checksum_and_a_changed_file_is_refused(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("mol_id,homo [eV],failure\na,-7,\nb,-6.5,\n")
    write_table(pa.table({"mol_id": ["a", "b"]}), tmp_path / "initial.parquet")
    planned = file_sha256(path)
    source = oracle.OracleInput("external", data=tmp_path, targets=["homo"], labels_sha256=planned,
                                labels_file=path, request=_request(tmp_path))  # fmt: skip
    oracle.label_round(
        tmp_path / "initial.parquet", 0, tmp_path / "l.parquet", tmp_path / "f.parquet", source
    )
    (record,) = provenance.read_labelling(tmp_path / "l.parquet")
    assert record["oracle"] == "external" and record["files"] == [{"path": str(path), "sha256": planned}]
    # corrected after the workflow planned the job with the old checksum: refused, never the old labels
    path.write_text("mol_id,homo [eV],failure\na,-7.25,\nb,-6.5,\n")
    with pytest.raises(ValueError, match=r"labels.csv: changed since this job was planned"):
        oracle.label_round(
            tmp_path / "initial.parquet", 0, tmp_path / "l.parquet", tmp_path / "f.parquet", source
        )


# ------------------------------------------------------------------------------------ charged species


@pytest.fixture(scope="module")
def ions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SMILES dataset of a salt, an anion with its counter-ion, a neutral and a radical."""
    tmp = tmp_path_factory.mktemp("ions")
    csv = tmp / "ions.csv"
    csv.write_text("id,smiles\nmea_hcl,C[NH3+].[Cl-]\nnaoac,CC(=O)[O-].[Na+]\nethanol,CCO\nmethyl,[CH3]\n")
    featurise(FeaturiseSettings(source="smiles", inputs=[str(csv)]), tmp / "data")
    return tmp / "data"


def test_geometries_carry_each_molecules_charge_and_multiplicity(ions):
    got = chunks.read_geometries(ions, ["methyl", "mea_hcl", "naoac", "ethanol"])
    assert [(g.mol_id, g.charge, g.multiplicity) for g in got] == [
        ("methyl", 0, 2), ("mea_hcl", 1, 1), ("naoac", -1, 1), ("ethanol", 0, 1)
    ]  # fmt: skip
    assert all(g.z.dtype == np.int64 and g.pos.shape == (len(g.z), 3) for g in got)


def test_xtb_chunk_computes_ions_as_ions(ions, tmp_path):
    """Methylammonium (+1) and acetate (-1) have an even electron count as ions: labelled, not refused
    as odd-electron neutrals; the methyl radical is a doublet, computed when odd counts are allowed."""
    pytest.importorskip("tblite")
    out = tmp_path / "chunk-000.parquet"
    labels, failures = chunks.label_chunk(
        "xtb",
        ions,
        np.array(["mea_hcl", "naoac", "ethanol"]),
        0,
        1,
        out,
        out.with_suffix(".failures.parquet"),
    )
    assert failures.num_rows == 0 and labels["mol_id"].to_pylist() == ["mea_hcl", "naoac", "ethanol"]
    homo = dict(zip(labels["mol_id"].to_pylist(), labels["homo"].to_pylist(), strict=True))
    assert homo["mea_hcl"] < homo["ethanol"] < homo["naoac"]  # a cation holds its electrons tighter
    labels, failures = chunks.label_chunk(
        "xtb", ions, np.array(["methyl"]), 0, 1, out, out.with_suffix(".failures.parquet")
    )
    assert labels.num_rows == 0 and "odd" in failures["reason"][0].as_py()
    labels, failures = chunks.label_chunk(
        "xtb",
        ions,
        np.array(["methyl"]),
        0,
        1,
        out,
        out.with_suffix(".failures.parquet"),
        {"allow_odd": True},
    )
    assert failures.num_rows == 0 and labels["mol_id"].to_pylist() == ["methyl"]


def test_external_request_states_the_charge(ions, tmp_path):
    with pytest.raises(LabelsNeeded):
        external.external_labels(
            ions, np.array(["naoac", "mea_hcl"]), tmp_path / "labels.csv", _request(tmp_path), ["homo"]
        )
    atoms = read(tmp_path / "to_label.xyz", index=":")
    assert [(a.info["charge"], a.info["multiplicity"]) for a in atoms] == [(-1, 1), (1, 1)]
    form = pd.read_csv(tmp_path / "to_label.csv")
    assert form.charge.tolist() == [-1, 1] and form.formula.tolist() == ["C2H3O2", "CH6N"]


def test_helping_properties_of_every_pool_molecule_from_xtb_chunks_or_the_answer_key(data, ids, tmp_path):
    """helpers.parquet: one row per pool molecule (none of val/test), {source}_{property} columns,
    NaN where xTB failed; from the answer key never a target; chunks of another dataset refused."""
    from pipeline.cli import main

    pytest.importorskip("tblite")
    split = tmp_path / "split.parquet"
    kinds = ["pool"] * 8 + ["val"] * 2 + ["test"] * 2
    write_table(pa.table({"mol_id": ids, "split": kinds}), split)
    parts = []
    for c in range(2):  # the helper_chunk jobs: every molecule of the dataset (no --request)
        part = LabelChunk(tmp_path / f"h-{c}.parquet", tmp_path / f"hf-{c}.parquet")
        args = ["label-chunk", "--data", str(data), "--oracle", "xtb", "--chunk", str(c), "--chunks", "2"]
        main([*args, "--out", str(part.labels), "--failures", str(part.failures)])
        parts.append(part)
    assert sum(len(pq.read_table(p.labels)) for p in parts) == len(ids)
    # a molecule xTB failed on: its helpers are NaN, the others keep theirs
    first = pq.read_table(parts[0].labels).to_pandas()
    failed = first.mol_id.iloc[0]
    write_table(pa.Table.from_pandas(first.iloc[1:], preserve_index=False), parts[0].labels)
    failure = pd.DataFrame({"mol_id": [failed], "reason": ["SCC"], "seconds": [0.1]})
    write_table(label_base.failures_table(failure), parts[0].failures)
    xtb = {"source": "xtb", "properties": ["homo", "gap"]}
    table = oracle.helper_labels(split, xtb, ["homo"], tmp_path / "helpers.parquet", parts=parts).to_pandas()
    assert table.columns.tolist() == ["mol_id", "xtb_homo", "xtb_gap"]
    assert table.mol_id.tolist() == ids[:8].tolist()
    assert table.set_index("mol_id").loc[failed].isna().all()
    assert table.drop(columns="mol_id").notna().sum().tolist() == [7, 7]
    with pytest.raises(ValueError, match="molecules of the run are neither labelled nor failed"):
        oracle.helper_labels(split, xtb, ["homo"], tmp_path / "x.parquet", parts=parts[1:])

    # delta learning's baseline.parquet from the same chunks: every pool, val and test molecule, a
    # column per delta target holding the cheap method's property it is learnt relative to
    from pipeline.config.settings import RunConfig

    delta = {"source": "xtb", "properties": {"homo": "homo", "u0": "energy"}}
    write_json(RunConfig(run="d", targets=["homo", "u0"], delta=delta).as_dict(), tmp_path / "run.json")
    files = ["--parts", *(str(p.labels) for p in parts), "--part-failures", *(str(p.failures) for p in parts)]
    args = ["baseline", "--run-json", str(tmp_path / "run.json"), "--split-path", str(split), *files]
    assert main([*args, "--out", str(tmp_path / "baseline.parquet")]) == 0
    base = pq.read_table(tmp_path / "baseline.parquet").to_pandas().set_index("mol_id")
    assert base.columns.tolist() == ["homo", "u0"] and base.index.tolist() == ids.tolist()
    assert base.loc[failed].isna().all() and base.drop(failed).notna().all().all()
    computed = pd.concat([pq.read_table(p.labels).to_pandas() for p in parts]).set_index("mol_id")
    kept = base.drop(failed)
    np.testing.assert_array_equal(kept.to_numpy(), computed.loc[kept.index, ["homo", "energy"]].to_numpy())
    assert main([*args[:5], "--parts", str(parts[1].labels), "--part-failures", str(parts[1].failures),
                 "--out", str(tmp_path / "x.parquet")]) == 2  # fmt: skip

    key = data / "answer_key.parquet"
    from_key = {"source": "dataset", "properties": ["lumo", "u0"]}
    table = oracle.helper_labels(
        split, from_key, ["homo"], tmp_path / "h2.parquet", answer_key=key
    ).to_pandas()
    expected = pq.read_table(key).to_pandas().set_index("mol_id").loc[ids[:8], ["lumo", "u0"]].to_numpy()
    np.testing.assert_array_equal(table[["dataset_lumo", "dataset_u0"]].to_numpy(), expected)
    for properties, message in (
        (["homo"], r"\['homo'\] are targets of the run: refused"),
        (["nope"], r"no property \['nope'\]"),
    ):
        with pytest.raises(ValueError, match=message):
            helpers = {"source": "dataset", "properties": properties}
            oracle.helper_labels(split, helpers, ["homo"], tmp_path / "x.parquet", answer_key=key)
