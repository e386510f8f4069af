"""The output heads that read a representation's node features h [a, H].

:class:`PropertyHead` predicts the targets in real units and owns their scaling (as schnetpack's
atomwise output owns its mean, std and atomref): per-atom outputs :math:`\\mathbf{o}_i =
\\mathrm{MLP}(\\mathbf{h}_i) \\in \\mathbb{R}^T`, :math:`\\hat y_t = \\mathrm{readout}_t\big(o_{it}\\,
s_t + \\mu_t + \\mathrm{atomref}[z_i, t]\big)` with sum or mean over the molecule's atoms; the scale
:math:`s`, shift :math:`\\mu` and atomref are buffers set by :func:`pipeline.learn.scaling.fit_scaler`.
:func:`mlp` builds the other heads ASGN trains (atom types, distance bins, clusters).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.model.schnet import ShiftedSoftplus


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers of ``sizes`` with shifted softplus (and dropout) between them."""
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if k > 0:
            layers.append(ShiftedSoftplus())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def reset_mlp(mlp: nn.Sequential) -> None:
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            layer.bias.data.zero_()


def sum_by(values: Tensor, index: Tensor, size: int) -> Tensor:
    """[n, C] rows summed into ``size`` groups by ``index`` [n] -> [size, C] (float32 or wider)."""
    dtype = torch.promote_types(values.dtype, torch.float32)
    out = torch.zeros(size, values.shape[1], dtype=dtype, device=values.device)
    return out.index_add_(0, index, values.to(dtype))


class PropertyHead(nn.Module):
    """Per-atom MLP -> per-target readout (sum or mean) in real units, with the targets' scaling.

    Args:
        hidden (int): H of the node features it reads.
        targets (tuple[str, ...]): its outputs, in column order.
        readout (dict[str, str]): target -> ``sum`` or ``mean``.
        max_z (int): largest atomic number of the per-element references.
        dropout (float): dropout between its layers (MC-dropout samples it).
    """

    def __init__(
        self, hidden: int, targets: tuple[str, ...], readout: dict[str, str], max_z: int, dropout: float
    ) -> None:
        super().__init__()
        n_targets = len(targets)
        self.mlp = mlp([hidden, hidden // 2, n_targets], dropout)
        # target scaling (real units), set by pipeline.learn.scaling.fit_scaler, saved in the state dict
        self.register_buffer("scale", torch.ones(n_targets))
        self.register_buffer("shift", torch.zeros(n_targets))
        self.register_buffer("atomref", torch.zeros(max_z + 1, n_targets))
        self.register_buffer(
            "mean_readout", torch.tensor([readout[t] == "mean" for t in targets]), persistent=False
        )

    def reset_parameters(self) -> None:
        """Re-initialise the MLP (the scaling buffers are kept)."""
        reset_mlp(self.mlp)

    @property
    def last(self) -> nn.Linear:
        """The MLP's last linear layer (a row per target)."""
        return self.mlp[-1]

    def forward(self, h: Tensor, z: Tensor, batch: Tensor, n_graphs: int, n_atoms: Tensor) -> Tensor:
        """[a, H] node features of atoms with atomic numbers ``z`` [a] in molecules ``batch`` [a]
        (``n_atoms`` [B, 1] each) -> [B, T] predictions in real units (float32)."""
        with torch.autocast(device_type=h.device.type, enabled=False):
            per_atom = self.mlp(h.float()) * self.scale + self.shift + self.atomref[z]
            total = sum_by(per_atom, batch, n_graphs)  # [B, T]
            return torch.where(self.mean_readout, total / n_atoms, total)

    @torch.no_grad()
    def last_layer_gradients(self, h: Tensor, batch: Tensor, n_graphs: int, n_atoms: Tensor) -> Tensor:
        """[B, T * (F + 1)] the gradient of each target's prediction with respect to the last linear
        layer (its F weights and bias of that target's row), per molecule: ``scale_t * readout_t(a_i)``
        and ``scale_t * readout_t(1)``, with a_i the atom's F inputs to that layer."""
        h = h.float()
        a = self.mlp[:-1](h) if len(self.mlp) > 1 else h  # [a, F]
        a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)  # the bias's input
        total = sum_by(a, batch, n_graphs)  # [B, F + 1]
        per_target = [
            (total / n_atoms if mean else total) * scale
            for mean, scale in zip(self.mean_readout.tolist(), self.scale.tolist(), strict=True)
        ]
        return torch.cat(per_target, dim=1)
