r"""Target scaling: the buffers through which :class:`~pipeline.model.asgn.ASGNModel` predicts in real units.

The model predicts :math:`\hat y_t = \mathrm{readout}_t(o_{it} s_t + \mu_t + \mathrm{atomref}[z_i, t])`
(sum or mean over the molecule's atoms). :func:`fit_scaler` fits its buffers, the scale s, shift mu
and atomref, to the labelled molecules (:func:`fit_target_scaler` holds the statistics) and returns
the std that standardises the property loss L_p.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from pipeline.data.graphs import GraphSet
    from pipeline.model.asgn import ASGNModel

log = logging.getLogger(__name__)


def targets_tensor(y: np.ndarray | Tensor, n_targets: int) -> Tensor:
    """Labels as a float32 [n, ``n_targets``] tensor (NaN = missing); any other shape is an error."""
    y = torch.as_tensor(np.asarray(y, dtype=np.float32))
    if y.ndim != 2 or y.shape[1] != n_targets:
        raise ValueError(f"labels must be [n, {n_targets}], got {tuple(y.shape)}")
    return y


def fit_scaler(
    model: ASGNModel,
    graphs: GraphSet,
    index: np.ndarray,
    y: np.ndarray | Tensor,
    atomref: bool | Collection[str] = True,
) -> Tensor:
    """Fit the model's target scaling on labelled molecules; return the std that standardises L_p.

    Sets the property head's ``scale``, ``shift`` and ``atomref`` (:func:`fit_target_scaler`). The
    returned std is per target, at molecule level, of what the network has to learn: the labels minus
    the fitted baseline (shift and per-element references, read out like the predictions). Dividing
    by the raw std instead would make u0 (std ~ 10 eV across QM9, residual ~ 0.2 eV) weigh nothing.

    Args:
        model: the model whose scaling buffers are set.
        graphs: the graph set ``index`` points into.
        index: [L] positions of the labelled molecules.
        y: [L, T] their labels in real units for the model's targets, NaN where missing.
        atomref: fit per-element references for all sum-readout targets (True), none (False), or
            those named.

    Returns:
        [T] float32 std on the CPU (1 where it would be 0).
    """
    b = graphs.batch(index)
    unseen = sorted(set(torch.unique(graphs.z).tolist()) - set(torch.unique(b.z).tolist()))
    if unseen:
        log.warning(
            "atomic numbers %s occur in no labelled molecule: predictions for molecules containing them "
            "have no per-element reference and will be poor until one is labelled",
            unseen,
        )
    cfg, head = model.config, model.property_head
    y_t = targets_tensor(y, len(cfg.targets))
    names = set(cfg.targets) if atomref is True else set(atomref or ())
    use_atomref = [t in names and cfg.readout[t] == "sum" for t in cfg.targets]
    scale, shift, ref = fit_target_scaler(
        b.z, b.batch, y_t, head.mean_readout.cpu(), cfg.max_z, torch.tensor(use_atomref)
    )
    with torch.no_grad():
        head.scale.copy_(scale)
        head.shift.copy_(shift)
        head.atomref.copy_(ref)
        per_atom = (head.shift + head.atomref[b.z]).double().cpu()  # the prediction when o = 0
        base = torch.zeros(len(index), per_atom.shape[1], dtype=torch.float64).index_add_(
            0, b.batch.cpu(), per_atom
        )
        n_atoms = (b.atom_ptr[1:] - b.atom_ptr[:-1]).cpu().double().unsqueeze(1)
        base = torch.where(head.mean_readout.cpu(), base / n_atoms, base)
    resid = y_t.double() - base
    present = ~torch.isnan(resid)
    mean = torch.nansum(resid, 0) / present.sum(0).clamp(min=1)
    var = torch.nansum((resid - mean) ** 2, 0) / (present.sum(0) - 1).clamp(min=1)
    std = var.sqrt().float()
    return torch.where(std > 1e-12, std, torch.ones_like(std))


@torch.no_grad()
def fit_target_scaler(
    z: Tensor,
    batch: Tensor,
    y: Tensor,
    mean_readout: Tensor,
    max_z: int,
    use_atomref: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-target scale, shift and atomref from labelled molecules; NaN labels are ignored.

    For a sum-readout target the model predicts :math:`\\sum_i (o_i s + \\mu + \\mathrm{ref}[z_i])`,
    so the statistics are per atom: with atomref, ``ref`` is the least-squares fit of y on the
    molecule's element counts, and r = (y - counts @ ref) / n_atoms; without, r = y / n_atoms. For a
    mean-readout target r = y. Then shift = mean(r) and scale = std(r) (1 when fewer than two labels
    or zero spread), so the network's per-atom outputs are about unit normal.

    Args:
        z: [a] atomic numbers of the labelled molecules' atoms.
        batch: [a] molecule index of each atom, 0..B-1 (row of ``y``).
        y: [B, T] labels in real units, NaN where missing.
        mean_readout: [T] bool, True for mean-readout targets.
        max_z: largest atomic number (atomref has ``max_z + 1`` rows).
        use_atomref: [T] bool, fit a per-element reference for these (sum-readout) targets.

    Returns:
        scale [T], shift [T], atomref [max_z + 1, T], float32 on the CPU.
    """
    y = y.detach().to("cpu", torch.float64)
    z, batch = z.cpu(), batch.cpu()
    n_mol, n_targets = y.shape
    mean_readout = mean_readout.cpu().bool()
    use_atomref = torch.zeros(n_targets, dtype=torch.bool) if use_atomref is None else use_atomref.cpu()
    counts = torch.zeros(n_mol, max_z + 1, dtype=torch.float64)
    counts.index_put_((batch, z), torch.ones(len(z), dtype=torch.float64), accumulate=True)
    n_atoms = counts.sum(1)
    scale, shift = torch.ones(n_targets, dtype=torch.float64), torch.zeros(n_targets, dtype=torch.float64)
    ref = torch.zeros(max_z + 1, n_targets, dtype=torch.float64)
    for t in range(n_targets):
        has = ~torch.isnan(y[:, t])
        y_t = y[has, t]
        if y_t.numel() == 0:
            continue
        if mean_readout[t]:
            r = y_t
        else:
            if use_atomref[t]:
                present = counts[has].sum(0) > 0  # elements seen in the labelled molecules
                a = counts[has][:, present]
                ref[present, t] = torch.linalg.lstsq(a, y_t.unsqueeze(1), driver="gelsd").solution[:, 0]
                y_t = y_t - a @ ref[present, t]
            r = y_t / n_atoms[has]
        shift[t] = r.mean()
        std = r.std() if r.numel() > 1 else torch.tensor(0.0)
        scale[t] = std if std > 1e-12 else 1.0
    return scale.float(), shift.float(), ref.float()
