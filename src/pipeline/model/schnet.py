"""The SchNet representation: atoms and distances in, node features h [a, H] out.

Schütt et al., "SchNet: A Continuous-filter Convolutional Neural Network for Modeling Quantum
Interactions", NeurIPS 2017, as in PyG's :class:`torch_geometric.nn.models.SchNet`, computed with
less work but the same result:

* the Gaussian RBF expansion of the distances is computed once per batch, for all layers;
* every filter W^l(d_ij) is computed once per *unordered* pair {i, j}: the stored graph holds both
  (i, j) and (j, i) with the same distance, so only the pairs with i < j are kept, and each sends its
  two messages x_j * W_ij -> i and x_i * W_ij -> j in one scatter;
* the first filter layer of all interaction blocks is one GEMM [p, K] @ [K, L * F] (on the CPU a
  banded one, :mod:`pipeline.model.rbf`: each distance's expansion is zero beyond ~14 centres from
  it, so those exact zeros are neither computed nor multiplied), the second one batched GEMM, and
  the cosine cutoff is applied once to all layers' filters.

Each of these is tested against a plain ordered-edge SchNet and against PyG's with the same weights.
A representation is what the heads (:mod:`pipeline.model.heads`) read: another backbone
(:data:`pipeline.config.registry.BACKBONES`, e.g. :mod:`pipeline.model.visnet`) takes its place by
giving the same :meth:`SchNet.from_config` and :meth:`SchNet.forward` (scalar node features per atom).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.config.network import ModelConfig
from pipeline.model.rbf import GaussianRBF, banded_rbf_linear


class ShiftedSoftplus(nn.Module):
    r""":math:`\mathrm{ssp}(x) = \ln(1 + e^x) - \ln 2` (SchNet's activation, 0 at 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = math.log(2.0)

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x).sub_(self.shift)  # in place: softplus's backward needs only its input


def cosine_cutoff(dist: Tensor, cutoff: float) -> Tensor:
    r""":math:`C(d) = \frac12 (\cos(\pi d / r_c) + 1)` for :math:`d < r_c`, else 0; [p] -> [p] float32."""
    with torch.autocast(device_type=dist.device.type, enabled=False):
        dist = dist.float()
        return 0.5 * (torch.cos(dist * (math.pi / cutoff)) + 1.0) * (dist < cutoff)


class FilterNetwork(nn.Module):
    r"""The continuous filters of all interaction blocks, computed together once per unordered pair.

    .. math::
        W^l(d) = \left(\mathrm{ssp}\left(\mathbf{e}(d) A^l + a^l\right) B^l + b^l\right) C(d),
        \quad l = 1, \dots, L

    with :math:`\mathbf{e}` the :class:`GaussianRBF` expansion and :math:`C` the cosine cutoff. The
    first layers :math:`A^l` of all blocks are one ``Linear(K, L * F)``, the second layers
    :math:`B^l` one batched GEMM. Each block's parameters are initialised as PyG's
    ``InteractionBlock.mlp`` (Xavier-uniform weights, zero biases).

    On the CPU the first layer is banded (:func:`pipeline.model.rbf.banded_rbf_linear`: the same
    sums without the expansion's exact zeros, for distances in ascending order); on CUDA it is the
    dense GEMM.

    Args:
        rbf (GaussianRBF): the distance expansion (K centres).
        num_filters (int): F, filter width.
        num_layers (int): L, number of interaction blocks.
        cutoff (float): :math:`r_c` (Å) of the cosine cutoff.
        band (int, optional): centres per block of the banded first layer; ``None`` for dense.
            (default: :obj:`16`)
    """

    def __init__(
        self, rbf: GaussianRBF, num_filters: int, num_layers: int, cutoff: float, band: int | None = 16
    ) -> None:
        super().__init__()
        self.rbf, self.num_filters, self.num_layers, self.cutoff, self.band = (
            rbf,
            num_filters,
            num_layers,
            cutoff,
            band,
        )
        self.lin1 = nn.Linear(rbf.count, num_layers * num_filters)
        self.act = ShiftedSoftplus()
        self.weight2 = nn.Parameter(torch.empty(num_layers, num_filters, num_filters))  # [L, F_in, F_out]
        self.bias2 = nn.Parameter(torch.empty(num_layers, 1, num_filters))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for block in self.lin1.weight.data.view(self.num_layers, self.num_filters, -1):
            nn.init.xavier_uniform_(block)
        self.lin1.bias.data.zero_()
        for block in self.weight2.data:
            nn.init.xavier_uniform_(block)
        self.bias2.data.zero_()

    def banded(self, dist: Tensor) -> bool:
        """Whether :meth:`forward` takes the banded path for these distances (then they must be sorted)."""
        return self.band is not None and dist.device.type == "cpu"

    def forward(self, dist: Tensor) -> Tensor:
        """[p] pair distances (Å; ascending if :meth:`banded`) -> [L, p, F] filters."""
        p = dist.shape[0]
        if self.banded(dist):
            hidden = self.act(banded_rbf_linear(dist, self.rbf, self.lin1.weight, self.lin1.bias, self.band))
        else:
            hidden = self.act(self.lin1(self.rbf(dist).to(self.lin1.weight.dtype)))
        hidden = hidden.view(p, self.num_layers, self.num_filters).transpose(0, 1)  # [L, p, F]
        filters = torch.baddbmm(self.bias2, hidden, self.weight2)  # [L, p, F]
        return filters * cosine_cutoff(dist, self.cutoff).to(filters.dtype).view(1, p, 1)


