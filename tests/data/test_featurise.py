"""Featurisation: schema, units, edges against brute force, rejects, determinism, sharding."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config.units import HARTREE_TO_EV, TARGETS
from pipeline.data.featurise import (
    DatasetFiles,
    FeaturiseError,
    FeaturiseSettings,
    ShardFiles,
    compute_edges,
    featurise,
    featurise_shard,
    merge_parts,
)
from pipeline.data.store import FORMAT_VERSION, GRAPH_SCHEMA, read_graph_metadata


def _read_graphs(out: Path):
    return pq.read_table(sorted((out / "graphs").glob("shard-*.parquet"))[0].parent)


def _features(out: Path, csv: Path, **kw) -> dict:
    return featurise(FeaturiseSettings(source="qm9", inputs=[str(csv)], **kw), out)


def test_qm9_schema_units_and_manifest(tmp_path, qm9_csv):
    out = tmp_path / "data"
    manifest = _features(out, qm9_csv())
    graphs = _read_graphs(out)
    assert graphs.schema.remove_metadata() == GRAPH_SCHEMA
    meta = read_graph_metadata(out / "graphs" / "shard-00000.parquet")
    assert meta == {
        "format_version": FORMAT_VERSION,
        "cutoff": 30.0,
        "rbf": {"start": 0.0, "stop": 30.0, "count": 300, "width": 0.1},
    }
    answers = pq.read_table(out / "answer_key.parquet").to_pandas().set_index("mol_id")
    ch4 = answers.loc["dsgdb9nsd_000001"]
    # QM9's CH4: HOMO -0.3877 Ha = -10.550 eV; U0 -40.47893 Ha; mu 0 D; Cv 6.469 cal/mol K
    assert ch4.homo == pytest.approx(-0.3877 * HARTREE_TO_EV) and round(ch4.homo, 3) == -10.550
    assert ch4.u0 == pytest.approx(-40.47893 * HARTREE_TO_EV)
    assert (ch4.mu, ch4.cv, ch4.alpha) == (0.0, 6.469, 13.21)
    assert list(answers.columns) == list(TARGETS)
    row = graphs.slice(0, 1).to_pylist()[0]
    assert row["mol_id"] == "dsgdb9nsd_000001" and row["n_atoms"] == 5
    assert row["z"] == [6, 1, 1, 1, 1]
    assert row["pos"][1] == pytest.approx([0.002150416, -0.0060313176, 0.0019761204], abs=1e-7)
    assert len(row["edge_src"]) == 20  # full graph: 5 * 4 ordered pairs
    # QM9 molecules are neutral closed shells
    assert set(graphs["charge"].to_pylist()) == {0} and set(graphs["multiplicity"].to_pylist()) == {1}
    assert manifest["counts"]["molecules"] == 40 and manifest["units"]["homo"] == "eV"
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert pq.read_table(out / "rejects.parquet").num_rows == 0


def _brute_force_edges(pos: np.ndarray, cutoff: float):
    src, dst, dist = [], [], []
    for i in range(len(pos)):
        for j in range(len(pos)):
            d = float(np.sqrt(((pos[i] - pos[j]) ** 2).sum()))
            if i != j and d < cutoff:
                src.append(i), dst.append(j), dist.append(d)
    return src, dst, dist


@pytest.mark.parametrize("cutoff", [2.5, 5.0, 30.0])
def test_edges_match_brute_force(cutoff):
    rng = np.random.default_rng(7)
    n_atoms = rng.integers(1, 12, size=40)
    pos = rng.normal(scale=2.0, size=(n_atoms.sum(), 3))
    edges = compute_edges(n_atoms, pos, cutoff)
    ptr = np.concatenate([[0], np.cumsum(n_atoms)])
    for m in range(len(n_atoms)):
        src, dst, dist = _brute_force_edges(pos[ptr[m] : ptr[m + 1]], cutoff)
        e = slice(edges.ptr[m], edges.ptr[m + 1])
        assert edges.src[e].tolist() == src and edges.dst[e].tolist() == dst
        np.testing.assert_allclose(edges.dist[e], dist, rtol=1e-6)
    assert edges.src.dtype == np.int32 and edges.dist.dtype == np.float32


def test_edges_are_symmetric_and_invariant_to_rigid_motion():
    rng = np.random.default_rng(0)
    n_atoms = np.array([6, 9])
    pos = rng.normal(size=(15, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    moved = pos @ q.T + np.array([3.0, -1.0, 10.0])
    a, b = compute_edges(n_atoms, pos, 2.0), compute_edges(n_atoms, moved, 2.0)
    assert a.src.tolist() == b.src.tolist() and a.dst.tolist() == b.dst.tolist()
    np.testing.assert_allclose(a.dist, b.dist, rtol=1e-5)
    pairs = set(zip(a.src.tolist()[: a.ptr[1]], a.dst.tolist()[: a.ptr[1]], strict=True))
    assert all((j, i) in pairs for i, j in pairs)


def _edit(lines: list[str], row: int, old: str, new: str) -> list[str]:
    edited = list(lines)
    assert old in edited[row], f"{old!r} not in row {row}"
    edited[row] = edited[row].replace(old, new, 1)
    return edited


def test_bad_molecules_are_rejected_and_good_ones_kept(tmp_path, qm9_csv, qm9_lines):
    lines = list(qm9_lines)
    lines = _edit(lines, 2, "[-0.0404260543,", "[nan,")  # NH3: NaN coordinate
    lines = _edit(lines, 3, "'O','H','H'", "'O','Xx','H'")  # H2O: unknown element
    lines = _edit(lines, 4, '4,"[2,2,0,0,0]"', '5,"[2,2,0,0,0]"')  # C2H2: N_atoms says 5, lists 4
    # HCN: put atom 1 on top of atom 0 (3 atoms: C, N, H)
    first_xyz = lines[5].split('"[[')[1].split("],")[0]
    second_xyz = lines[5].split('"[[')[1].split("],[")[1].split("]")[0]
    lines[5] = lines[5].replace(second_xyz, first_xyz, 1)
    lines = _edit(lines, 6, "[[", "[[abc,")  # formaldehyde: non-numeric coordinate (and a count mismatch)
    lines = _edit(lines, 7, "-0.0187040036", "-0.01870x40036")  # ethane: a coordinate that is no number
    lines.append(lines[10])  # a duplicate of dsgdb9nsd_000010
    out = tmp_path / "data"
    manifest = _features(out, qm9_csv(lines))
    rejects = pq.read_table(out / "rejects.parquet").to_pandas().set_index("mol_id")
    reasons = rejects.reason.to_dict()
    assert "NaN or infinite coordinate" in reasons["dsgdb9nsd_000002"]
    assert "unknown element 'Xx' (atom 1)" in reasons["dsgdb9nsd_000003"]
    assert "atom count mismatch" in reasons["dsgdb9nsd_000004"]
    assert "closer than 0.1 Å" in reasons["dsgdb9nsd_000005"]
    assert "atoms 0 and 1 are 0.000 Å apart" in reasons["dsgdb9nsd_000005"]
    assert reasons["dsgdb9nsd_000006"]  # malformed coordinates: rejected, whatever the first complaint
    assert "non-numeric coordinate" in reasons["dsgdb9nsd_000007"]
    assert "duplicate mol_id 'dsgdb9nsd_000010'" in reasons["dsgdb9nsd_000010"]
    assert rejects.loc["dsgdb9nsd_000010", "index"] == 40  # the second copy, at its row in the file
    assert rejects.origin.eq("mini_qm9.csv").all()
    kept = set(_read_graphs(out)["mol_id"].to_pylist())
    assert len(kept) == 40 - 6 and manifest["counts"]["rejected"] == 7
    assert "dsgdb9nsd_000001" in kept and "dsgdb9nsd_000010" in kept
    assert kept == set(pq.read_table(out / "answer_key.parquet")["mol_id"].to_pylist())


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda lines: [lines[0]] + [line.rstrip("\n") + ",\n" for line in lines[1:]], "a comma at the end"),
        (lambda lines: lines[:7] + [lines[7].rstrip("\n") + ",0.5\n"] + lines[8:], "line 8 has"),
    ],
)
def test_a_qm9_csv_whose_rows_do_not_fit_its_header_is_refused_naming_the_lines(
    tmp_path, qm9_csv, qm9_lines, edit, named
):
    csv = qm9_csv(edit(list(qm9_lines)))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(csv))}: .*{named}"):
        _features(tmp_path / "data", csv)


def test_input_without_valid_molecule_fails_naming_it(tmp_path, qm9_csv, qm9_lines):
    lines = [qm9_lines[0]] + [line.replace("'H'", "'Q'") for line in qm9_lines[1:6]]
    csv = qm9_csv(lines, name="all_bad.csv")
    out = tmp_path / "data"
    with pytest.raises(FeaturiseError, match=r"no valid molecule in .*all_bad\.csv.*unknown element") as err:
        _features(out, csv)
    # The message points at files that survive the failed merge job, whose outputs (rejects.parquet
    # among them) Snakemake deletes.
    (out / "rejects.parquet").unlink()
    pattern = re.search(r"reason in (\S+),", str(err.value)).group(1)
    named = sorted(Path("/").glob(pattern.lstrip("/")))
    assert named and sum(pq.read_table(p).num_rows for p in named) == 5


def test_limit_is_deterministic_subset(tmp_path, qm9_csv):
    csv = qm9_csv()
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        featurise(FeaturiseSettings(source="qm9", inputs=[str(csv)], limit=12, seed=seed), tmp_path / name)
        runs[name] = _read_graphs(tmp_path / name)
    assert runs["a"].equals(runs["b"])
    ids = runs["a"]["mol_id"].to_pylist()
    assert len(ids) == 12 and ids == sorted(ids)  # kept in input order
    assert ids != runs["c"]["mol_id"].to_pylist()


def test_shard_jobs_equal_one_process(tmp_path, qm9_csv):
    csv = qm9_csv()
    settings = dict(source="qm9", inputs=[str(csv)], limit=30, seed=3)
    one = featurise(FeaturiseSettings(**settings, num_shards=3), tmp_path / "one")
    shards = [ShardFiles.in_folder(tmp_path / "jobs", k) for k in range(3)]
    for k in (2, 0, 1):  # shard jobs finish in any order
        featurise_shard(FeaturiseSettings(**settings, num_shards=3), k, shards[k])
    jobs = merge_parts(shards, DatasetFiles.in_folder(tmp_path / "jobs"))
    assert one == jobs
    for name in ("graphs/shard-00000.parquet", "graphs/shard-00002.parquet", "answer_key.parquet"):
        assert pq.read_table(tmp_path / "one" / name).equals(pq.read_table(tmp_path / "jobs" / name))
    assert [s["molecules"] for s in one["shards"]] == [10, 10, 10]


def test_merge_refuses_missing_or_mismatched_shards(tmp_path, qm9_csv):
    csv = str(qm9_csv())
    shards, out = [ShardFiles.in_folder(tmp_path, k) for k in range(2)], DatasetFiles.in_folder(tmp_path)
    featurise_shard(FeaturiseSettings(source="qm9", inputs=[csv], num_shards=2), 0, shards[0])
    with pytest.raises(FeaturiseError, match="shard 1 is not finished"):
        merge_parts(shards, out)
    featurise_shard(FeaturiseSettings(source="qm9", inputs=[csv], num_shards=2, cutoff=5.0), 1, shards[1])
    with pytest.raises(FeaturiseError, match="other settings"):
        merge_parts(shards, out)
    with pytest.raises(FeaturiseError, match="the parts are for 2 shards, not 1"):
        merge_parts(shards[:1], out)
    with pytest.raises(FeaturiseError, match="the summary of shard 1, given as shard 0"):
        merge_parts(shards[::-1], out)


def test_shard_size_sets_number_of_shards(tmp_path, qm9_csv):
    manifest = featurise(FeaturiseSettings(source="qm9", inputs=[str(qm9_csv())]), tmp_path, shard_size=15)
    assert [s["molecules"] for s in manifest["shards"]] == [13, 14, 13]
    assert sorted(p.name for p in (tmp_path / "graphs").iterdir()) == [
        "shard-00000.parquet",
        "shard-00001.parquet",
        "shard-00002.parquet",
    ]


def test_cutoff_prunes_edges_and_is_recorded(tmp_path, qm9_csv):
    manifest = _features(tmp_path, qm9_csv(), cutoff=1.2)
    graphs = _read_graphs(tmp_path)
    dist = np.concatenate(graphs["dist"].to_numpy(zero_copy_only=False))
    assert dist.max() < 1.2 and manifest["cutoff"] == 1.2
    assert read_graph_metadata(tmp_path / "graphs" / "shard-00000.parquet")["cutoff"] == 1.2
    # CH4 at 1.2 Å: only the 4 C-H bonds, both directions
    assert graphs.slice(0, 1).to_pylist()[0]["edge_src"] == [0, 0, 0, 0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"cutoff": 0.0}, "cutoff"),
        ({"limit": 0}, "limit"),
        ({"num_shards": 0}, "num_shards"),
        ({"fragments": "all"}, r"fragments must be one of \['largest', 'reject'\]"),
    ],
)
def test_bad_settings_are_named(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        featurise(FeaturiseSettings(source="qm9", **kw), tmp_path)


def test_unknown_source_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown source 'pdbbind'.*files.*qm9.*smiles"):
        featurise(FeaturiseSettings(source="pdbbind"), tmp_path)


DATA = Path(__file__).resolve().parents[1] / "fixtures" / "sources"


def test_files_source_mixed_input_keeps_good_molecules(tmp_path):
    inputs = [
        DATA / "unknown_element.xyz",
        DATA / "truncated.xyz",
        DATA / "mixed.sdf",
        tmp_path / "absent.xyz",
    ]
    manifest = featurise(FeaturiseSettings(source="files", inputs=[str(p) for p in inputs]), tmp_path / "out")
    rejects = pq.read_table(tmp_path / "out" / "rejects.parquet").to_pandas()
    by_origin = {Path(o).name: r for o, r in zip(rejects.origin, rejects.reason, strict=True)}
    assert "unknown element symbol 'Xx'" in by_origin["unknown_element.xyz"]
    assert "truncated" in by_origin["truncated.xyz"].lower()
    assert (
        "absent.xyz" in by_origin
        and (rejects[rejects.origin.str.endswith("absent.xyz")]["index"] == -1).all()
    )
    kept = _read_graphs(tmp_path / "out")["mol_id"].to_pylist()
    assert "unknown_element-0" in kept and "truncated-0" in kept  # water and methane before the bad frames
    # mixed.sdf's water is unknown_element.xyz's: a duplicate, left in the shard but out of the dataset
    assert manifest["counts"]["duplicates"] == 1 and manifest["duplicates"]["left_out"] == ["water"]
    assert manifest["counts"]["molecules"] == len(kept) - 1 and manifest["counts"]["rejected"] == len(rejects)


def test_smiles_source_end_to_end(tmp_path):
    settings = FeaturiseSettings(source="smiles", inputs=[str(DATA / "molecules.csv")], seed=5, num_shards=2)
    manifest = featurise(settings, tmp_path / "out")
    graphs = _read_graphs(tmp_path / "out")
    assert sorted(graphs["mol_id"].to_pylist()) == ["ethanol", "methane", "water"]
    assert dict(zip(graphs["mol_id"].to_pylist(), graphs["n_atoms"].to_pylist(), strict=True))["ethanol"] == 9
    answers = pq.read_table(tmp_path / "out" / "answer_key.parquet").to_pandas().set_index("mol_id")
    assert answers.loc["ethanol", "homo"] == -7.2 and np.isnan(answers.loc["methane", "gap"])
    assert manifest["units"]["homo"] == "as given"
    reasons = " | ".join(pq.read_table(tmp_path / "out" / "rejects.parquet")["reason"].to_pylist())
    assert "C1CC" in reasons and "unclosed ring" in reasons


IONS = "id,smiles\nmea_hcl,C[NH3+].[Cl-]\nnaoac,CC(=O)[O-].[Na+]\nhydrate,CCO.O\nmethyl,[CH3]\nethanol,CCO\n"


@pytest.mark.parametrize("num_shards", [1, 2])
def test_charge_and_multiplicity_reach_the_graph_shards_and_salts_lose_their_counter_ions(
    tmp_path, num_shards
):
    csv = tmp_path / "ions.csv"
    csv.write_text(IONS)
    settings = FeaturiseSettings(source="smiles", inputs=[str(csv)], num_shards=num_shards)
    manifest = featurise(settings, tmp_path / "out")
    graphs = _read_graphs(tmp_path / "out")
    assert graphs.schema.remove_metadata() == GRAPH_SCHEMA
    rows = {r["mol_id"]: r for r in graphs.to_pylist()}
    assert list(rows) == ["mea_hcl", "naoac", "hydrate", "methyl", "ethanol"]
    assert [rows[m]["charge"] for m in rows] == [1, -1, 0, 0, 0]
    assert [rows[m]["multiplicity"] for m in rows] == [1, 1, 1, 2, 1]
    assert 17 not in rows["mea_hcl"]["z"] and 11 not in rows["naoac"]["z"]  # no Cl-, no Na+
    assert rows["hydrate"]["n_atoms"] == 9  # ethanol without its water
    assert min(min(r["dist"]) for r in rows.values()) > 0.9  # no fragments stacked on each other
    assert manifest["fragments"] == "largest"
    assert manifest["counts"]["charged"] == 2 and manifest["counts"]["open_shell"] == 1


def test_fragments_reject_lists_salts_in_rejects(tmp_path):
    csv = tmp_path / "ions.csv"
    csv.write_text(IONS)
    manifest = featurise(
        FeaturiseSettings(source="smiles", inputs=[str(csv)], fragments="reject"), tmp_path / "out"
    )
    assert _read_graphs(tmp_path / "out")["mol_id"].to_pylist() == ["methyl", "ethanol"]
    rejects = pq.read_table(tmp_path / "out" / "rejects.parquet").to_pandas().set_index("mol_id")
    assert set(rejects.index) == {"mea_hcl", "naoac", "hydrate"}
    assert "CC(=O)[O-], [Na+]" in rejects.reason["naoac"] and "fragments" in rejects.reason["naoac"]
    assert manifest["fragments"] == "reject"


def test_a_multiplicity_the_electrons_cannot_have_is_rejected(tmp_path):
    from ase import Atoms
    from ase.io import write

    water = [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]
    frames = [
        Atoms("OH2", positions=water, info={"mol_id": "doublet_water", "multiplicity": 2}),
        Atoms("OH2", positions=water, info={"mol_id": "cation", "charge": 1}),  # 9 electrons: a doublet
        Atoms("H", positions=[[0, 0, 0]], info={"mol_id": "proton", "charge": 1}),
        Atoms("OH2", positions=water, info={"mol_id": "water"}),
    ]
    write(tmp_path / "spins.extxyz", frames, format="extxyz")
    featurise(FeaturiseSettings(source="files", inputs=[str(tmp_path / "spins.extxyz")]), tmp_path / "out")
    graphs = _read_graphs(tmp_path / "out")
    assert graphs["mol_id"].to_pylist() == ["cation", "water"]
    assert graphs["charge"].to_pylist() == [1, 0] and graphs["multiplicity"].to_pylist() == [2, 1]
    reasons = pq.read_table(tmp_path / "out" / "rejects.parquet").to_pandas().set_index("mol_id").reason
    assert "multiplicity 2 is impossible with 10 electrons (charge +0)" in reasons["doublet_water"]
    assert "charge +1 leaves 0 electrons" in reasons["proton"]


def test_an_element_the_network_cannot_embed_is_rejected_naming_it(tmp_path):
    """Rutherfordium (104) is an element, but past the network's embedding and references: the
    molecule is a reject with the element named, the others are featurised (the teacher would
    otherwise fail on 'index 104 is out of bounds', naming no molecule)."""
    from ase import Atoms
    from ase.io import write

    water = [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]
    tetrahedron = [[0, 0, 0], [1.3, 1.3, 1.3], [-1.3, -1.3, 1.3], [-1.3, 1.3, -1.3], [1.3, -1.3, -1.3]]
    frames = [
        Atoms("OH2", positions=water, info={"mol_id": "water"}),
        Atoms("RfCl4", positions=tetrahedron, info={"mol_id": "rf_chloride"}),
        Atoms(
            "CH4",
            positions=[
                [0, 0, 0],
                [0.63, 0.63, 0.63],
                [-0.63, -0.63, 0.63],
                [-0.63, 0.63, -0.63],
                [0.63, -0.63, -0.63],
            ],
            info={"mol_id": "methane"},
        ),  # fmt: skip
    ]
    write(tmp_path / "heavy.extxyz", frames, format="extxyz")
    manifest = featurise(
        FeaturiseSettings(source="files", inputs=[str(tmp_path / "heavy.extxyz")]), tmp_path / "out"
    )
    assert _read_graphs(tmp_path / "out")["mol_id"].to_pylist() == ["water", "methane"]
    rejects = pq.read_table(tmp_path / "out" / "rejects.parquet").to_pandas().set_index("mol_id")
    assert list(rejects.index) == ["rf_chloride"]
    reason = rejects.reason["rf_chloride"]
    from pipeline.config.network import LARGEST_Z

    assert "element Rf (atomic number 104)" in reason and f"1 to {LARGEST_Z}" in reason, reason
    assert manifest["elements"] == [1, 6, 8]


def _rejects_by_id(out: Path):
    return pq.read_table(out / "rejects.parquet").to_pandas().set_index("mol_id")


def test_the_datasets_own_bad_values_are_rejects_naming_file_row_and_value(tmp_path):
    """A stray 'abc' in a property column rejects its molecule (the column stays for the others),
    and a value outside its plausible range (1e30, a HOMO in the wrong unit) is a reject too, from
    a SMILES CSV and an extxyz file alike; the dataset's oracle.ranges widens or switches a range."""
    from ase import Atoms
    from ase.io import write

    csv = tmp_path / "lib.csv"
    csv.write_text("id,smiles,homo\nethanol,CCO,-7.2\nbad_cell,CC,abc\nhuge,C,1e30\nwater,O,-7.5\n")
    water = [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]
    frames = [
        Atoms("OH2", positions=water, info={"mol_id": "w1", "homo": -7.6}),
        Atoms("OH2", positions=water, info={"mol_id": "w_huge", "homo": 1e30}),
        Atoms("OH2", positions=water, info={"mol_id": "w_text", "homo": "abc", "note": "text is fine"}),
    ]
    write(tmp_path / "w.extxyz", frames, format="extxyz")

    manifest = featurise(FeaturiseSettings(source="smiles", inputs=[str(csv)]), tmp_path / "s")
    assert _read_graphs(tmp_path / "s")["mol_id"].to_pylist() == ["ethanol", "water"]
    assert manifest["targets"] == ["homo"]
    answers = pq.read_table(tmp_path / "s" / "answer_key.parquet").to_pandas().set_index("mol_id")
    assert answers.homo.to_dict() == {"ethanol": -7.2, "water": -7.5}
    rejects = _rejects_by_id(tmp_path / "s")
    assert rejects.origin["bad_cell"] == str(csv) and rejects["index"]["bad_cell"] == 1
    assert "row 1" in rejects.reason["bad_cell"] and "homo 'abc'" in rejects.reason["bad_cell"]
    assert rejects["index"]["huge"] == 2
    assert "homo = 1e+30 eV is outside the plausible range" in rejects.reason["huge"]
    assert "oracle.ranges.homo" in rejects.reason["huge"]

    featurise(FeaturiseSettings(source="files", inputs=[str(tmp_path / "w.extxyz")]), tmp_path / "x")
    assert _read_graphs(tmp_path / "x")["mol_id"].to_pylist() == ["w1"]
    rejects = _rejects_by_id(tmp_path / "x")
    assert rejects["index"]["w_huge"] == 1 and "homo = 1e+30 eV is outside" in rejects.reason["w_huge"]
    assert rejects["index"]["w_text"] == 2 and "homo=abc is not a number" in rejects.reason["w_text"]

    off = FeaturiseSettings(source="files", inputs=[str(tmp_path / "w.extxyz")], ranges={"homo": None})
    featurise(off, tmp_path / "off")
    assert _read_graphs(tmp_path / "off")["mol_id"].to_pylist() == ["w1", "w_huge"]
    narrow = FeaturiseSettings(source="smiles", inputs=[str(csv)], ranges={"homo": [-7.3, 0]})
    featurise(narrow, tmp_path / "narrow")
    assert _read_graphs(tmp_path / "narrow")["mol_id"].to_pylist() == ["ethanol"]
    with pytest.raises(ValueError, match=r"oracle.ranges.homo"):
        featurise(
            FeaturiseSettings(source="smiles", inputs=[str(csv)], ranges={"homo": [1, 0]}), tmp_path / "z"
        )


