"""Training throughput of the ASGN backbone vs the library's model on the same QM9 batches.

    python benchmarks/backbone.py [--limit 3000 | --data FOLDER] [--batch-size 100] [--threads 2]
    python benchmarks/backbone.py --backbone visnet --hidden 64 --layers 3 --batch-size 32
    python benchmarks/backbone.py --device cuda --epoch          # + one teacher-style epoch of all QM9

A training step is forward + MSE loss on U0 + backward + Adam step, for a batch of molecules with their
stored full graphs. ``--backbone schnet`` (default): ours against PyG's ``SchNet(hidden_channels=96,
num_filters=96, num_interactions=4, num_gaussians=300, cutoff=30.0)``, which gets the same edges
through its ``interaction_graph`` callable. ``--backbone visnet``: ours (``model.backbone: visnet``,
PyG's layers on the stored graph) against PyG's whole ``ViSNet`` model of the same size, whose
``radius_graph`` (torch-cluster, not installable here) is replaced by the same stored neighbours
within the cutoff plus self-loops. Both models see the same batches in the same order; their timed
passes alternate, so that a change of load on the machine hits both. With ``--epoch`` (CUDA), one
teacher-style epoch over the whole dataset is timed as well: all four heads and their losses, mixed
precision. Last line: a JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch_geometric.nn.models import SchNet

from pipeline.config.network import ModelConfig
from pipeline.data.featurise import FeaturiseSettings, featurise
from pipeline.data.graphs import GraphBatch, GraphSet, load_graphs
from pipeline.model.asgn import ASGNModel
from pipeline.model.visnet import stored_neighbours

EPOCH_TARGET_S = 10.0  # one teacher epoch over all of QM9 on an H100


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batches(graphs: GraphSet, y: torch.Tensor, batch_size: int, n: int, seed: int):
    """``n`` batches of a seeded shuffle of the dataset (wrapping around), with their labels."""
    order = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(seed))
    order = order.repeat(-(-n * batch_size // len(graphs)))
    index = [order[k * batch_size : (k + 1) * batch_size] for k in range(n)]
    return [(graphs.batch(i.to(graphs.device)), y[i].to(graphs.device)) for i in index]


class Trainer:
    """One model, its optimiser and a ``step(batch, y)``: forward, MSE, backward, Adam."""

    def __init__(self, name: str, model: torch.nn.Module, predict: Callable, amp: bool) -> None:
        self.name, self.model, self.predict, self.amp = name, model, predict, amp
        self.optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.seconds, self.molecules = 0.0, 0

    def step(self, batch: GraphBatch, y: torch.Tensor) -> None:
        with torch.autocast(device_type=y.device.type, dtype=torch.bfloat16, enabled=self.amp):
            pred = self.predict(batch)
        loss = F.mse_loss(pred.float(), y)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()

    def run(self, batches, timed: bool, device: torch.device) -> None:
        synchronize(device)
        start = time.perf_counter()
        for batch, y in batches:
            self.step(batch, y)
        synchronize(device)
        if timed:
            self.seconds += time.perf_counter() - start
            self.molecules += sum(b.num_graphs for b, _ in batches)

    @property
    def rate(self) -> float:
        return self.molecules / self.seconds


def trainers(graphs: GraphSet, y: torch.Tensor, device: torch.device, amp: bool, args) -> list[Trainer]:
    torch.manual_seed(0)
    if args.backbone == "visnet":
        return visnet_trainers(device, amp, args.hidden or 64, args.layers or 3, args.cutoff)
    ours = ASGNModel(ModelConfig(targets=("u0",))).to(device)
    # standardised targets for both models, so that neither trains on 10^4 eV outputs
    ours.property_head.scale.fill_(1.0)
    current: dict[str, GraphBatch] = {}

    def stored_graph(pos: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return current["batch"].edge_index, current["batch"].dist

    pyg = SchNet(96, 96, 4, 300, 30.0, interaction_graph=stored_graph).to(device)

    def pyg_predict(b: GraphBatch) -> torch.Tensor:
        current["batch"] = b
        return pyg(b.z, b.pos, b.batch)

    return [Trainer("ours", ours, lambda b: ours(b).pred, amp), Trainer("pyg", pyg, pyg_predict, amp)]


def visnet_trainers(
    device: torch.device, amp: bool, hidden: int, layers: int, cutoff: float
) -> list[Trainer]:
    """Our ViSNet backbone and PyG's ViSNet model (8 heads, lmax 1, 32 RBF), the same size."""
    from torch_geometric.nn.models import ViSNet

    cfg = ModelConfig(
        targets=("u0",), backbone="visnet", hidden=hidden, n_interactions=layers, visnet={"cutoff": cutoff}
    )
    ours = ASGNModel(cfg).to(device)
    ours.property_head.scale.fill_(1.0)
    current: dict[str, GraphBatch] = {}

    class StoredNeighbours(torch.nn.Module):
        """PyG's ``Distance`` from the stored graph, as our backbone builds it (the same edges)."""

        def forward(self, pos: torch.Tensor, batch: torch.Tensor):
            b = current["batch"]
            return stored_neighbours(b.edge_index, b.dist, pos, cutoff)

    pyg = ViSNet(hidden_channels=hidden, num_layers=layers, cutoff=cutoff, max_z=cfg.mask_token + 1).to(
        device
    )
    pyg.representation_model.distance = StoredNeighbours()

    def pyg_predict(b: GraphBatch) -> torch.Tensor:
        current["batch"] = b
        return pyg(b.z, b.pos, b.batch)[0]

    return [Trainer("ours", ours, lambda b: ours(b).pred, amp), Trainer("pyg", pyg, pyg_predict, amp)]


