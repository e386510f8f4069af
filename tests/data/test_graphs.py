"""Packed graph sets: batches gathered by index equal the molecules read one by one."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.data.featurise import (
    DatasetFiles,
    FeaturiseError,
    FeaturiseSettings,
    ShardFiles,
    featurise,
    merge_parts,
)
from pipeline.data.graphs import load_graphs
from pipeline.data.split import dataset_ids
from pipeline.label.chunks import read_geometries


@pytest.fixture
def dataset(tmp_path, qm9_csv):
    out = tmp_path / "data"
    featurise(FeaturiseSettings(source="qm9", inputs=[str(qm9_csv())], num_shards=3, cutoff=4.0), out)
    return out


def test_load_matches_parquet_rows(dataset):
    graphs = load_graphs(dataset)
    rows = pq.read_table(dataset / "graphs").to_pylist()  # the 3 shards the manifest names
    assert len(graphs) == len(rows) == 40 and graphs.cutoff == 4.0 and graphs.rbf["count"] == 300
    for m, row in enumerate(rows):
        a, e = (
            slice(graphs.atom_ptr[m], graphs.atom_ptr[m + 1]),
            slice(graphs.edge_ptr[m], graphs.edge_ptr[m + 1]),
        )
        assert graphs.mol_id[m] == row["mol_id"]
        assert graphs.z[a].tolist() == row["z"]
        np.testing.assert_array_equal(graphs.pos[a].numpy(), np.array(row["pos"], dtype=np.float32))
        assert (
            graphs.edge_src[e].tolist() == row["edge_src"] and graphs.edge_dst[e].tolist() == row["edge_dst"]
        )


def test_batch_is_the_disjoint_union_of_its_molecules(dataset):
    graphs = load_graphs(dataset)
    index = [17, 3, 3, 39, 0]  # any order, repeats allowed
    b = graphs.batch(index)
    assert b.num_graphs == 5 and b.batch.tolist() == sorted(b.batch.tolist())
    for g, m in enumerate(index):
        atoms = (b.batch == g).nonzero().flatten()
        single = graphs.batch([m])
        assert torch.equal(b.z[atoms], single.z) and torch.equal(b.pos[atoms], single.pos)
        mine = (b.edge_index[0] >= atoms.min()) & (b.edge_index[0] <= atoms.max())
        assert torch.equal(b.edge_index[:, mine] - atoms.min(), single.edge_index)
        # edges never cross molecules, and their stored length is the distance of their atoms
        assert torch.all(b.batch[b.edge_index[1, mine]] == g)
        d = (b.pos[b.edge_index[0, mine]] - b.pos[b.edge_index[1, mine]]).norm(dim=1)
        torch.testing.assert_close(d, b.dist[mine], atol=1e-5, rtol=0)


def test_subset_by_ids_keeps_requested_order(dataset):
    graphs = load_graphs(dataset)
    ids = [graphs.mol_id[7], graphs.mol_id[2]]
    sub = load_graphs(dataset, mol_ids=ids)
    assert sub.mol_id.tolist() == ids
    for i, m in enumerate([7, 2]):
        a, b = sub.batch([i]), graphs.batch([m])
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.dist, b.dist)
    with pytest.raises(KeyError, match="'nope' is not in this graph set"):
        load_graphs(dataset, mol_ids=["nope"])


def test_bonds_follow_the_molecules_through_batches_subsets_and_devices(dataset):
    """A batch's bonds number its atoms as the batch does; a subset keeps each molecule's bonds."""
    graphs = load_graphs(dataset)
    rows = pq.read_table(dataset / "graphs").to_pylist()
    assert graphs.has_bonds.tolist() == [True] * 40 and graphs.bond_type.dtype == torch.int64
    index = [17, 3, 3, 39, 0]
    b, bonds = graphs.batch(index), graphs.bonds(index)
    assert bonds.has_bonds.tolist() == [True] * 5
    start = 0
    for g, m in enumerate(index):
        row = rows[m]
        n = len(row["bond_src"])
        mine = slice(start, start + n)
        start += n
        offset = int(b.atom_ptr[g])
        assert (bonds.bond_index[0, mine] - offset).tolist() == row["bond_src"]
        assert (bonds.bond_index[1, mine] - offset).tolist() == row["bond_dst"]
        assert bonds.bond_type[mine].tolist() == row["bond_type"]
        assert torch.all(b.batch[bonds.bond_index[:, mine]] == g)  # never across molecules
    assert start == bonds.bond_index.shape[1] == len(bonds.bond_type)
    # a bond joins atoms of the stored geometry within 2 Å
    assert (b.pos[bonds.bond_index[0]] - b.pos[bonds.bond_index[1]]).norm(dim=1).max() < 2.0
    sub = graphs.subset(index).to("cpu")
    again = sub.bonds(range(5))
    assert torch.equal(again.bond_index, bonds.bond_index) and torch.equal(again.bond_type, bonds.bond_type)
    assert sub.bond_src.dtype == torch.int32 and sub.bond_ptr.tolist()[-1] == start


def test_missing_dataset_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="featurise the dataset first"):
        load_graphs(tmp_path / "absent")


# Every reader of a dataset's graphs (training, the QC oracles' geometries, the split) reads exactly the
# shards the manifest names, and refuses a shard whose bytes changed since featurisation.
READERS = {
    "load_graphs": lambda data: list(load_graphs(data).mol_id),
    "read_geometries": lambda data: [g[0] for g in read_geometries(data, dataset_ids(data)[:5])],
    "dataset_ids": lambda data: list(dataset_ids(data)),
}


@pytest.mark.parametrize("reader", READERS)
def test_shards_the_manifest_does_not_name_are_never_read(tmp_path, qm9_csv, reader):
    data = tmp_path / "data"
    featurise(FeaturiseSettings(source="qm9", inputs=[str(qm9_csv())], num_shards=3), data)
    stale = pq.read_table(data / "graphs" / "shard-00002.parquet")
    featurise(FeaturiseSettings(source="qm9", inputs=[str(qm9_csv())], num_shards=2), data)
    # A stale shard from the 3-shard run whose molecule has an edited geometry: still on disk, never read
    edited = stale.set_column(
        stale.schema.get_field_index("mol_id"), "mol_id", pa.array(["stale"] * len(stale))
    )
    pq.write_table(edited, data / "graphs" / "shard-00002.parquet")
    ids = READERS[reader](data)
    assert "stale" not in ids
    if reader != "read_geometries":
        assert len(ids) == 40 and len(set(ids)) == 40


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("damage", ["rewritten", "truncated"])
def test_a_shard_changed_after_featurisation_is_refused_naming_it(dataset, reader, damage):
    shard = dataset / "graphs" / "shard-00001.parquet"
    if damage == "rewritten":  # a valid Parquet file with other coordinates
        table = pq.read_table(shard)
        pos = pa.array([[[x + 0.5 for x in atom] for atom in mol] for mol in table["pos"].to_pylist()])
        pq.write_table(
            table.set_column(
                table.schema.get_field_index("pos"), "pos", pos.cast(table.schema.field("pos").type)
            ),
            shard,
        )
    else:
        shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"shard-00001\.parquet: its SHA-256 .* featurise again"):
        READERS[reader](dataset)


def test_merge_refuses_a_shard_replaced_after_its_summary(tmp_path, qm9_csv):
    settings = FeaturiseSettings(source="qm9", inputs=[str(qm9_csv())], num_shards=2)
    featurise(settings, tmp_path)
    other = pq.read_table(tmp_path / "graphs" / "shard-00000.parquet")
    pq.write_table(other, tmp_path / "graphs" / "shard-00001.parquet")  # shard 0's molecules under 1's name
    with pytest.raises(FeaturiseError, match=r"shard-00001\.parquet: missing, or not the shard its summary"):
        merge_parts([ShardFiles.in_folder(tmp_path, k) for k in range(2)], DatasetFiles.in_folder(tmp_path))


def test_a_dataset_without_manifest_says_featurise_first(dataset):
    (dataset / "manifest.json").unlink()
    for read in READERS.values():
        with pytest.raises(FileNotFoundError, match="no manifest.json .featurise the dataset first"):
            read(dataset)


#: What each older format lacks: its columns, and the words of the message that refuses it.
OLDER_FORMATS = {
    1: (["charge", "multiplicity", "bond_src", "bond_dst", "bond_type", "has_bonds"], "no charge"),
    2: (["bond_src", "bond_dst", "bond_type", "has_bonds"], "no bonds"),
}


def _as_format(shard, version: int) -> None:
    """Rewrite ``shard`` as the pipeline of format ``version`` wrote it (without the later columns)."""
    table = pq.read_table(shard).drop_columns(OLDER_FORMATS[version][0])
    meta = dict(table.schema.metadata)
    meta[b"format_version"] = str(version).encode()
    pq.write_table(table.replace_schema_metadata(meta), shard)


@pytest.mark.parametrize("version", sorted(OLDER_FORMATS))
@pytest.mark.parametrize("reader", ["load_graphs", "read_geometries"])
def test_shards_of_an_older_format_are_refused_saying_featurise_again(dataset, reader, version):
    import hashlib
    import json

    shard = dataset / "graphs" / "shard-00001.parquet"
    _as_format(shard, version)
    manifest = json.loads((dataset / "manifest.json").read_text())
    for entry in manifest["shards"]:  # a consistent old dataset, checksums and all
        if "sha256" in entry:
            entry["sha256"] = hashlib.sha256((dataset / entry["path"]).read_bytes()).hexdigest()
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    lacks = OLDER_FORMATS[version][1]
    message = rf"shard-00001\.parquet: graph format version {version}, .*{lacks}.*featurise the dataset again"
    with pytest.raises(ValueError, match=message):
        READERS[reader](dataset)