def test_overflowing_coordinates_and_periodic_structures_are_rejected_naming_them(tmp_path):
    """A coordinate of 1e300 Å would be stored as inf in the float32 shards, and a crystal (extxyz
    Lattice with pbc, an ASE db row with pbc) would be featurised as a molecule with its cell dropped:
    both are rejects; a molecule in a non-periodic box is kept."""
    import ase.db
    from ase import Atoms

    water = "3\n{}\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\nH {} -0.7572 -0.4692\n"
    (tmp_path / "in.extxyz").write_text(
        water.format("mol_id=far Properties=species:S:1:pos:R:3", "1e300")
        + water.format('mol_id=crystal Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3', "0.0")
        + water.format(
            'mol_id=boxed Lattice="5 0 0 0 5 0 0 0 5" pbc="F F F" Properties=species:S:1:pos:R:3', "0.0"
        )
        + water.format("mol_id=water Properties=species:S:1:pos:R:3", "0.0")
    )
    with ase.db.connect(tmp_path / "cells.db") as db:
        db.write(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[3, 3, 4], pbc=[True, True, False]))
    inputs = [str(tmp_path / "in.extxyz"), str(tmp_path / "cells.db")]
    featurise(FeaturiseSettings(source="files", inputs=inputs), tmp_path / "out")
    graphs = _read_graphs(tmp_path / "out")
    assert graphs["mol_id"].to_pylist() == ["boxed", "water"]
    assert all(np.isfinite(np.asarray(graphs["pos"].to_pylist()[0])).ravel())
    rejects = pq.read_table(tmp_path / "out" / "rejects.parquet").to_pandas()
    reasons = dict(zip(rejects.mol_id, rejects.reason, strict=True))
    assert "coordinate 1e+300 Å (atom 2) is beyond" in reasons["far"]
    assert "periodic structure (pbc along a, b, c; cell 5 x 5 x 5 Å)" in reasons["crystal"]
    assert "periodic structure (pbc along a, b; cell 3 x 3 x 4 Å)" in reasons["cells-0"]


