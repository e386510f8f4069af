"""The teacher's loss terms (ASGN, Hao et al. 2020, Sec. 3): L_t = w_p·L_p + w_r·L_r + w_c·L_c.

* L_p, property: MSE on standardised targets (target / scale), missing labels (NaN) masked out.
  Pseudo-labels weigh ``w_pseudo`` times a true label (1: the paper's equal weighting).
* L_r, reconstruction: for alpha·|G| sampled atom pairs (i, j) per molecule, atom i's type is hidden
  (the mask token in place of its atomic number, as in the authors' ``pre_training/node_ptr.py``);
  cross-entropy of i's type from its node embedding, and of the pair's distance bin (K_e equal bins
  over the distances that occur, [dist_min, dist_max]) from the two node embeddings. Unmasked, the
  head reads the answer from the atom's own type embedding and the term teaches nothing.
* L_c, clustering: cross-entropy of the graph-level cluster head against hard cluster ids
  (computed by :func:`pipeline.learn.clustering.sinkhorn` over the whole pool).

Every term goes through :func:`teacher_loss`; a zero weight skips the term's computation entirely.

The Mean Teacher baseline (:func:`pipeline.learn.train.train_mean_teacher`) trains on L_p plus
:func:`consistency_loss` instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.config.training import LossWeights


def property_loss(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean squared error of standardised targets over the labels present (the student's L_p; the
    teacher's weighs groups of labels: :func:`grouped_property_loss`).

    Args:
        pred: [B, T] predictions in real units.
        target: [B, T] labels in real units; NaN where a molecule has no label for a target.
        scale: [T] per-target standard deviation (of the labelled set).
    """
    present = ~torch.isnan(target)
    if not present.any():
        return pred.sum() * 0.0  # keeps the graph connected, contributes nothing
    err = ((pred - torch.nan_to_num(target)) / scale).square() * present
    return err.sum() / present.sum()


def grouped_property_loss(
    pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """The teacher's L_p: a weighted sum of group means, sum_g w_g · mean over group g's labels, the
    groups being the true labels, the pseudo-labels and the helping properties.

    ``weight`` [B, T] of each entry is its group's w_g times the epoch's rows per label of its group
    (:meth:`pipeline.learn.train.TeacherData.property_groups`), so the batch's weighted sum of
    squared errors divided by its rows estimates that sum without bias. No group's pull depends on
    how many labels the others have: 1,000 true labels keep their weight beside 19,000
    pseudo-labels, and ``losses.pseudo: 0`` only removes the pseudo-labels.

    Args:
        pred: [B, T] predictions in real units.
        target: [B, T] labels in real units; NaN where a molecule has none for an output.
        scale: [T] per-output standard deviation.
        weight: [B, T] as above.
    """
    present = ~torch.isnan(target)
    err = ((pred - torch.nan_to_num(target)) / scale).square() * present * weight
    return err.sum() / len(pred)


def consistency_loss(pred: torch.Tensor, ema_pred: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean Teacher's consistency term (Tarvainen & Valpola 2017): the mean squared difference of the
    student network's and the EMA network's predictions on standardised targets.

    Args:
        pred: [B, T] predictions of the trained network, in real units.
        ema_pred: [B, T] predictions, in real units, of the network whose weights are the exponential
            moving average of the trained one's (computed without gradient: only ``pred`` learns).
        scale: [T] per-target standard deviation that standardises the difference.
    """
    return (((pred - ema_pred) / scale) ** 2).mean()


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


def distance_bins(dist: torch.Tensor, start: float, stop: float, n_bins: int) -> torch.Tensor:
    """Index of the equal-width bin over [start, stop] holding each distance; distances below ``start``
    fall in bin 0, at or above ``stop`` in the last bin."""
    width = (stop - start) / n_bins
    return torch.clamp(((dist - start) / width).floor().long(), min=0, max=n_bins - 1)


def teacher_loss(
    model,
    batch,
    target: torch.Tensor | None,
    cluster_ids: torch.Tensor | None,
    weights: LossWeights,
    scale: torch.Tensor,
    *,
    shared_pass: bool,
    target_weight: torch.Tensor | None = None,
    alpha: float = 0.4,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_t for one batch: runs the model's forward pass(es) and returns the weighted total and each
    term's detached value (for logging; no host sync here).

    Which pass each term reads (``shared_pass``):

    * ``False``: two passes. L_p and L_c read a clean pass, with every atom's type visible, as the
      student, the embeddings and the predictions see molecules; L_r reads a second pass in which
      the sampled atoms i are masked. Cost: two forward/backward passes per batch when L_r and (L_p
      or L_c) are on: a teacher epoch took 1.4x as long on benchmark-cpu.
    * ``True`` (:class:`pipeline.learn.train.TrainConfig`'s default): one pass with the atoms i masked,
      read by all three terms, as the authors' code does. Cost: one pass; L_p then learns the
      properties of molecules with ~1/3 of their atom types hidden (alpha = 0.4), a task the
      student never meets, yet on benchmark-cpu (1,000 labels, 3 seeds) it gave the lower
      validation MAE on HOMO and U0 (perhaps the hidden types regularise L_p; untested).

    Args:
        model: an :class:`pipeline.model.asgn.ASGNModel` (``forward(batch, mask)`` and the heads).
        batch: a :class:`pipeline.data.graphs.GraphBatch`.
        target: [B, T] labels or pseudo-labels (NaN = none), or None when no molecule has one.
        cluster_ids: [B] hard cluster ids of the batch's molecules, or None before the first assignment.
        weights: w_p, w_r, w_c (``weights.pseudo`` and ``helpers`` act through ``target_weight``).
        scale: [T] per-target std that standardises L_p.
        target_weight: [B, T] weight of each entry of ``target`` in L_p
            (:func:`grouped_property_loss`); None: the plain mean over the labels present.
        alpha: sampled pairs per atom of L_r.
        shared_pass: one masked pass for every term instead of a clean one for L_p and L_c.
        generator: drives the pair sampling.
    """
    use_p = bool(weights.property) and target is not None
    use_c = bool(weights.clustering) and cluster_ids is not None
    use_r = bool(weights.reconstruction)
    clean = masked = None
    if use_r:
        i, j = sample_pairs(batch.atom_ptr, alpha, generator)
        masked = model(batch, mask=i)
    if use_p or use_c or not use_r:
        clean = masked if shared_pass and masked is not None else model(batch)
    total = (clean if clean is not None else masked).pred.sum() * 0.0
    terms: dict[str, torch.Tensor] = {}
    if use_p:
        lp = (
            property_loss(clean.pred, target, scale)
            if target_weight is None
            else grouped_property_loss(clean.pred, target, scale, target_weight)
        )
        total = total + weights.property * lp
        terms["property"] = lp.detach()
    if use_r:
        cfg = model.config
        l_atom = F.cross_entropy(model.atom_type_logits(masked.node[i]), batch.z[i])
        d = (batch.pos[i] - batch.pos[j]).norm(dim=-1)
        bins = distance_bins(d, cfg.dist_min, cfg.dist_max, cfg.n_dist_bins)
        l_dist = F.cross_entropy(model.dist_bin_logits(masked.node[i], masked.node[j]), bins)
        total = total + weights.reconstruction * (l_atom + l_dist)
        terms["atom_type"], terms["distance"] = l_atom.detach(), l_dist.detach()
    if use_c:
        lc = F.cross_entropy(model.cluster_logits(clean.graph), cluster_ids)
        total = total + weights.clustering * lc
        terms["clustering"] = lc.detach()
    terms["total"] = total.detach()
    return total, terms