def teacher_epoch(graphs: GraphSet, model: ASGNModel, batch_size: int, pairs_per_atom: float) -> float:
    """Seconds for one teacher-style epoch: every molecule once, property + atom-type + distance-bin
    + cluster losses (labels stand-ins of the right shapes), backward, Adam; bf16 autocast."""
    device = graphs.device
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(0)
    cfg = model.config
    pseudo = torch.randn(len(graphs), len(cfg.targets), device=device, generator=gen)
    clusters = torch.randint(cfg.n_clusters, (len(graphs),), device=device, generator=gen)
    order = torch.randperm(len(graphs), device=device, generator=gen)
    synchronize(device)
    start = time.perf_counter()
    for k in range(0, len(graphs), batch_size):
        index = order[k : k + batch_size]
        b = graphs.batch(index)
        n_pairs = int(pairs_per_atom * len(b.z))
        edges = torch.randint(b.edge_index.shape[1], (n_pairs,), device=device, generator=gen)
        i, j = b.edge_index[:, edges]
        bins = (b.dist[edges] / 10.0 * cfg.n_dist_bins).long().clamp_(max=cfg.n_dist_bins - 1)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            out = model(b)
            loss = (
                F.mse_loss(out.pred, pseudo[index])
                + F.cross_entropy(model.atom_type_logits(out.node).float(), b.z)
                + F.cross_entropy(model.dist_bin_logits(out.node[i], out.node[j]).float(), bins)
                + F.cross_entropy(model.cluster_logits(out.graph).float(), clusters[index])
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="a featurised dataset folder (default: featurise QM9)")
    parser.add_argument("--limit", type=int, default=3000, help="QM9 molecules to featurise without --data")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes per model, alternating")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--amp", action=argparse.BooleanOptionalAction, help="bf16 autocast (default: on CUDA)"
    )
    parser.add_argument(
        "--epoch", action="store_true", help="also time a teacher epoch of the dataset (CUDA)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", choices=("schnet", "visnet"), default="schnet")
    parser.add_argument("--hidden", type=int, help="visnet: width (default 64)")
    parser.add_argument("--layers", type=int, help="visnet: message-passing layers (default 3)")
    parser.add_argument("--cutoff", type=float, default=5.0, help="visnet: neighbours within (Å)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = device.type == "cuda" if args.amp is None else args.amp

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "qm9"
            limit = None if args.epoch else args.limit
            log(f"featurising QM9 ({limit or 'all'} molecules) into {data}")
            featurise(FeaturiseSettings(source="qm9", limit=limit), data, shard_size=20_000)
        graphs = load_graphs(data).to(device)
        labels = pd.read_parquet(Path(data) / "answer_key.parquet", columns=["mol_id", "u0"])
        u0 = torch.tensor(labels.set_index("mol_id").loc[list(graphs.mol_id), "u0"].to_numpy().copy())
    y = ((u0 - u0.mean()) / u0.std()).float().unsqueeze(1)  # standardised U0
    n_atoms = graphs.n_atoms.float().mean().item()
    log(f"{len(graphs)} molecules, on average {n_atoms:.1f} atoms and {n_atoms * (n_atoms - 1):.0f} edges")

    batches = make_batches(graphs, y, args.batch_size, args.warmup + args.steps, args.seed)
    models = trainers(graphs, y, device, amp, args)
    for trainer in models:
        trainer.run(batches[: args.warmup], timed=False, device=device)
    per_round = -(-args.steps // args.rounds)
    for r in range(args.rounds):
        timed = batches[args.warmup + r * per_round : args.warmup + (r + 1) * per_round]
        for trainer in models if r % 2 == 0 else models[::-1]:
            trainer.run(timed, timed=True, device=device)
    ours, pyg = models
    for trainer in models:
        log(
            f"{trainer.name:>5}: {trainer.molecules} molecules in {trainer.seconds:6.2f} s = "
            f"{trainer.rate:7.1f} molecules/s"
        )
    ratio = ours.rate / pyg.rate
    log(f"ratio ours / pyg: {ratio:.2f}" + (" (target >= 2 on CPU)" if args.backbone == "schnet" else ""))
    result = {
        "backbone": args.backbone,
        "ours_mol_s": round(ours.rate, 1),
        "pyg_mol_s": round(pyg.rate, 1),
        "ratio": round(ratio, 2),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "molecules": len(graphs),
        "amp": amp,
    }
    if args.epoch:
        model = ASGNModel(models[0].model.config).to(device)  # a fresh copy of ours
        warm = graphs.subset(torch.arange(min(len(graphs), 20 * args.batch_size), device=device))
        teacher_epoch(warm, model, args.batch_size, pairs_per_atom=1.0)  # warm-up: allocator, kernels
        seconds = teacher_epoch(graphs, model, args.batch_size, pairs_per_atom=1.0)
        log(f"teacher epoch: {len(graphs)} molecules in {seconds:.2f} s (target <= {EPOCH_TARGET_S} s)")
        result |= {"epoch_s": round(seconds, 2), "epoch_target_s": EPOCH_TARGET_S}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