def test_an_id_that_cannot_be_kept_as_given_is_a_reject(tmp_path):
    """An empty mol_id in an extxyz comment line would make the next key (homo=-8.4) the id and
    lose its value; a backslash would be read as an escape; a newline in a CSV id would split the
    request files. Each is a reject naming the id; an id ASE reads as a number keeps its text."""
    frame = "1\n{} Properties=species:S:1:pos:R:3\nHe 0.0 0.0 0.0\n"
    (tmp_path / "ids.extxyz").write_text(
        frame.format("mol_id= homo=-8.4")
        + frame.format('mol_id="a\\nb" homo=-8.4')
        + frame.format("mol_id=007 homo=-8.4")
        + frame.format("mol_id = spaced homo=-8.4").replace("He", "Ne")
    )
    csv = tmp_path / "ids.csv"
    csv.write_text('id,smiles\n"two\nlines",C\ntab\there,C\nmethane,C\n')
    inputs = [str(tmp_path / "ids.extxyz"), str(csv)]
    featurise(FeaturiseSettings(source="files", inputs=inputs[:1]), tmp_path / "x")
    featurise(FeaturiseSettings(source="smiles", inputs=inputs[1:]), tmp_path / "s")
    assert _read_graphs(tmp_path / "x")["mol_id"].to_pylist() == ["007", "spaced"]
    answers = pq.read_table(tmp_path / "x" / "answer_key.parquet").to_pandas()
    assert answers.homo.tolist() == [-8.4, -8.4]
    rejects = pq.read_table(tmp_path / "x" / "rejects.parquet").to_pandas().set_index("index").reason
    assert "empty mol_id=" in rejects[0] and "mol_id 'a\\\\nb' is read as 'anb'" in rejects[1]
    assert _read_graphs(tmp_path / "s")["mol_id"].to_pylist() == ["methane"]
    rejects = pq.read_table(tmp_path / "s" / "rejects.parquet").to_pandas().set_index("index").reason
    assert "id 'two\\nlines' cannot be kept as given" in rejects[0] and "'tab\\there'" in rejects[1]