def pair_messages(x: Tensor, filters: Tensor, sender: Tensor, receiver: Tensor) -> Tensor:
    r"""Continuous-filter convolution over unordered pairs, both directions in one scatter.

    .. math::
        \mathbf{m}_i = \sum_{j \in \mathcal{N}(i)} \mathbf{x}_j \odot W(d_{ij})

    Args:
        x: [a, F] node features.
        filters: [p, F] filter of each unordered pair {i, j}.
        sender: [2p] ``cat([j, i])``, the atom whose features each message carries.
        receiver: [2p] ``cat([i, j])``, the atom each message goes to.

    Returns:
        [a, F] summed messages (accumulated in at least float32).
    """
    p, n_filters = filters.shape
    messages = x.index_select(0, sender).view(2, p, n_filters) * filters  # one filter, two messages
    out_dtype = torch.promote_types(messages.dtype, torch.float32)
    out = torch.zeros(x.shape[0], n_filters, dtype=out_dtype, device=x.device)
    return out.index_add_(0, receiver, messages.view(2 * p, n_filters).to(out_dtype))


class InteractionBlock(nn.Module):
    r"""SchNet interaction block given precomputed filters (PyG's ``InteractionBlock`` minus its filter
    network, which lives in :class:`FilterNetwork`).

    .. math::
        \mathbf{v}_i = \mathrm{lin}\left(\mathrm{ssp}\left(\mathrm{lin}_2\left(\sum_j
        \mathrm{lin}_1(\mathbf{h})_j \odot W(d_{ij})\right)\right)\right)

    Args:
        hidden_channels (int): H.
        num_filters (int): F.
    """

    def __init__(self, hidden_channels: int, num_filters: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(hidden_channels, num_filters, bias=False)
        self.lin2 = nn.Linear(num_filters, hidden_channels)
        self.act = ShiftedSoftplus()
        self.lin = nn.Linear(hidden_channels, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.lin1.weight)
        for lin in (self.lin2, self.lin):
            nn.init.xavier_uniform_(lin.weight)
            lin.bias.data.zero_()

    def forward(self, h: Tensor, filters: Tensor, sender: Tensor, receiver: Tensor) -> Tensor:
        """[a, H] embeddings, [p, F] filters, [2p] sender/receiver -> [a, H] update v."""
        m = pair_messages(self.lin1(h), filters, sender, receiver)
        return self.lin(self.act(self.lin2(m.to(self.lin2.weight.dtype))))


class SchNet(nn.Module):
    r"""Node features of a molecule's atoms: :math:`\mathbf{h}^0_i = \mathrm{emb}(z_i)`, then for each
    of the L interaction blocks :math:`\mathbf{h}^{l+1} = \mathbf{h}^l + \mathbf{v}^l` with

    .. math::
        \mathbf{v}^l_i = \mathrm{lin}^l\,\mathrm{ssp}\,\mathrm{lin}^l_2 \sum_{j \ne i}
        \mathrm{lin}^l_1(\mathbf{h}^l)_j \odot W^l(d_{ij}),

    over every pair of atoms in the molecule's stored graph (the full graph up to the featurisation
    cutoff), :math:`W^l` as in :class:`FilterNetwork`. The atom embedding has a row per atomic number
    0..``max_z`` (0 unused) and one for the mask token (``mask_token``), which the reconstruction loss
    puts in place of an atom's type.

    Args:
        hidden (int): H, the width of node features and filters.
        n_interactions (int): L.
        rbf (GaussianRBF): the distance expansion.
        cutoff (float): Å; the filters' cosine cutoff.
        mask_token (int): the embedding's last row.
    """

    def __init__(self, hidden: int, n_interactions: int, rbf: GaussianRBF, cutoff: float, mask_token: int):
        super().__init__()
        self.hidden = hidden
        self.embedding = nn.Embedding(mask_token + 1, hidden, padding_idx=0)
        self.filters = FilterNetwork(rbf, hidden, n_interactions, cutoff)
        self.interactions = nn.ModuleList(InteractionBlock(hidden, hidden) for _ in range(n_interactions))

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> SchNet:
        """The representation of an architecture (RBF centres over [rbf_start, rbf_stop])."""
        rbf = GaussianRBF(cfg.rbf_start, cfg.rbf_stop, cfg.rbf_count)
        return cls(cfg.hidden, cfg.n_interactions, rbf, cfg.cutoff, cfg.mask_token)

    def reset_parameters(self) -> None:
        self.embedding.reset_parameters()
        self.filters.reset_parameters()
        for block in self.interactions:
            block.reset_parameters()

    def forward(self, z: Tensor, edge_index: Tensor, dist: Tensor, pos: Tensor | None = None) -> Tensor:
        """Node features h.

        Args:
            z: [a] int64 atomic numbers (the mask token for a masked atom).
            edge_index: [2, e] directed edges, each unordered pair in both directions.
            dist: [e] edge lengths (Å), equal for (i, j) and (j, i).
            pos: not read (SchNet sees the geometry through the distances only).

        Returns:
            [a, H] node features.
        """
        keep = edge_index[0] < edge_index[1]
        i, j = edge_index[:, keep]
        if 2 * i.numel() != edge_index.shape[1]:
            raise ValueError(
                f"the graph must hold every pair in both directions and no self-loops: {edge_index.shape[1]} "
                f"edges but {i.numel()} with src < dst"
            )
        d = dist[keep]
        if self.filters.banded(d):  # pairs in any order give the same sums; sorted, they share RBF bands
            d, order = d.sort()
            i, j = i[order], j[order]
        filters = self.filters(d)  # [L, p, F]
        sender, receiver = torch.cat([j, i]), torch.cat([i, j])
        h = self.embedding(z)
        for block, w in zip(self.interactions, filters, strict=True):
            h = h + block(h, w, sender, receiver)
        return h
