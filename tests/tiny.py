"""The tiny model the network tests share (importable: tests/ is on the path beside conftest.py)."""

from __future__ import annotations


def tiny_model(seed: int = 0, **settings):
    """A small ASGN model (H = 16, two interaction blocks, 60 RBF centres, 4 clusters, HOMO and U0),
    initialised from ``torch.manual_seed(seed)``; ``settings`` override any ModelConfig field."""
    import torch

    from pipeline.config.network import ModelConfig
    from pipeline.model.asgn import ASGNModel

    values = {"hidden": 16, "n_interactions": 2, "rbf_count": 60, "n_clusters": 4, "targets": ("homo", "u0")}
    torch.manual_seed(seed)
    return ASGNModel(ModelConfig(**(values | settings)))
