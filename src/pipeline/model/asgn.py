"""The ASGN network: a SchNet backbone over each molecule's full graph, plus the heads ASGN trains.

Backbone (Schütt et al., "SchNet: A Continuous-filter Convolutional Neural Network for Modeling Quantum
Interactions", NeurIPS 2017), as in PyG's :class:`torch_geometric.nn.models.SchNet`, computed with less
work but the same result:

* the Gaussian RBF expansion of the distances is computed once per batch, for all layers;
* every filter W^l(d_ij) is computed once per *unordered* pair {i, j}: the stored graph holds both
  (i, j) and (j, i) with the same distance, so only the pairs with i < j are kept, and each sends its
  two messages x_j * W_ij -> i and x_i * W_ij -> j in one scatter;
* the first filter layer of all interaction blocks is one GEMM [p, K] @ [K, L * F] (on the CPU a
  banded one, :mod:`pipeline.model.rbf`: each distance's expansion is zero beyond ~14 centres from
  it, so those exact zeros are neither computed nor multiplied), the second one batched GEMM, and
  the cosine cutoff is applied once to all layers' filters.

Each of these is tested against a plain ordered-edge SchNet and against PyG's with the same weights.

Heads (Hao et al., "ASGN: An Active Semi-supervised Graph Neural Network for Molecular Property
Prediction", KDD 2020): properties (per-atom outputs read out per target by sum or mean, in real units
through target-scaling buffers), atom types and distance bins (reconstruction loss L_r), and cluster
ids (clustering loss L_c) from the graph embedding z_G that k-center selection also uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.config.units import EXTENSIVE_TARGETS, TARGETS
from pipeline.data.graphs import GraphBatch
from pipeline.model.rbf import banded_rbf_linear, gaussian_expansion

#: Readouts a target can have: ``sum`` for extensive properties, ``mean`` for intensive ones.
READOUTS = ("sum", "mean")


@dataclass
class ModelConfig:
    """Architecture of :class:`ASGNModel`; stored in every checkpoint (:meth:`to_dict`)."""

    hidden: int = 96  # H: width of node embeddings and of the continuous filters
    n_interactions: int = 4  # L: interaction blocks
    # Gaussian RBF expansion of a distance d (Å): count centres mu_k = start + k * width, k = 0..count-1,
    # width = (stop - start) / count, e_k(d) = exp(-(d - mu_k)^2 / (2 width^2)). Paper: 0-30 Å every 0.1 Å.
    rbf_start: float = 0.0
    rbf_stop: float = 30.0
    rbf_count: int = 300
    cutoff: float = 30.0  # Å; cosine cutoff of the filters, and pairs at or beyond it send nothing
    max_z: int = 100  # largest atomic number the embedding (and atomref) accepts
    targets: tuple[str, ...] = TARGETS  # property head outputs, in this order (pred[:, t])
    # target -> "sum" (extensive: per-atom contributions add up) or "mean" (intensive); targets not
    # given default to "sum" if in pipeline.config.units.EXTENSIVE_TARGETS, else "mean"
    readout: dict[str, str] = field(default_factory=dict)
    n_clusters: int = 100  # M: classes of the cluster head (clustering loss L_c)
    n_dist_bins: int = 30  # K_e: classes of the distance-bin head (reconstruction loss L_r)
    # Å; the K_e equal-width distance bins span [dist_min, dist_max] (distances below / above fall in
    # the first / last bin). The stages set them from the distances in the dataset (QM9: ~0.9-11 Å),
    # so the bins resolve bond lengths; [0, cutoff] would leave most bins empty.
    dist_min: float = 0.0
    dist_max: float = 30.0
    n_atom_types: int = 100  # classes of the atom-type head; class c is atomic number c
    dropout: float = 0.0  # dropout probability inside the property head only (for MC-dropout)

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)
        if not self.targets:
            raise ValueError("targets must name at least one property")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets has duplicates: {self.targets}")
        unknown = set(self.readout) - set(self.targets)
        if unknown:
            raise ValueError(f"readout names targets that are not in targets: {sorted(unknown)}")
        self.readout = {
            t: self.readout.get(t, "sum" if t in EXTENSIVE_TARGETS else "mean") for t in self.targets
        }
        bad = {t: r for t, r in self.readout.items() if r not in READOUTS}
        if bad:
            raise ValueError(f"readout must be one of {READOUTS}, got {bad}")
        if self.hidden < 2 or self.n_interactions < 1 or self.rbf_count < 1:
            raise ValueError("hidden must be >= 2, n_interactions and rbf_count >= 1")
        if not self.rbf_stop > self.rbf_start or not self.cutoff > 0:
            raise ValueError("need rbf_stop > rbf_start and cutoff > 0")
        if not self.dist_max > self.dist_min >= 0:
            raise ValueError(f"need dist_max > dist_min >= 0, got {self.dist_min}, {self.dist_max}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def rbf_width(self) -> float:
        return (self.rbf_stop - self.rbf_start) / self.rbf_count

    @property
    def mask_token(self) -> int:
        """Index of the mask token in the atom embedding (one past the largest atomic number)."""
        return self.max_z + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (lists for tuples)."""
        out = asdict(self)
        out["targets"] = list(self.targets)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**values)


