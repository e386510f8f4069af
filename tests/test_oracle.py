"""Oracles as the label stages use them (pipeline.oracle): chunks that partition the request, QC
labels joined from chunk files with their failures, and the external oracle's request, stop and
validated labels file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ase.io import read

from pipeline import oracle
from pipeline.featurise import FeaturiseSettings, featurise
from pipeline.graphs import load_graphs
from pipeline.oracle import LabelsNeeded, chunk_of, read_external_labels, read_parts
from pipeline.store import write_table

REPO = Path(__file__).resolve().parents[1]


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
    got = oracle.read_geometries(data, wanted)
    assert [m for m, _, _ in got] == wanted.tolist()
    for mol_id, z, pos in got:
        k = int(graphs.index_of([mol_id])[0])
        a, b = int(graphs.atom_ptr[k]), int(graphs.atom_ptr[k + 1])
        assert np.array_equal(z, graphs.z[a:b].numpy()) and np.allclose(pos, graphs.pos[a:b].numpy())
    with pytest.raises(ValueError, match=r"1 molecules are not in the dataset, e.g. \['nope'\]"):
        oracle.read_geometries(data, [ids[0], "nope"])


def test_xtb_chunks_label_and_join(data, ids, tmp_path):
    pytest.importorskip("tblite")
    request = ids[:5]
    parts = []
    for c in range(2):
        out = tmp_path / f"chunk-{c:03d}.parquet"
        oracle.label_chunk("xtb", data, request, c, 2, out, out.with_suffix(".failures.parquet"))
        parts.append(out)
    assert len(pq.read_table(parts[0])) == 3 and len(pq.read_table(parts[1])) == 2
    labels, failures = read_parts(parts, request)
    assert labels.mol_id.tolist() == request.tolist() and failures.empty
    assert np.isfinite(labels[["homo", "lumo", "gap", "mu"]].to_numpy()).all()
    assert (labels.gap - (labels.lumo - labels.homo)).abs().max() < 1e-9
    # chunks made for another request are refused, not silently joined
    with pytest.raises(ValueError, match="2 molecules for 5 requested .3 missing"):
        read_parts(parts[1:], request)
    with pytest.raises(ValueError, match="unknown settings \\['basis'\\]"):
        oracle.label_chunk("xtb", data, request, 0, 1, tmp_path / "x.parquet", tmp_path / "y.parquet",
                           {"basis": "sto-3g"})  # fmt: skip
    with pytest.raises(ValueError, match="does not compute labels"):
        oracle.label_chunk("answer_key", data, request, 0, 1, tmp_path / "x.parquet", tmp_path / "y.parquet")


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


def _chunk(path: Path, labels: pd.DataFrame, failures: pd.DataFrame) -> Path:
    write_table(oracle.failures_table(failures), path.with_suffix(".failures.parquet"))
    write_table(pa.Table.from_pandas(labels, preserve_index=False), path)
    return path


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


def test_external_oracle_writes_a_request_stops_and_reads_the_filled_form(data, ids, tmp_path):
    request = ids[[3, 0, 5]]
    with pytest.raises(
        LabelsNeeded, match=r"3 molecules need labels.*to_label\.xyz.*homo \[eV\].*labels\.csv"
    ):
        oracle.external_labels(data, request, tmp_path, "", ["homo"])
    atoms = read(tmp_path / "to_label.xyz", index=":")
    geometries = oracle.read_geometries(data, request)
    assert [a.info["mol_id"] for a in atoms] == request.tolist()
    for a, (_, z, pos) in zip(atoms, geometries, strict=True):
        assert np.array_equal(a.numbers, z) and np.allclose(a.positions, pos, atol=1e-6)
    form = pd.read_csv(tmp_path / "to_label.csv")
    assert form.columns.tolist() == ["mol_id", "formula", "n_atoms", "homo [eV]", "failure"]
    assert form.mol_id.tolist() == request.tolist() and form.formula[1] == "CH4"

    _fill(tmp_path / "to_label.csv", tmp_path / "labels.csv", {request[0]: -7.5, request[2]: -6.25},
          failures={request[1]: "sample decomposed"})  # fmt: skip
    labels, failures = oracle.external_labels(data, request, tmp_path, "", ["homo"])
    assert labels.mol_id.tolist() == [request[0], request[2]] and labels.homo.tolist() == [-7.5, -6.25]
    assert failures.mol_id.tolist() == [request[1]] and failures.reason.tolist() == ["sample decomposed"]


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


def test_labels_file_columns_may_come_in_any_order_and_extra_columns_are_kept_out(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("note,gap [eV],mol_id,homo [eV]\nx, 9.0 ,b,-6.5\ny,8.5,a,-7\n")
    labels, failures = read_external_labels(path, ["a", "b"], ["homo", "gap"])
    assert labels.to_dict("list") == {"mol_id": ["a", "b"], "homo": [-7.0, -6.5], "gap": [8.5, 9.0]}
    assert failures.empty