def test_every_qm9_value_is_inside_its_plausible_range_and_unit_or_sign_errors_are_not():
    """The default ranges (config.units.PLAUSIBLE_RANGES) refuse no molecule of QM9 (all 130,831
    of qm9pack), and do refuse a HOMO in hartree, a sign-flipped one and QM9's U0 in hartree."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from pipeline.config.units import plausible_ranges
    from pipeline.data.sources.qm9 import QM9_COLUMNS, qm9_csvs

    columns = [column for column, _ in QM9_COLUMNS.values()]
    options = pcsv.ConvertOptions(include_columns=columns)
    table = pa.concat_tables([pcsv.read_csv(p, convert_options=options) for p in qm9_csvs()])
    assert table.num_rows == 130_831
    ranges = plausible_ranges(TARGETS)
    assert set(ranges) == set(TARGETS)
    for target, (column, factor) in QM9_COLUMNS.items():
        values = table[column].to_numpy() * factor
        low, high = ranges[target]
        assert low <= values.min() and values.max() <= high, (target, values.min(), values.max())
    homo, u0 = table["HOMO_au"].to_numpy(), table["InternalEnergy_0K_au"].to_numpy()
    low, high = ranges["homo"]
    assert ((homo < low) | (homo > high)).all()  # in hartree
    assert ((-homo * HARTREE_TO_EV < low) | (-homo * HARTREE_TO_EV > high)).all()  # sign-flipped
    assert not (low <= 49.9 <= high) and not (low <= 7 <= high)
    assert (u0 > ranges["u0"][1]).all()  # in hartree


def test_a_shard_job_refuses_inputs_changed_since_it_was_planned(tmp_path):
    from pipeline.config.digest import inputs_sha256

    folder = tmp_path / "mols"
    folder.mkdir()
    (folder / "a.xyz").write_text("1\nmol_id=h\nH 0 0 0\n")
    settings = FeaturiseSettings(source="files", inputs=[str(folder)])
    planned = inputs_sha256(settings.inputs)
    featurise_shard(settings, 0, ShardFiles.in_folder(tmp_path / "out", 0), inputs_sha256=planned)
    with open(folder / "a.xyz", "a") as fh:
        fh.write("1\nmol_id=he\nHe 0 0 0\n")
    with pytest.raises(FeaturiseError, match=r"mols: changed since this job was planned"):
        featurise_shard(settings, 0, ShardFiles.in_folder(tmp_path / "again", 0), inputs_sha256=planned)


WATER = [("O", [0.0, 0.0, 0.1173]), ("H", [0.0, 0.7572, -0.4692]), ("H", [0.0, -0.7572, -0.4692])]


def _frame(mol_id: str, atoms, homo: float) -> str:
    lines = [f"{symbol} {x:.6f} {y:.6f} {z:.6f}" for symbol, (x, y, z) in atoms]
    return (
        f"{len(atoms)}\nmol_id={mol_id} homo={homo} Properties=species:S:1:pos:R:3\n"
        + "\n".join(lines)
        + "\n"
    )


@pytest.mark.parametrize("num_shards", [1, 3])
def test_the_same_molecule_under_two_ids_is_kept_once_even_across_shards(tmp_path, num_shards):
    """QM9 has pairs of one geometry with its atoms in another order; a SMILES list can name one
    molecule twice. The first is kept; the later one is a reject naming it, left out of the answer
    key and of every split, and counted in the manifest; a conformer with other distances is kept;
    duplicates: keep keeps both."""
    from pipeline.data.split import dataset_ids

    c, s = np.cos(0.3), np.sin(0.3)
    turned = [(e, [x * c - y * s, x * s + y * c, z + 5.0]) for e, (x, y, z) in WATER]  # rotated, moved
    bent = [WATER[0], WATER[1], ("H", [0.0, -0.70, -0.55])]  # another geometry
    (tmp_path / "w.extxyz").write_text(
        _frame("w1", WATER, -7.5)
        + _frame("w2", bent, -7.4)
        + _frame("w3", [turned[1], turned[0], turned[2]], -7.5)
    )
    manifest = featurise(
        FeaturiseSettings(source="files", inputs=[str(tmp_path / "w.extxyz")], num_shards=num_shards),
        tmp_path / "x",
    )
    assert manifest["counts"]["duplicates"] == 1 and manifest["counts"]["molecules"] == 2
    assert dataset_ids(tmp_path / "x").tolist() == ["w1", "w2"]
    from pipeline.data.split import make_split, split_dataset

    split = split_dataset(tmp_path / "x", tmp_path / "split.parquet", val=0, test=1, seed=0)
    assert sorted(split["mol_id"].to_pylist()) == ["w1", "w2"]
    # the random order is drawn over every molecule: leaving one out moves no other
    ids = np.array([f"m{k}" for k in range(50)], dtype=object)
    full = make_split(ids, val=5, test=5, seed=1).to_pandas().set_index("mol_id").split
    gone = full.index[full == "test"][0]
    less = make_split(ids, val=5, test=5, seed=1, left_out=np.array([gone])).to_pandas()
    less = less.set_index("mol_id").split
    assert gone not in less.index and (less == "test").sum() == 5 and (less == "val").sum() == 5
    assert (less != full[less.index]).sum() == 2  # the next val molecule into test, a pool one into val
    answers = pq.read_table(tmp_path / "x" / "answer_key.parquet").to_pandas()
    assert answers.columns.tolist() == ["mol_id", "homo"] and answers.mol_id.tolist() == ["w1", "w2"]
    rejects = _rejects_by_id(tmp_path / "x")
    assert rejects["index"]["w3"] == 2 and "duplicate of 'w1' (" in rejects.reason["w3"]
    assert "interatomic distances" in rejects.reason["w3"]

    csv = tmp_path / "lib.csv"
    csv.write_text("id,smiles\nethanol,CCO\nmethanol,CO\nethanol-again,OCC\n")
    settings = FeaturiseSettings(source="smiles", inputs=[str(csv)], num_shards=num_shards)
    featurise(settings, tmp_path / "s")
    assert dataset_ids(tmp_path / "s").tolist() == ["ethanol", "methanol"]
    reason = _rejects_by_id(tmp_path / "s").reason["ethanol-again"]
    assert "duplicate of 'ethanol'" in reason and "canonical SMILES 'CCO'" in reason

    settings.duplicates = "keep"
    manifest = featurise(settings, tmp_path / "k")
    assert dataset_ids(tmp_path / "k").tolist() == ["ethanol", "methanol", "ethanol-again"]
    assert manifest["counts"]["duplicates"] == 1 and manifest["counts"]["rejected"] == 0
