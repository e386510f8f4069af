"""The ViSNet backbone: PyG's ViSNet block on the project's neighbour list (the tests every backbone
must pass run on it too, in test_model.py)."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_model
from torch_geometric.nn.models.visnet import ViSNetBlock

from pipeline.config.network import ModelConfig, VisnetSettings
from pipeline.data.graphs import GraphBatch


@pytest.fixture(scope="module")
def qm9(qm9_graphs):
    """20 real QM9 molecules (full graphs, 30 Å cutoff)."""
    return qm9_graphs(20)


def visnet_model(**visnet) -> torch.nn.Module:
    """A tiny ViSNet model with random (not zero) biases, so that every term is exercised: with PyG's
    zero biases a pair beyond the cutoff would send exactly nothing even if it were kept."""
    model = tiny_model(0, backbone="visnet", visnet={"heads": 4, "cutoff": 5.0} | visnet)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "bias" in name:
                param.normal_(0, 0.1)
    return model.eval()


class BruteForceNeighbours(torch.nn.Module):
    """PyG's ``Distance`` (radius graph with self-loops) by brute force: ``radius_graph`` needs
    torch-cluster, which does not install here."""

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff

    def forward(self, pos, batch):
        d = torch.cdist(pos.double(), pos.double())
        near = (d < self.cutoff) & (batch[:, None] == batch[None, :])  # self-loops included (d = 0)
        target, source = near.nonzero().T
        edge_index = torch.stack([source, target])
        edge_vec = pos[edge_index[0]] - pos[edge_index[1]]
        return edge_index, edge_vec.norm(dim=-1), edge_vec


@pytest.mark.parametrize("lmax", [1, 2])
def test_node_features_equal_pygs_visnet_block_with_the_same_weights(qm9, lmax):
    graphs, _ = qm9
    b = graphs.batch(torch.arange(12))
    model = visnet_model(cutoff=4.0, lmax=lmax)
    ours = model.representation
    max_z = model.config.mask_token + 1
    pyg = ViSNetBlock(
        lmax=lmax, num_heads=4, num_layers=2, hidden_channels=16, num_rbf=32, max_z=max_z, cutoff=4.0
    )
    pyg.load_state_dict(ours.block.state_dict(), strict=True)
    pyg.distance = BruteForceNeighbours(4.0)
    assert (b.dist >= 4.0).any()  # the stored graph (30 Å) holds pairs the backbone must leave out
    with torch.no_grad():
        expected, _ = pyg(b.z, b.pos, b.batch)
        torch.testing.assert_close(model.embed(b.z, b), expected, rtol=1e-4, atol=1e-4)


def test_pairs_beyond_the_backbones_cutoff_send_nothing():
    """A stored pair 6 Å apart is outside a 5 Å ViSNet: each atom's features are as if alone."""

    def molecule(z, pos):
        n = len(z)
        i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        keep = i != j
        edge_index = torch.stack([i[keep], j[keep]])
        pos = torch.tensor(pos)
        return GraphBatch(
            z=torch.tensor(z), pos=pos, batch=torch.zeros(n, dtype=torch.long), edge_index=edge_index,
            dist=(pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1), atom_ptr=torch.tensor([0, n]),
            index=torch.tensor([0]),
        )  # fmt: skip

    model = visnet_model()
    with torch.no_grad():
        pair = model.embed(torch.tensor([6, 8]), molecule([6, 8], [[0.0, 0.0, 0.0], [0.0, 0.0, 6.0]]))
        close = model.embed(torch.tensor([6, 8]), molecule([6, 8], [[0.0, 0.0, 0.0], [0.0, 0.0, 1.2]]))
        carbon = model.embed(torch.tensor([6]), molecule([6], [[0.0, 0.0, 0.0]]))
        oxygen = model.embed(torch.tensor([8]), molecule([8], [[1.0, 2.0, 3.0]]))
    torch.testing.assert_close(pair, torch.cat([carbon, oxygen]), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(close, pair, atol=1e-3)  # within the cutoff they do see each other


def test_masked_atoms_enter_as_the_mask_token(qm9):
    graphs, _ = qm9
    b = graphs.batch(torch.arange(4))
    model = visnet_model()
    mask = torch.tensor([0, 5])
    with torch.no_grad():
        plain, masked = model(b), model(b, mask=mask)
        replaced = model.embed(b.z.index_fill(0, mask, model.config.mask_token), b)
    assert torch.isfinite(masked.node).all() and not torch.allclose(plain.node[mask], masked.node[mask])
    torch.testing.assert_close(masked.node, replaced)


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="exceeds the dataset's cutoff"):
        ModelConfig(backbone="visnet", cutoff=4.0, visnet={"cutoff": 5.0})
    with pytest.raises(ValueError, match="multiple of model.visnet.heads"):
        tiny_model(0, backbone="visnet", hidden=18, visnet={"heads": 4})
    with pytest.raises(ValueError, match="unknown model.backbone 'painn'"):
        ModelConfig(backbone="painn")
    with pytest.raises(ValueError, match="lmax"):
        VisnetSettings(lmax=3)
    cfg = ModelConfig(backbone="visnet", visnet={"heads": 4, "cutoff": 5.0})
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg and cfg.visnet == VisnetSettings(heads=4, cutoff=5.0)
