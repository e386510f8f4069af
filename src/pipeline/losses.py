"""The teacher's loss terms (ASGN, Hao et al. 2020, Sec. 3): L_t = w_p·L_p + w_r·L_r + w_c·L_c.

* L_p, property: MSE on standardised targets (target / scale), missing labels (NaN) masked out.
* L_r, reconstruction: for alpha·|G| sampled atom pairs per molecule, cross-entropy of the atom type
  of the sampled atoms from their node embeddings, and of the distance bin (K_e equal bins over
  [0, cutoff]) of each pair from the two node embeddings.
* L_c, clustering: cross-entropy of the graph-level cluster head against hard cluster ids
  (computed by :func:`pipeline.clustering.sinkhorn` over the whole pool).

Every term goes through :func:`teacher_loss`; a zero weight skips the term's computation entirely.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def property_loss(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean squared error of standardised targets over the labels present.

    Args:
        pred: [B, T] predictions in real units.
        target: [B, T] labels in real units; NaN where a molecule has no label for a target.
        scale: [T] per-target standard deviation (of the labelled set).
    """
    present = ~torch.isnan(target)
    if not present.any():
        return pred.sum() * 0.0  # keeps the graph connected, contributes nothing
    err = (pred - torch.nan_to_num(target)) / scale
    return (err.square() * present).sum() / present.sum()


def sample_pairs(atom_ptr: torch.Tensor, alpha: float, generator: torch.Generator | None = None):
    """Sample max(1, round(alpha·n)) ordered pairs of distinct atoms in each molecule with n >= 2 atoms.

    Args:
        atom_ptr: [B + 1] offsets of each molecule's atoms in the batch.
        alpha: pairs per atom.
    Returns:
        (i, j): [P] batch-global atom indices, i != j, both in the same molecule.
    """
    n = atom_ptr[1:] - atom_ptr[:-1]
    k = torch.where(n >= 2, torch.clamp(torch.round(alpha * n.double()).long(), min=1), torch.zeros_like(n))
    mol = torch.repeat_interleave(torch.arange(len(n), device=n.device), k)
    n_mol = n[mol].double()
    u = torch.rand(len(mol), generator=generator, dtype=torch.float64, device="cpu").to(n.device)
    v = torch.rand(len(mol), generator=generator, dtype=torch.float64, device="cpu").to(n.device)
    i = torch.floor(u * n_mol).long()
    # j uniform over the other n - 1 atoms: shift i by 1..n-1 around the molecule
    j = (i + 1 + torch.floor(v * (n_mol - 1)).long()) % n[mol]
    start = atom_ptr[:-1][mol]
    return start + i, start + j


def distance_bins(dist: torch.Tensor, cutoff: float, n_bins: int) -> torch.Tensor:
    """Index of the equal-width bin over [0, cutoff] holding each distance (beyond the cutoff: last bin)."""
    return torch.clamp((dist / (cutoff / n_bins)).long(), max=n_bins - 1)


@dataclass
class LossWeights:
    """Weights of the teacher's terms; 0 switches a term off (ASGN-S = reconstruction and clustering off)."""

    property: float = 1.0  # w_p
    reconstruction: float = 1.0  # w_r
    clustering: float = 1.0  # w_c


def teacher_loss(
    model,
    batch,
    out,
    target: torch.Tensor | None,
    cluster_ids: torch.Tensor | None,
    weights: LossWeights,
    scale: torch.Tensor,
    alpha: float = 0.4,
    n_dist_bins: int = 30,
    cutoff: float = 30.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_t for one batch. Returns the weighted total and each term's detached value (for logging;
    no host sync here).

    Args:
        model: provides ``atom_type_logits(node)``, ``dist_bin_logits(h_i, h_j)``, ``cluster_logits(graph)``.
        batch: the :class:`pipeline.graphs.GraphBatch` that produced ``out``.
        out: model output with ``node`` [a, H], ``graph`` [B, H], ``pred`` [B, T].
        target: [B, T] labels or pseudo-labels (NaN = none), or None when no molecule has one.
        cluster_ids: [B] hard cluster ids of the batch's molecules, or None before the first assignment.
        weights: w_p, w_r, w_c.
        scale: [T] per-target std that standardises L_p.
    """
    total = out.pred.sum() * 0.0
    terms: dict[str, torch.Tensor] = {}
    if weights.property and target is not None:
        lp = property_loss(out.pred, target, scale)
        total = total + weights.property * lp
        terms["property"] = lp.detach()
    if weights.reconstruction:
        i, j = sample_pairs(batch.atom_ptr, alpha, generator)
        atoms = torch.cat([i, j])
        l_atom = F.cross_entropy(model.atom_type_logits(out.node[atoms]), batch.z[atoms])
        d = (batch.pos[i] - batch.pos[j]).norm(dim=-1)
        l_dist = F.cross_entropy(
            model.dist_bin_logits(out.node[i], out.node[j]), distance_bins(d, cutoff, n_dist_bins)
        )
        total = total + weights.reconstruction * (l_atom + l_dist)
        terms["atom_type"], terms["distance"] = l_atom.detach(), l_dist.detach()
    if weights.clustering and cluster_ids is not None:
        lc = F.cross_entropy(model.cluster_logits(out.graph), cluster_ids)
        total = total + weights.clustering * lc
        terms["clustering"] = lc.detach()
    terms["total"] = total.detach()
    return total, terms
