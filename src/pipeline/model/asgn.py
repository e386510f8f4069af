"""The ASGN network: a representation (:mod:`pipeline.model.schnet`) and the heads ASGN trains on it
(:mod:`pipeline.model.heads`), with its settings (:class:`ModelConfig`).

Heads (Hao et al., "ASGN: An Active Semi-supervised Graph Neural Network for Molecular Property
Prediction", KDD 2020): properties (per-atom outputs read out per target by sum or mean, in real units
through target-scaling buffers), atom types and distance bins (reconstruction loss L_r), and cluster
ids (clustering loss L_c) from the graph embedding z_G that k-center selection also uses.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from pipeline.config.network import ModelConfig
from pipeline.config.registry import BACKBONES
from pipeline.data.graphs import GraphBatch
from pipeline.model.heads import PropertyHead, mlp, reset_mlp, sum_by


class ModelOutput(NamedTuple):
    """What :meth:`ASGNModel.forward` returns."""

    node: Tensor  # [a, H] node embeddings h after the last interaction block
    graph: Tensor  # [B, H] graph embedding z_G: the mean of the molecule's node embeddings
    pred: Tensor  # [B, T] predictions in real units (float32), one column per config target


class ASGNModel(nn.Module):
    r"""A representation (``config.backbone``: SchNet or ViSNet) and the heads ASGN trains on it.

    * properties: :class:`~pipeline.model.heads.PropertyHead` (real units; it owns the targets'
      scale, shift and atomref);
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
        hidden = cfg.hidden
        self.representation = BACKBONES[cfg.backbone].load().from_config(cfg)
        self.property_head = PropertyHead(hidden, cfg.targets, cfg.readout, cfg.max_z, cfg.dropout)
        self.atom_type_head = mlp([hidden, hidden, cfg.n_atom_types])
        self.dist_bin_head = mlp([2 * hidden, hidden, cfg.n_dist_bins])
        self.cluster_head = mlp([hidden, hidden, cfg.n_clusters])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter (the target scaling buffers are kept)."""
        self.representation.reset_parameters()
        self.property_head.reset_parameters()
        for head in (self.atom_type_head, self.dist_bin_head, self.cluster_head):
            reset_mlp(head)

    def embed(
        self, z: Tensor, batch: GraphBatch, edge_index: Tensor | None = None, dist: Tensor | None = None
    ) -> Tensor:
        """[a, H] node embeddings h: the representation's (:meth:`SchNet.forward`) of atoms ``z`` in
        the batch's geometry, over the batch's stored graph unless ``edge_index`` and ``dist`` say
        otherwise."""
        edge_index = batch.edge_index if edge_index is None else edge_index
        dist = batch.dist if dist is None else dist
        return self.representation(z, edge_index, dist, batch.pos)

    def forward(self, batch: GraphBatch, mask: Tensor | None = None) -> ModelOutput:
        """Embeddings and property predictions of a batch.

        Args:
            batch: a :class:`~pipeline.data.graphs.GraphBatch` (z [a], batch [a], edge_index [2, e],
                dist [e], pos [a, 3], atom_ptr [B + 1]); SchNet reads the geometry as ``dist`` only,
                an equivariant backbone also the directions from ``pos``.
            mask: optional [m] indices of atoms whose type is hidden: they enter the network as the
                mask token (the reconstruction loss's pass). The readout's per-element references
                still use the true ``batch.z``.

        Returns:
            :class:`ModelOutput` with node [a, H], graph [B, H] and pred [B, T] in real units.
        """
        z = batch.z
        if mask is not None:
            z = z.index_fill(0, mask, self.config.mask_token)
        h = self.embed(z, batch)
        graph, pred = self.readout(h, batch)
        return ModelOutput(node=h, graph=graph, pred=pred)

    def readout(self, h: Tensor, batch: GraphBatch) -> tuple[Tensor, Tensor]:
        """Graph embeddings z_G [B, H] and predictions [B, T] (real units) from node embeddings h [a, H].

        Split from :meth:`forward` so that the property head alone can be re-run (MC-dropout).
        """
        n_graphs, n_atoms = _counts(batch)
        graph = sum_by(h, batch.batch, n_graphs) / n_atoms
        return graph, self.property_head(h, batch.z, batch.batch, n_graphs, n_atoms)

    @torch.no_grad()
    def last_layer_gradients(self, batch: GraphBatch) -> Tensor:
        """[B, T * (F + 1)] the gradient of each target's prediction with respect to the property
        head's last linear layer, per molecule (:meth:`PropertyHead.last_layer_gradients`). These are
        the features of the last-layer gradient (``'ll'``) kernel of Holzmüller et al. (2023): two
        molecules are similar when a step on the last layer moves their predictions alike."""
        h = self.embed(batch.z, batch)
        return self.property_head.last_layer_gradients(h, batch.batch, *_counts(batch))

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
        backbone = cfg.backbone
        if backbone == "visnet":
            v = cfg.visnet
            backbone += f"(lmax={v.lmax}, heads={v.heads}, rbf={v.rbf_count}, cutoff={v.cutoff:g})"
        return (
            f"{self.__class__.__name__}(backbone={backbone}, hidden={cfg.hidden}, "
            f"n_interactions={cfg.n_interactions}, "
            f"rbf={cfg.rbf_count}x{cfg.rbf_width:g}A from {cfg.rbf_start:g}, cutoff={cfg.cutoff:g}, "
            f"targets={list(cfg.targets)}, readout={list(cfg.readout.values())}, "
            f"clusters={cfg.n_clusters}, dist_bins={cfg.n_dist_bins}x[{cfg.dist_min:g}, {cfg.dist_max:g}]A, "
            f"atom_types={cfg.n_atom_types}, "
            f"dropout={cfg.dropout:g})"
        )


def _counts(batch: GraphBatch) -> tuple[int, Tensor]:
    """The batch's number of molecules and each one's atom count [B, 1] (at least 1)."""
    n_atoms = (batch.atom_ptr[1:] - batch.atom_ptr[:-1]).clamp(min=1).unsqueeze(-1)
    return batch.atom_ptr.numel() - 1, n_atoms
