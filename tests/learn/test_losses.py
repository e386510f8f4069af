"""Teacher loss terms: masking, pair sampling, distance bins, switching terms off."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pipeline.config.training import LossWeights
from pipeline.learn.losses import (
    consistency_loss,
    distance_bins,
    grouped_property_loss,
    property_loss,
    sample_pairs,
    teacher_loss,
)


def test_property_loss_ignores_missing_labels():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[2.0, float("nan")], [3.0, 0.0]])
    scale = torch.tensor([1.0, 2.0])
    # present: (0,0) err 1/1, (1,0) err 0, (1,1) err 4/2 -> (1 + 0 + 4) / 3
    assert property_loss(pred, target, scale).item() == pytest.approx(5 / 3)
    assert property_loss(pred, torch.full_like(target, float("nan")), scale).item() == 0.0


def test_consistency_loss_is_the_mean_squared_standardised_difference():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    scale = torch.tensor([1.0, 2.0])
    assert consistency_loss(pred, pred.detach().clone(), scale).item() == 0.0
    ema_pred = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    # (1/1)^2, 0, 0, (4/2)^2 over 4 entries
    loss = consistency_loss(pred, ema_pred, scale)
    assert loss.item() == pytest.approx(5 / 4)
    loss.backward()  # d/dpred = 2 (pred - ema_pred) / (scale^2 * 4)
    torch.testing.assert_close(pred.grad, torch.tensor([[0.5, 0.0], [0.0, 0.5]]))


def test_sample_pairs_stay_in_molecule_and_are_distinct():
    atom_ptr = torch.tensor([0, 1, 3, 13, 33])  # molecules of 1, 2, 10 and 20 atoms
    g = torch.Generator().manual_seed(0)
    i, j = sample_pairs(atom_ptr, alpha=0.4, generator=g)
    mol_i = torch.bucketize(i, atom_ptr, right=True) - 1
    mol_j = torch.bucketize(j, atom_ptr, right=True) - 1
    assert torch.equal(mol_i, mol_j) and torch.all(i != j)
    # one atom: no pair; 2 atoms: round(0.8) = 1; 10: 4; 20: 8
    assert torch.bincount(mol_i, minlength=4).tolist() == [0, 1, 4, 8]
    again = sample_pairs(atom_ptr, 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(i, again[0]) and torch.equal(j, again[1])


def test_sample_pairs_cover_all_pairs_uniformly():
    atom_ptr = torch.tensor([0, 4])
    i, j = sample_pairs(atom_ptr, alpha=3000.0, generator=torch.Generator().manual_seed(1))
    counts = torch.bincount(i * 4 + j, minlength=16).reshape(4, 4)
    assert torch.all(counts.diagonal() == 0)
    off = counts[~torch.eye(4, dtype=torch.bool)].double()
    assert off.min() > 0.8 * off.mean() and off.max() < 1.2 * off.mean()


def test_distance_bins_span_the_given_range():
    d = torch.tensor([0.0, 0.9, 1.0, 1.3299, 1.33, 10.0, 11.0, 45.0])
    # 30 bins of 0.33 Å over [1.0, 10.9]; below 1.0 -> bin 0, at or above 10.9 -> bin 29
    assert distance_bins(d, start=1.0, stop=10.9, n_bins=30).tolist() == [0, 0, 0, 0, 1, 27, 29, 29]


def test_distance_bins_resolve_qm9_pair_distances(tmp_path):
    """On real QM9 molecules, with the bins placed over the distances that occur (as the stages do),
    every bin but the outer ones receives pairs, and covalent bonds (< 1.6 Å) span several bins; over
    [0, cutoff] (today's paper default) two thirds of the bins would stay empty."""
    from pipeline.data.featurise import FeaturiseSettings, featurise
    from pipeline.data.graphs import load_graphs
    from pipeline.stages.context import dist_range

    featurise(FeaturiseSettings(source="qm9", limit=400, seed=0), tmp_path)
    graphs = load_graphs(tmp_path)
    lo, hi = dist_range(graphs)
    assert 0.8 <= lo <= 1.0 and 6.0 <= hi <= 12.0
    bins = distance_bins(graphs.dist, lo, hi, 30)
    counts = torch.bincount(bins, minlength=30)
    assert torch.all(counts[1:-1] > 0), counts.tolist()
    assert len(torch.unique(bins[graphs.dist < 1.6])) >= 3
    assert (torch.bincount(distance_bins(graphs.dist, 0.0, 30.0, 30), minlength=30) == 0).sum() >= 18


def _model(**kw):
    from pipeline.config.network import ModelConfig
    from pipeline.model.asgn import ASGNModel

    torch.manual_seed(0)
    return ASGNModel(
        ModelConfig(hidden=8, n_interactions=2, rbf_count=20, n_clusters=3, targets=("homo",), **kw)
    )


def _batch():
    """Two small molecules (CH2-like and a 5-atom one) with random geometry, as a GraphBatch."""
    from pipeline.data.graphs import GraphBatch

    g = torch.Generator().manual_seed(0)
    atom_ptr = torch.tensor([0, 3, 8])
    z = torch.tensor([6, 1, 1, 8, 6, 1, 1, 1])
    pos = torch.randn(8, 3, generator=g) * 1.5
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    src, dst = zip(
        *[
            (i, j)
            for m in range(2)
            for i in range(atom_ptr[m], atom_ptr[m + 1])
            for j in range(atom_ptr[m], atom_ptr[m + 1])
            if i != j
        ],
        strict=True,
    )
    edge_index = torch.tensor([src, dst])
    dist = (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)
    return GraphBatch(
        z=z, pos=pos, batch=batch, edge_index=edge_index, dist=dist, atom_ptr=atom_ptr, index=torch.arange(2)
    )


def test_a_masked_atom_type_cannot_be_read_from_the_input():
    """The reconstruction pass hides atom i's type: its atom-type logits do not change when its true
    atomic number changes (unmasked, they would: the head reads the answer from the embedding)."""
    model, batch = _model().eval(), _batch()
    mask = torch.tensor([0, 4])
    other = dataclasses.replace(batch, z=batch.z.index_fill(0, mask, 9))  # C -> F at both masked atoms
    logits = model.atom_type_logits(model(batch, mask=mask).node[mask])
    torch.testing.assert_close(model.atom_type_logits(model(other, mask=mask).node[mask]), logits)
    unmasked = model.atom_type_logits(model(other).node[mask])
    assert not torch.allclose(unmasked, model.atom_type_logits(model(batch).node[mask]))


def test_zero_weight_switches_a_term_off_and_passes_are_counted():
    model, batch = _model(), _batch()
    calls = []
    forward = model.forward
    model.forward = lambda b, mask=None: calls.append(mask is not None) or forward(b, mask=mask)
    target, ids = torch.tensor([[1.0], [float("nan")]]), torch.tensor([0, 2])
    _, terms = teacher_loss(model, batch, target, ids, LossWeights(), torch.ones(1), shared_pass=False)
    assert set(terms) == {"property", "atom_type", "distance", "clustering", "total"}
    assert sorted(calls) == [False, True]  # a masked pass for L_r, a clean one for L_p and L_c
    calls.clear()
    _, terms = teacher_loss(model, batch, target, ids, LossWeights(), torch.ones(1), shared_pass=True)
    assert calls == [True]  # one masked pass read by every term
    calls.clear()
    supervised = LossWeights(reconstruction=0.0, clustering=0.0)
    _, terms = teacher_loss(model, batch, target, ids, supervised, torch.ones(1), shared_pass=True)
    assert set(terms) == {"property", "total"} and calls == [False]  # ASGN-S: supervised only
    total, terms = teacher_loss(model, batch, None, None, LossWeights(), torch.ones(1), shared_pass=False)
    assert set(terms) == {"atom_type", "distance", "total"}
    total.backward()
    assert (
        model.representation.embedding.weight.grad[model.config.mask_token].abs().sum() > 0
    )  # the mask token learns


def test_the_clean_pass_property_term_is_that_of_an_unmasked_forward():
    model, batch = _model(), _batch()
    target = torch.tensor([[-6.0], [-7.0]])
    _, terms = teacher_loss(
        model, batch, target, None, LossWeights(clustering=0.0), torch.ones(1), shared_pass=False
    )
    expected = property_loss(model(batch).pred.detach(), target, torch.ones(1))
    assert float(terms["property"]) == pytest.approx(float(expected))


def test_grouped_property_loss_is_the_weighted_sum_over_the_batch_rows():
    """The teacher's L_p divides the weighted squared errors by the batch's rows (the weights carry
    each group's normalisation); a missing label adds nothing, gradient included."""
    pred = torch.tensor([[1.0, 1.0], [2.0, 5.0], [3.0, 1.0]])
    target = torch.tensor([[0.0, float("nan")], [0.0, 0.0], [0.0, 0.0]])
    weight = torch.tensor([[2.0, 2.0], [0.5, 1.0], [0.5, 1.0]])
    scale = torch.tensor([1.0, 2.0])
    expected = (2 * 1 + 0.5 * 4 + 0.5 * 9 + 1.0 * (5 / 2) ** 2 + 1.0 * (1 / 2) ** 2) / 3
    assert float(grouped_property_loss(pred, target, scale, weight)) == pytest.approx(expected)
    p = pred.clone().requires_grad_()
    grouped_property_loss(p, target, scale, weight).backward()
    assert p.grad[0, 1] == 0 and (p.grad[1:] != 0).all()