class ModelOutput(NamedTuple):
    """What :meth:`ASGNModel.forward` returns."""

    node: Tensor  # [a, H] node embeddings h after the last interaction block
    graph: Tensor  # [B, H] graph embedding z_G: the mean of the molecule's node embeddings
    pred: Tensor  # [B, T] predictions in real units (float32), one column per config target


class ShiftedSoftplus(nn.Module):
    r""":math:`\mathrm{ssp}(x) = \ln(1 + e^x) - \ln 2` (SchNet's activation, 0 at 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = math.log(2.0)

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x).sub_(self.shift)  # in place: softplus's backward needs only its input


class GaussianRBF(nn.Module):
    r"""Gaussian radial basis expansion of distances, in float32 even under autocast.

    .. math::
        e_k(d) = \exp\left(-\frac{(d - \mu_k)^2}{2 w^2}\right), \quad
        \mu_k = \mathrm{start} + k w, \quad w = \frac{\mathrm{stop} - \mathrm{start}}{\mathrm{count}},
        \quad k = 0, \dots, \mathrm{count} - 1

    Computed by :func:`pipeline.model.rbf.gaussian_expansion`: values below float32's smallest
    normal number are exactly 0.

    Args:
        start (float): first centre (Å).
        stop (float): end of the centre range (Å); the last centre is ``stop - w``.
        count (int): number of centres K.
    """

    def __init__(self, start: float, stop: float, count: int) -> None:
        super().__init__()
        self.start, self.width, self.count = start, (stop - start) / count, count
        self.register_buffer("centres", start + self.width * torch.arange(count, dtype=torch.float32))

    def forward(self, dist: Tensor) -> Tensor:
        """[p] distances (Å) -> [p, K] float32 expansion."""
        return gaussian_expansion(dist, self.centres, self.width)


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


def _mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers of ``sizes`` with shifted softplus (and dropout) between them."""
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if k > 0:
            layers.append(ShiftedSoftplus())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def _reset_mlp(mlp: nn.Sequential) -> None:
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            layer.bias.data.zero_()


