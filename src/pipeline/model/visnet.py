"""ViSNet, an equivariant representation, on the project's own neighbour list.

Wang et al., "Enhancing Geometric Representations for Molecules with Equivariant Vector-Scalar
Interactive Message Passing", Nature Communications 2024 (arXiv:2210.16518), as implemented by PyG
(:class:`torch_geometric.nn.models.visnet.ViSNetBlock`): atoms carry scalar features and vector
features (spherical harmonics of the bond directions up to ``lmax``), and each layer mixes them
with attention over the neighbours, so the scalars it hands on are invariant to rotations and
translations while the vectors turn with the molecule.

PyG's block finds its neighbours with ``radius_graph``, which needs ``torch-cluster`` or ``pyg-lib``
(neither installs here). The featurised graph already holds every pair within the dataset's cutoff,
so :class:`ViSNet` takes those pairs shorter than its own cutoff, adds each atom's self-loop (as
PyG's ``Distance`` does), and runs the block's own layers on them: every weight and every layer is
PyG's (tested equal to PyG's block given the same neighbours). Unlike ``radius_graph`` it keeps every
neighbour inside the cutoff (``radius_graph`` keeps at most ``max_num_neighbors``, 32 by default,
never reached by QM9's 29 atoms at 5 Å).

The heads read the block's scalar node features ``x`` (after its final layer norm); the vector
features are not read. The atom embeddings have a row per atomic number 0..``max_z`` and one for
the mask token, which the reconstruction loss puts in place of an atom's type.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn.models.visnet import ViSNetBlock

from pipeline.config.network import ModelConfig, VisnetSettings


def stored_neighbours(
    edge_index: Tensor, dist: Tensor, pos: Tensor, cutoff: float
) -> tuple[Tensor, Tensor, Tensor]:
    """What PyG's ViSNet ``Distance`` module returns, from the stored graph instead of
    ``radius_graph``: the directed pairs shorter than ``cutoff`` plus every atom's self-loop
    (``edge_index`` [2, e'], source first), their lengths (0 for a self-loop) and their vectors
    ``pos[source] - pos[target]``."""
    keep = dist < cutoff
    loops = torch.arange(pos.shape[0], device=pos.device)
    edge_index = torch.cat([edge_index[:, keep], loops.expand(2, -1)], dim=1)
    edge_weight = torch.cat([dist[keep].to(pos.dtype), pos.new_zeros(pos.shape[0])])
    edge_vec = pos.index_select(0, edge_index[0]) - pos.index_select(0, edge_index[1])
    return edge_index, edge_weight, edge_vec


class ViSNet(nn.Module):
    """Scalar node features h [a, H] of :class:`ViSNetBlock` from the stored graph.

    Args:
        hidden (int): H, the width of the scalar and vector features.
        n_interactions (int): the block's message-passing layers.
        settings (VisnetSettings): ``lmax``, attention heads, RBF count, cutoff (Å).
        mask_token (int): the embedding's last row.
    """

    def __init__(self, hidden: int, n_interactions: int, settings: VisnetSettings, mask_token: int) -> None:
        super().__init__()
        if hidden % settings.heads:
            raise ValueError(
                f"model.hidden ({hidden}) must be a multiple of model.visnet.heads ({settings.heads})"
            )
        self.hidden, self.cutoff = hidden, settings.cutoff
        self.block = ViSNetBlock(
            lmax=settings.lmax,
            num_heads=settings.heads,
            num_layers=n_interactions,
            hidden_channels=hidden,
            num_rbf=settings.rbf_count,
            max_z=mask_token + 1,
            cutoff=settings.cutoff,
        )
        del self.block.distance  # radius_graph: the neighbours come from the stored graph instead

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> ViSNet:
        """The representation of an architecture (``cfg.visnet``'s settings)."""
        return cls(cfg.hidden, cfg.n_interactions, cfg.visnet, cfg.mask_token)

    def reset_parameters(self) -> None:
        self.block.reset_parameters()

    def forward(self, z: Tensor, edge_index: Tensor, dist: Tensor, pos: Tensor) -> Tensor:
        """Node features h.

        Args:
            z: [a] int64 atomic numbers (the mask token for a masked atom).
            edge_index: [2, e] directed edges (source, target), each unordered pair in both directions.
            dist: [e] edge lengths (Å).
            pos: [a, 3] coordinates (Å): the bond directions come from them.

        Returns:
            [a, H] scalar node features.
        """
        block = self.block
        edge_index, edge_weight, edge_vec = stored_neighbours(edge_index, dist, pos, self.cutoff)
        # unit vectors; a self-loop's stays 0 (its spherical harmonics are then 0 too)
        edge_vec = edge_vec / edge_vec.norm(dim=1, keepdim=True).clamp(min=1e-12)

        x = block.embedding(z)
        edge_attr = block.distance_expansion(edge_weight)
        edge_vec = block.sphere(edge_vec)
        x = block.neighbor_embedding(z, x, edge_index, edge_weight, edge_attr)
        vec = x.new_zeros(x.shape[0], (block.lmax + 1) ** 2 - 1, x.shape[1])
        edge_attr = block.edge_embedding(edge_index, edge_attr, x)
        for layer in block.vis_mp_layers:
            dx, dvec, dedge_attr = layer(x, vec, edge_index, edge_weight, edge_attr, edge_vec)
            x, vec = x + dx, vec + dvec
            if dedge_attr is not None:  # None after the last layer
                edge_attr = edge_attr + dedge_attr
        with torch.autocast(device_type=x.device.type, enabled=False):  # h in float32, as SchNet's
            return block.out_norm(x.float())
