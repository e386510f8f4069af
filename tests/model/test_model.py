"""ASGN model: the fast backbone equals a plain SchNet, predictions are invariant and in real units."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from tiny import tiny_model
from torch_geometric.nn.models import SchNet

from pipeline.config.network import ModelConfig
from pipeline.data.graphs import GraphBatch
from pipeline.learn.scaling import fit_scaler, fit_target_scaler
from pipeline.model.asgn import ASGNModel, ModelOutput


@pytest.fixture(scope="module")
def qm9(qm9_graphs):
    """20 real QM9 molecules (full graphs, 30 Å cutoff) and their answer key."""
    return qm9_graphs(20)


def small_config(**kw) -> ModelConfig:
    values = {"hidden": 16, "n_interactions": 2, "targets": ("u0", "homo"), "n_clusters": 7}
    return ModelConfig(**(values | kw))


#: model settings of each backbone, small (tiny_model's sizes): the tests that any representation
#: must pass run on both
BACKBONES = {
    "schnet": {},
    "visnet": {"backbone": "visnet", "visnet": {"heads": 4, "cutoff": 5.0}},
}


@pytest.fixture(params=list(BACKBONES))
def backbone(request) -> dict:
    """The model settings of each backbone in turn."""
    return BACKBONES[request.param]


def model_of(seed: int = 0, **kw) -> ASGNModel:
    model = tiny_model(seed, **(dict(targets=("u0", "homo"), n_clusters=7, rbf_count=300) | kw))
    # random (not zero) biases and scaling, so that every term of the computation is exercised
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "bias" in name:
                param.normal_(0, 0.1)
        model.property_head.scale.uniform_(0.5, 2.0)
        model.property_head.shift.normal_()
        model.property_head.atomref.normal_()
    return model.eval()


def reference_embed(model: ASGNModel, z, edge_index, dist) -> torch.Tensor:
    """Textbook SchNet over the ORDERED edges: dense RBF, one filter per directed edge and layer."""
    cfg, fn = model.config, model.representation.filters
    w = cfg.rbf_width
    centres = cfg.rbf_start + w * torch.arange(cfg.rbf_count, dtype=torch.float64)
    rbf = torch.exp(-((dist.double()[:, None] - centres) ** 2) / (2 * w**2)).float()
    cut = 0.5 * (torch.cos(dist * math.pi / cfg.cutoff) + 1.0) * (dist < cfg.cutoff)
    src, dst = edge_index
    h = model.representation.embedding(z)
    for layer, block in enumerate(model.representation.interactions):
        rows = slice(layer * cfg.hidden, (layer + 1) * cfg.hidden)
        hidden = F.softplus(rbf @ fn.lin1.weight[rows].T + fn.lin1.bias[rows]) - math.log(2.0)
        filters = (hidden @ fn.weight2[layer] + fn.bias2[layer, 0]) * cut[:, None]
        x = block.lin1(h)
        m = torch.zeros_like(x).index_add_(0, dst, x[src] * filters)  # message j -> i for edge (j, i)
        h = h + block.lin(F.softplus(block.lin2(m)) - math.log(2.0))
    return h


def rebatch(b: GraphBatch, pos: torch.Tensor | None = None, perm: torch.Tensor | None = None) -> GraphBatch:
    """The batch with new coordinates and/or atoms reordered by ``perm`` (a permutation within each
    molecule), edges remapped and every distance recomputed from the coordinates, as featurise does."""
    perm = torch.arange(len(b.z)) if perm is None else perm
    pos = (b.pos if pos is None else pos)[perm]
    new_of_old = torch.argsort(perm)
    edge_index = new_of_old[b.edge_index]
    dist = (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=1)
    return GraphBatch(b.z[perm], pos, b.batch[perm], edge_index, dist, b.atom_ptr, b.index)


def test_unordered_pairs_equal_ordered_edge_reference(qm9):
    graphs, _ = qm9
    b = graphs.batch(torch.arange(len(graphs)))
    model = model_of(hidden=24, n_interactions=3)
    with torch.no_grad():
        expected = reference_embed(model, b.z, b.edge_index, b.dist)
        banded = model.embed(b.z, b)
        model.representation.filters.band = None  # dense RBF and first filter layer
        dense = model.embed(b.z, b)
    torch.testing.assert_close(banded, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dense, expected, rtol=1e-5, atol=1e-5)
    # the reference is sensitive to what it checks: dropping one direction of one pair changes it
    one_way = torch.ones(b.edge_index.shape[1], dtype=torch.bool)
    one_way[0] = False
    with torch.no_grad():
        broken = reference_embed(model, b.z, b.edge_index[:, one_way], b.dist[one_way])
    assert not torch.allclose(broken, expected, rtol=1e-5, atol=1e-5)


def test_gradients_equal_ordered_edge_reference(qm9):
    graphs, _ = qm9
    b = graphs.batch(torch.arange(6))
    model = model_of()
    grads = []
    for embed in (lambda: model.embed(b.z, b), lambda: reference_embed(model, b.z, b.edge_index, b.dist)):
        model.zero_grad()
        embed().square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "representation.filters.lin1.weight" in grads[0]
    for name, ours in grads[0].items():  # float32 sums in another order: equal to 1e-6 of the largest
        expected = grads[1][name]
        assert (ours - expected).abs().max() <= 1e-5 * expected.abs().max(), name


def test_same_predictions_as_pyg_schnet_with_the_same_weights(qm9):
    graphs, _ = qm9
    b = graphs.batch(torch.arange(len(graphs)))
    model = model_of(hidden=16, n_interactions=2, targets=("u0",))
    cfg, fn = model.config, model.representation.filters
    pyg = SchNet(
        16, 16, 2, cfg.rbf_count, cfg.cutoff, interaction_graph=lambda pos, batch: (b.edge_index, b.dist)
    )
    with torch.no_grad():
        pyg.distance_expansion.offset.copy_(fn.rbf.centres)  # PyG spaces centres by stop / (count - 1)
        pyg.distance_expansion.coeff = -0.5 / cfg.rbf_width**2
        pyg.embedding.weight.copy_(model.representation.embedding.weight[:100])
        for layer, (theirs, ours) in enumerate(
            zip(pyg.interactions, model.representation.interactions, strict=True)
        ):
            rows = slice(layer * 16, (layer + 1) * 16)
            theirs.mlp[0].weight.copy_(fn.lin1.weight[rows])
            theirs.mlp[0].bias.copy_(fn.lin1.bias[rows])
            theirs.mlp[2].weight.copy_(fn.weight2[layer].T)
            theirs.mlp[2].bias.copy_(fn.bias2[layer, 0])
            theirs.conv.lin1.weight.copy_(ours.lin1.weight)
            for name in ("lin2", "lin"):
                getattr(theirs if name == "lin" else theirs.conv, name).load_state_dict(
                    getattr(ours, name).state_dict()
                )
        pyg.lin1.load_state_dict(model.property_head.mlp[0].state_dict())
        pyg.lin2.load_state_dict(model.property_head.mlp[2].state_dict())
        (
            model.property_head.scale.fill_(1.0),
            model.property_head.shift.zero_(),
            model.property_head.atomref.zero_(),
        )  # PyG: no scaling
        ours, theirs = model(b).pred, pyg(b.z, b.pos, b.batch)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_filters_banded_equal_dense():
    torch.manual_seed(1)
    model = model_of(n_interactions=3)
    dist = torch.sort(torch.cat([torch.rand(500) * 12 + 0.5, torch.tensor([0.0, 29.99, 35.0])]))[0]
    with torch.no_grad():
        banded = model.representation.filters(dist)
        model.representation.filters.band = None
        dense = model.representation.filters(dist)
    assert banded.shape == (3, len(dist), 16)
    torch.testing.assert_close(banded, dense, rtol=1e-5, atol=1e-6)
    assert torch.all(banded[:, -1] == 0)  # 35 Å is beyond the 30 Å cutoff
    model.representation.filters.band = 16
    with pytest.raises(ValueError, match="ascending"):
        model.representation.filters(dist.flip(0))


def test_invariant_to_rotation_translation_and_atom_order(qm9, backbone):
    graphs, _ = qm9
    b = graphs.batch(torch.arange(len(graphs)))
    model = model_of(**backbone)
    gen = torch.Generator().manual_seed(3)
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen))
    moved = rebatch(b, pos=b.pos @ rotation.T + torch.tensor([5.0, -3.0, 12.0]))
    starts, counts = b.atom_ptr[:-1], b.atom_ptr[1:] - b.atom_ptr[:-1]
    perm = torch.cat([s + torch.randperm(int(c), generator=gen) for s, c in zip(starts, counts, strict=True)])
    shuffled = rebatch(b, perm=perm)
    assert not torch.equal(shuffled.z, b.z)
    with torch.no_grad():
        out, out_moved, out_shuffled = model(b), model(moved), model(shuffled)
    torch.testing.assert_close(out_moved.pred, out.pred, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out_shuffled.pred, out.pred, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_shuffled.node, out.node[perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_shuffled.graph, out.graph, rtol=1e-5, atol=1e-5)


def test_prediction_does_not_depend_on_the_rest_of_the_batch(qm9, backbone):
    graphs, _ = qm9
    model = model_of(**backbone)
    with torch.no_grad():
        alone = model(graphs.batch([7]))
        crowd = model(graphs.batch([3, 19, 7, 0, 7]))
    for row in (2, 4):
        torch.testing.assert_close(crowd.pred[row], alone.pred[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(crowd.graph[row], alone.graph[0], rtol=1e-5, atol=1e-5)


def test_heads_have_the_right_shapes_and_distance_head_is_symmetric(qm9):
    graphs, _ = qm9
    b = graphs.batch([0, 5, 9])
    cfg = small_config(n_clusters=7, n_dist_bins=11, n_atom_types=10)
    model = ASGNModel(cfg).eval()
    out = model(b)
    a, n_graphs = len(b.z), 3
    assert isinstance(out, ModelOutput)
    assert out.node.shape == (a, 16) and out.graph.shape == (n_graphs, 16) and out.pred.shape == (n_graphs, 2)
    assert out.pred.dtype == torch.float32
    # z_G is the mean of the molecule's node embeddings
    torch.testing.assert_close(out.graph[1], out.node[b.batch == 1].mean(0))
    assert model.atom_type_logits(out.node).shape == (a, 10)
    assert model.cluster_logits(out.graph).shape == (n_graphs, 7)
    i, j = b.edge_index[:, :13]
    logits = model.dist_bin_logits(out.node[i], out.node[j])
    assert logits.shape == (13, 11)
    torch.testing.assert_close(model.dist_bin_logits(out.node[j], out.node[i]), logits)


def test_fit_scaler_gives_predictions_in_real_units_and_ignores_missing_labels(qm9):
    graphs, labels = qm9
    targets = ("u0", "homo", "alpha")
    b = graphs.batch(torch.arange(len(graphs)))
    y = torch.tensor(labels[list(targets)].to_numpy().copy(), dtype=torch.float32)
    y_missing = y.clone()
    y_missing[::3, 0] = torch.nan  # a third of u0 and one homo label are missing
    y_missing[4, 1] = torch.nan
    model = ASGNModel(small_config(targets=targets)).eval()
    fit_scaler(model, graphs, torch.arange(len(graphs)), y_missing, atomref=("u0",))
    has = ~torch.isnan(y_missing)
    n_atoms = (b.atom_ptr[1:] - b.atom_ptr[:-1]).double()
    # homo (mean readout): the labelled mean and std; alpha (sum, no atomref): per-atom statistics
    homo = y[has[:, 1], 1].double()
    torch.testing.assert_close(model.property_head.shift[1].double(), homo.mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.property_head.scale[1].double(), homo.std(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        model.property_head.shift[2].double(), (y[:, 2] / n_atoms).mean(), rtol=1e-5, atol=1e-6
    )
    assert torch.all(model.property_head.atomref[:, 1:] == 0) and torch.any(
        model.property_head.atomref[:, 0] != 0
    )
    assert torch.all(model.property_head.atomref[[0, 2, 3, 4, 5, 10], 0] == 0)  # elements that are not in QM9
    # with a silent property head, predictions are the scaling alone: for u0, element references
    # fitted to the labelled energies explain them to a few eV (in eV; the energies are ~-10^4 eV)
    with torch.no_grad():
        model.property_head.mlp[-1].weight.zero_()
        model.property_head.mlp[-1].bias.zero_()
        pred = model(b).pred
    assert torch.all((pred[:, 0] - y[:, 0]).abs() < 5.0) and y[:, 0].abs().min() > 1000
    torch.testing.assert_close(pred[:, 1], torch.full((20,), float(homo.mean())), rtol=1e-6, atol=1e-6)
    # missing labels are ignored: the same fit as on the labelled molecules alone
    keep = has[:, 0]
    atoms_kept = keep[b.batch]
    _, _, ref_alone = fit_target_scaler(
        b.z[atoms_kept],
        torch.cumsum(keep.long(), 0)[b.batch[atoms_kept]] - 1,
        y[keep, :1],
        torch.tensor([False]),
        100,
        torch.tensor([True]),
    )
    torch.testing.assert_close(model.property_head.atomref[:, :1], ref_alone, rtol=1e-5, atol=1e-4)
    assert (
        not torch.isnan(model.property_head.scale).any()
        and not torch.isnan(model.property_head.atomref).any()
    )


def test_fit_scaler_with_no_labels_keeps_identity_scaling():
    z, batch = torch.tensor([6, 1, 1, 1, 1]), torch.zeros(5, dtype=torch.long)
    scale, shift, ref = fit_target_scaler(
        z, batch, torch.tensor([[math.nan]]), torch.tensor([False]), 10, torch.tensor([True])
    )
    assert scale.tolist() == [1.0] and shift.tolist() == [0.0] and torch.all(ref == 0)


def test_overfits_a_few_real_molecules(qm9):
    graphs, labels = qm9
    torch.manual_seed(0)
    targets = ("u0", "gap")
    model = ASGNModel(small_config(hidden=32, n_interactions=2, targets=targets))
    b = graphs.batch(torch.arange(len(graphs)))
    y = torch.tensor(labels[list(targets)].to_numpy().copy(), dtype=torch.float32)
    fit_scaler(model, graphs, torch.arange(len(graphs)), y)
    n_atoms = (b.atom_ptr[1:] - b.atom_ptr[:-1]).unsqueeze(1)
    units = torch.where(
        model.property_head.mean_readout, model.property_head.scale, model.property_head.scale * n_atoms
    )  # one std, per target

    def loss() -> torch.Tensor:
        return (((model(b).pred - y) / units) ** 2).mean()

    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = loss().item()
    for _ in range(300):
        optimiser.zero_grad()
        value = loss()
        value.backward()
        optimiser.step()
    assert loss().item() < first / 10


def test_works_under_bfloat16_autocast(qm9, backbone):
    graphs, _ = qm9
    b = graphs.batch(torch.arange(8))
    model = model_of(**backbone)
    with torch.no_grad():
        full = model(b)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            mixed = model(b)
    assert mixed.pred.dtype == torch.float32 and mixed.node.dtype == torch.float32
    torch.testing.assert_close(mixed.pred, full.pred, rtol=0.05, atol=0.2)


def test_config_round_trip_defaults_and_validation():
    cfg = ModelConfig(targets=("u0", "homo", "cv"), readout={"cv": "mean"}, dropout=0.1)
    assert cfg.readout == {"u0": "sum", "homo": "mean", "cv": "mean"}
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    default = ModelConfig()
    assert (default.hidden, default.n_interactions, default.rbf_count, default.rbf_width) == (96, 4, 300, 0.1)
    assert default.readout["u0"] == "sum" and default.readout["gap"] == "mean"
    with pytest.raises(ValueError, match="readout"):
        ModelConfig(targets=("u0",), readout={"u0": "max"})
    with pytest.raises(ValueError, match="not in targets"):
        ModelConfig(targets=("u0",), readout={"gap": "mean"})
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"hidden": 8, "width": 3})


def test_state_dict_and_config_rebuild_the_same_model(qm9, backbone):
    graphs, _ = qm9
    b = graphs.batch([1, 2])
    model = model_of(**backbone)
    clone = ASGNModel(ModelConfig.from_dict(model.config.to_dict()))
    clone.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(clone.eval()(b).pred, model(b).pred, rtol=0, atol=0)


def test_reset_parameters_reinitialises_every_parameter_and_keeps_scaling():
    model = model_of()
    before = {n: p.clone() for n, p in model.named_parameters()}
    scale = model.property_head.scale.clone()
    model.reset_parameters()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(before)
    assert torch.equal(model.property_head.scale, scale)


def test_repr_names_the_architecture():
    text = repr(ASGNModel(small_config(dropout=0.2)))
    for part in (
        "ASGNModel(",
        "hidden=16",
        "n_interactions=2",
        "300x0.1",
        "cutoff=30",
        "'u0'",
        "dropout=0.2",
    ):
        assert part in text


def test_single_atoms_have_no_pairs_and_predictions_from_their_embedding():
    model = model_of()
    b = GraphBatch(
        z=torch.tensor([6, 8]),
        pos=torch.zeros(2, 3),
        batch=torch.tensor([0, 1]),
        edge_index=torch.zeros(2, 0, dtype=torch.long),
        dist=torch.zeros(0),
        atom_ptr=torch.tensor([0, 1, 2]),
        index=torch.tensor([0, 1]),
    )
    with torch.no_grad():
        out = model(b)
        h = model.representation.embedding.weight[[6, 8]]
        for block in model.representation.interactions:  # no neighbours: every message sum is zero
            h = h + block.lin(block.act(block.lin2(torch.zeros_like(h))))
        alone = (
            model.property_head.mlp(h) * model.property_head.scale
            + model.property_head.shift
            + model.property_head.atomref[[6, 8]]
        )
    torch.testing.assert_close(out.node, h)
    torch.testing.assert_close(out.pred, alone)


def test_one_way_graph_is_rejected(qm9):
    graphs, _ = qm9
    b = graphs.batch([3])
    keep = b.edge_index[0] > b.edge_index[1]
    with pytest.raises(ValueError, match="both directions"):
        model_of().embed(b.z, b, b.edge_index[:, keep], b.dist[keep])


def test_last_layer_gradient_features_are_the_gradients_autograd_gives(qm9):
    """The 'll' selection features: for each molecule and target, the gradient of the prediction
    with respect to the property head's last layer (weights and bias of that target's row); u0 is
    read out as a sum, homo as a mean, so both readouts are checked."""
    graphs, _ = qm9
    model = model_of()
    last = model.property_head.mlp[-1]
    features = model.last_layer_gradients(graphs.batch(torch.arange(4)))
    assert features.shape == (4, 2 * (last.in_features + 1))
    for i in range(4):
        expected = []
        for t in range(2):
            model.zero_grad()
            model(graphs.batch(torch.tensor([i]))).pred[0, t].backward()
            expected.append(torch.cat([last.weight.grad[t], last.bias.grad[t : t + 1]]))
        torch.testing.assert_close(features[i], torch.cat(expected), rtol=1e-4, atol=1e-5)


def test_every_part_of_the_network_takes_the_heaviest_element_featurisation_accepts():
    """pipeline.config.network.LARGEST_Z, the limit featurisation rejects beyond, fits every part
    of a network of the default sizes: the embedding (unmasked and masked), the per-element
    references and the atom-type head the reconstruction loss trains; one more does not."""
    from pipeline.config.network import LARGEST_Z

    z = torch.tensor([1, LARGEST_Z])  # a two-atom molecule, 2 Å long
    batch = GraphBatch(
        z=z, pos=torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]]), batch=torch.zeros(2, dtype=torch.long),
        edge_index=torch.tensor([[0, 1], [1, 0]]), dist=torch.tensor([2.0, 2.0]),
        atom_ptr=torch.tensor([0, 2]), index=torch.tensor([0]),
    )  # fmt: skip
    model = tiny_model()  # max_z and n_atom_types as every run's network has them
    assert torch.isfinite(model(batch).pred).all()
    assert torch.isfinite(model(batch, mask=torch.tensor([1])).pred).all()  # the mask token's row too
    logits = model.atom_type_logits(model(batch).node)
    assert torch.isfinite(F.cross_entropy(logits, z))
    cfg = model.config
    *_, ref = fit_target_scaler(
        z, batch.batch, torch.tensor([[-1000.0, -5.0]]), model.property_head.mean_readout, cfg.max_z,
        torch.tensor([True, False]),
    )  # fmt: skip
    assert ref.shape[0] > LARGEST_Z
    with pytest.raises(IndexError):  # fermium (100) already has no class in the atom-type head
        F.cross_entropy(logits, torch.tensor([1, LARGEST_Z + 1]))
