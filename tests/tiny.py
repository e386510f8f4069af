"""What the tests share beyond conftest's fixtures (importable: tests/ is on the path beside conftest.py):
the tiny model every network test starts from and the tiny run section of a workflow config."""

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


#: A run section small enough for an end-to-end workflow test on the CPU (2 rounds of 12 + 10 labels).
TINY_RUN = {
    "dataset": "qm9",
    "split": {"val": 20, "test": 20},
    "targets": ["homo"],
    "initial": {"size": 12},
    "batch": 10,
    "rounds": 2,
    "device": "cpu",
    "model": {"hidden": 16, "n_interactions": 1, "rbf_count": 50, "n_clusters": 4},
    "train": {"teacher_epochs": 1, "student_max_epochs": 2, "patience": 1},
}
