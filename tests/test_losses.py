"""Teacher loss terms: masking, pair sampling, distance bins, switching terms off."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pipeline.losses import LossWeights, distance_bins, property_loss, sample_pairs, teacher_loss


def test_property_loss_ignores_missing_labels():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[2.0, float("nan")], [3.0, 0.0]])
    scale = torch.tensor([1.0, 2.0])
    # present: (0,0) err 1/1, (1,0) err 0, (1,1) err 4/2 -> (1 + 0 + 4) / 3
    assert property_loss(pred, target, scale).item() == pytest.approx(5 / 3)
    assert property_loss(pred, torch.full_like(target, float("nan")), scale).item() == 0.0


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


def test_distance_bins():
    d = torch.tensor([0.0, 0.99, 1.0, 29.99, 30.0, 45.0])
    assert distance_bins(d, cutoff=30.0, n_bins=30).tolist() == [0, 0, 1, 29, 29, 29]


class _Heads(torch.nn.Module):
    def __init__(self, hidden=4, types=10, bins=30, clusters=5):
        super().__init__()
        self.atom = torch.nn.Linear(hidden, types)
        self.dist = torch.nn.Linear(hidden, bins)
        self.cluster = torch.nn.Linear(hidden, clusters)

    def atom_type_logits(self, node):
        return self.atom(node)

    def dist_bin_logits(self, hi, hj):
        return self.dist(hi * hj)

    def cluster_logits(self, graph):
        return self.cluster(graph)


def _batch_and_out():
    atom_ptr = torch.tensor([0, 3, 8])
    batch = SimpleNamespace(
        atom_ptr=atom_ptr, z=torch.tensor([6, 1, 1, 8, 6, 1, 1, 1]), pos=torch.randn(8, 3)
    )
    out = SimpleNamespace(
        node=torch.randn(8, 4, requires_grad=True), graph=torch.randn(2, 4), pred=torch.zeros(2, 1)
    )
    return batch, out


def test_zero_weight_switches_a_term_off():
    model, (batch, out) = _Heads(), _batch_and_out()
    target, ids = torch.tensor([[1.0], [float("nan")]]), torch.tensor([0, 3])
    _, terms = teacher_loss(model, batch, out, target, ids, LossWeights(), torch.ones(1))
    assert set(terms) == {"property", "atom_type", "distance", "clustering", "total"}
    _, terms = teacher_loss(
        model, batch, out, target, ids, LossWeights(reconstruction=0.0, clustering=0.0), torch.ones(1)
    )
    assert set(terms) == {"property", "total"}  # ASGN-S: supervised only
    total, terms = teacher_loss(model, batch, out, None, None, LossWeights(), torch.ones(1))
    assert set(terms) == {"atom_type", "distance", "total"}
    total.backward()
    assert out.node.grad is not None and out.node.grad.abs().sum() > 0
