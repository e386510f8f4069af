"""Packed graph sets: batches gathered by index equal the molecules read one by one."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.featurise import FeaturiseSettings, featurise
from pipeline.graphs import load_graphs


@pytest.fixture
def dataset(tmp_path, qm9_csv):
    out = tmp_path / "data"
    featurise(FeaturiseSettings(source="qm9", inputs=[str(qm9_csv())], num_shards=3, cutoff=4.0), out)
    return out


def test_load_matches_parquet_rows(dataset):
    graphs = load_graphs(dataset)
    rows = pq.read_table(dataset / "graphs").to_pylist()
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


def test_missing_dataset_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="featurise the dataset first"):
        load_graphs(tmp_path / "absent")