class ASGNModel(nn.Module):
    r"""SchNet backbone with the property, atom-type, distance-bin and cluster heads of ASGN.

    Backbone: :math:`\mathbf{h}^0_i = \mathrm{emb}(z_i)`, then for each of the L interaction blocks
    :math:`\mathbf{h}^{l+1} = \mathbf{h}^l + \mathbf{v}^l` with

    .. math::
        \mathbf{v}^l_i = \mathrm{lin}^l\,\mathrm{ssp}\,\mathrm{lin}^l_2 \sum_{j \ne i}
        \mathrm{lin}^l_1(\mathbf{h}^l)_j \odot W^l(d_{ij}),

    over every pair of atoms in the molecule's stored graph (the full graph up to the featurisation
    cutoff), :math:`W^l` as in :class:`FilterNetwork`. Node embeddings :math:`\mathbf{h} = \mathbf{h}^L`.

    Heads:

    * properties: per-atom outputs :math:`\mathbf{o}_i = \mathrm{MLP}(\mathbf{h}_i) \in \mathbb{R}^T`,
      :math:`\hat y_t = \mathrm{readout}_t\big(o_{it}\, s_t + \mu_t + \mathrm{atomref}[z_i, t]\big)`
      with sum or mean over the molecule's atoms, so predictions are in real units; the scale
      :math:`s`, shift :math:`\mu` and atomref are buffers set by
      :func:`pipeline.learn.scaling.fit_scaler`;
    * graph embedding :math:`z_G = \mathrm{mean}_i\, \mathbf{h}_i` (before the property head): the
      embedding k-center selection uses, and the cluster head's input;
    * atom types: :math:`\mathrm{MLP}(\mathbf{h}_i)` -> ``n_atom_types`` logits (class = atomic number),
      read from a pass in which atom i's type was replaced by the learnt mask token
      (``z = config.mask_token``; :meth:`forward` with ``mask``), so the answer is not in its input;
    * distance bins: :math:`\mathrm{MLP}([\mathbf{h}_i \odot \mathbf{h}_j, \mathbf{h}_i + \mathbf{h}_j])`
      -> K_e logits, symmetric in i and j;
    * clusters: :math:`\mathrm{MLP}(z_G)` -> M logits.

    Args:
        config (ModelConfig): architecture (hidden, layers, RBF, cutoff, targets and readouts, heads).

    The batch's stored graph must hold each pair in both directions with equal distances (as
    ``pipeline featurise`` writes it); :meth:`forward` checks the counts. Works under
    ``torch.autocast`` (the RBF, cutoff, scatter accumulation and target scaling stay float32).
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ModelConfig()
        n_targets, hidden = len(cfg.targets), cfg.hidden
        # rows 0..max_z: atomic numbers (0 unused); row max_z + 1: the mask token of L_r
        self.embedding = nn.Embedding(cfg.mask_token + 1, hidden, padding_idx=0)
        self.filters = FilterNetwork(
            GaussianRBF(cfg.rbf_start, cfg.rbf_stop, cfg.rbf_count), hidden, cfg.n_interactions, cfg.cutoff
        )
        self.interactions = nn.ModuleList(InteractionBlock(hidden, hidden) for _ in range(cfg.n_interactions))
        self.property_head = _mlp([hidden, hidden // 2, n_targets], cfg.dropout)
        self.atom_type_head = _mlp([hidden, hidden, cfg.n_atom_types])
        self.dist_bin_head = _mlp([2 * hidden, hidden, cfg.n_dist_bins])
        self.cluster_head = _mlp([hidden, hidden, cfg.n_clusters])
        # target scaling (real units), set by pipeline.learn.scaling.fit_scaler and saved in the state dict
        self.register_buffer("scale", torch.ones(n_targets))
        self.register_buffer("shift", torch.zeros(n_targets))
        self.register_buffer("atomref", torch.zeros(cfg.max_z + 1, n_targets))
        self.register_buffer(
            "mean_readout", torch.tensor([cfg.readout[t] == "mean" for t in cfg.targets]), persistent=False
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter (the target scaling buffers are kept)."""
        self.embedding.reset_parameters()
        self.filters.reset_parameters()
        for block in self.interactions:
            block.reset_parameters()
        for head in (self.property_head, self.atom_type_head, self.dist_bin_head, self.cluster_head):
            _reset_mlp(head)

    def embed(self, z: Tensor, edge_index: Tensor, dist: Tensor) -> Tensor:
        """Node embeddings h.

        Args:
            z: [a] int64 atomic numbers (``config.mask_token`` for a masked atom).
            edge_index: [2, e] directed edges, each unordered pair in both directions.
            dist: [e] edge lengths (Å), equal for (i, j) and (j, i).

        Returns:
            [a, H] node embeddings.
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

    def forward(self, batch: GraphBatch, mask: Tensor | None = None) -> ModelOutput:
        """Embeddings and property predictions of a batch.

        Args:
            batch: a :class:`~pipeline.data.graphs.GraphBatch` (z [a], batch [a], edge_index [2, e],
                dist [e], atom_ptr [B + 1]); ``pos`` is not read: the geometry enters as ``dist``.
            mask: optional [m] indices of atoms whose type is hidden: they enter the network as the
                mask token (the reconstruction loss's pass). The readout's per-element references
                still use the true ``batch.z``.

        Returns:
            :class:`ModelOutput` with node [a, H], graph [B, H] and pred [B, T] in real units.
        """
        z = batch.z
        if mask is not None:
            z = z.index_fill(0, mask, self.config.mask_token)
        h = self.embed(z, batch.edge_index, batch.dist)
        graph, pred = self.readout(h, batch)
        return ModelOutput(node=h, graph=graph, pred=pred)

    def readout(self, h: Tensor, batch: GraphBatch) -> tuple[Tensor, Tensor]:
        """Graph embeddings z_G [B, H] and predictions [B, T] (real units) from node embeddings h [a, H].

        Split from :meth:`forward` so that the property head alone can be re-run (MC-dropout).
        """
        n_graphs = batch.atom_ptr.numel() - 1
        n_atoms = (batch.atom_ptr[1:] - batch.atom_ptr[:-1]).clamp(min=1).unsqueeze(-1)  # [B, 1]
        graph = _sum_by(h, batch.batch, n_graphs) / n_atoms
        with torch.autocast(device_type=h.device.type, enabled=False):
            per_atom = self.property_head(h.float()) * self.scale + self.shift + self.atomref[batch.z]
            total = _sum_by(per_atom, batch.batch, n_graphs)  # [B, T]
            pred = torch.where(self.mean_readout, total / n_atoms, total)
        return graph, pred

    @torch.no_grad()
    def last_layer_gradients(self, batch: GraphBatch) -> Tensor:
        """[B, T * (F + 1)] the gradient of each target's prediction with respect to the property
        head's last linear layer (its F weights and bias of that target's row), per molecule:
        ``scale_t * readout_t(a_i)`` and ``scale_t * readout_t(1)``, with a_i the atom's F inputs
        to that layer and readout_t the sum or mean over the molecule's atoms. These are the
        features of the last-layer gradient (``'ll'``) kernel of Holzmüller et al. (2023): two
        molecules are similar when a step on the last layer moves their predictions alike."""
        h = self.embed(batch.z, batch.edge_index, batch.dist).float()
        a = self.property_head[:-1](h) if len(self.property_head) > 1 else h  # [a, F]
        a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)  # the bias's input
        n_graphs = batch.atom_ptr.numel() - 1
        n_atoms = (batch.atom_ptr[1:] - batch.atom_ptr[:-1]).clamp(min=1).unsqueeze(-1)
        total = _sum_by(a, batch.batch, n_graphs)  # [B, F + 1]
        per_target = [
            (total / n_atoms if mean else total) * scale
            for mean, scale in zip(self.mean_readout.tolist(), self.scale.tolist(), strict=True)
        ]
        return torch.cat(per_target, dim=1)

    def atom_type_logits(self, node: Tensor) -> Tensor:
        """[n, H] node embeddings -> [n, n_atom_types] logits (class c = atomic number c)."""
        return self.atom_type_head(node)

    def dist_bin_logits(self, h_i: Tensor, h_j: Tensor) -> Tensor:
        """[n, H] embeddings of the two atoms of n pairs -> [n, K_e] logits, symmetric in i and j."""
        return self.dist_bin_head(torch.cat([h_i * h_j, h_i + h_j], dim=-1))

    def cluster_logits(self, graph: Tensor) -> Tensor:
        """[B, H] graph embeddings z_G -> [B, M] cluster logits."""
        return self.cluster_head(graph)

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"{self.__class__.__name__}(hidden={cfg.hidden}, n_interactions={cfg.n_interactions}, "
            f"rbf={cfg.rbf_count}x{cfg.rbf_width:g}A from {cfg.rbf_start:g}, cutoff={cfg.cutoff:g}, "
            f"targets={list(cfg.targets)}, readout={list(cfg.readout.values())}, "
            f"clusters={cfg.n_clusters}, dist_bins={cfg.n_dist_bins}x[{cfg.dist_min:g}, {cfg.dist_max:g}]A, "
            f"atom_types={cfg.n_atom_types}, "
            f"dropout={cfg.dropout:g})"
        )


def _sum_by(values: Tensor, index: Tensor, size: int) -> Tensor:
    """[n, C] rows summed into ``size`` groups by ``index`` [n] -> [size, C] (float32 or wider)."""
    dtype = torch.promote_types(values.dtype, torch.float32)
    out = torch.zeros(size, values.shape[1], dtype=dtype, device=values.device)
    return out.index_add_(0, index, values.to(dtype))
