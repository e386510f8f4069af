"""Featurisation speed: all of QM9 through `pipeline featurise` vs a per-molecule PyG-style loop.

    python benchmarks/featurise.py [--limit N] [--reference-molecules 5000]

The reference does what PyG's own QM9 `process()` does per molecule (parse it, build a `Data` object
with a full-graph `edge_index`, collate the list), on a subset, and its rate is reported beside ours.
Last line: a JSON object with both figures.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import cpu_model
from torch_geometric.data import Data, InMemoryDataset

from pipeline.data.featurise import FeaturiseSettings, featurise
from pipeline.data.sources import get_source
from pipeline.data.sources.base import symbols_to_z


def ours(limit: int | None) -> tuple[int, float, dict]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        manifest = featurise(FeaturiseSettings(source="qm9", limit=limit), Path(out), shard_size=20_000)
        seconds = time.perf_counter() - start
    return manifest["counts"]["molecules"], seconds, manifest


def reference(n: int) -> tuple[int, float]:
    """Per-molecule Python, as PyG's QM9.process: parse, Data(...), collate."""
    source = get_source("qm9")
    start = time.perf_counter()
    table = source.catalogue(()).payload.slice(0, n)
    data_list = []
    for elements, xyz in zip(table["Elements"].to_pylist(), table["XYZ_Ang"].to_pylist(), strict=True):
        z = torch.from_numpy(symbols_to_z(ast.literal_eval(elements)))
        pos = torch.tensor(ast.literal_eval(xyz), dtype=torch.float32)
        dist = torch.cdist(pos, pos)
        edge_index = ((dist < 30.0) & ~torch.eye(len(z), dtype=torch.bool)).nonzero().t()
        data_list.append(Data(z=z, pos=pos, edge_index=edge_index, dist=dist[edge_index[0], edge_index[1]]))
    InMemoryDataset.collate(data_list)
    return n, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="featurise this many molecules (default: all of QM9)")
    parser.add_argument("--reference-molecules", type=int, default=5_000)
    args = parser.parse_args()
    n_ours, s_ours, manifest = ours(args.limit)
    n_ref, s_ref = reference(args.reference_molecules)
    rate, ref_rate = n_ours / s_ours, n_ref / s_ref
    print(f"ours:      {n_ours:>7} molecules in {s_ours:6.2f} s = {rate:8.0f} molecules/s", file=sys.stderr)
    print(f"reference: {n_ref:>7} molecules in {s_ref:6.2f} s = {ref_rate:8.0f} molecules/s", file=sys.stderr)
    print(f"edges: {manifest['counts']['edges']}, speed-up {rate / ref_rate:.1f}x", file=sys.stderr)
    result = {
        "molecules": n_ours,
        "seconds": round(s_ours, 3),
        "mol_per_s": round(rate),
        "reference_mol_per_s": round(ref_rate),
        "speedup": round(rate / ref_rate, 1),
        "target_seconds_all_qm9": 20.0,
        "edges": manifest["counts"]["edges"],
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
