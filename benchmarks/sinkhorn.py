"""Sinkhorn cluster-assignment speed and balance on a QM9-sized pool.

    python benchmarks/sinkhorn.py [--device cpu|cuda] [--n 113800] [--m 100] [--lam 25]

Scores (fixed seed): "random" = randn; "skewed" = randn with +10 on cluster 0, so that every row
prefers cluster 0 and plain argmax puts the whole pool there; "sharp" = 20 * randn, nearly one-hot
probabilities, the slowest case for plain Sinkhorn-Knopp. Reports the median time of --repeats runs,
the iterations, and how far the cluster sizes are from N / M. Last line: one JSON object, with
max_count_dev = max over cases and clusters of |count - N/M| / (N/M).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from _common import cpu_model, timed

from pipeline.learn.clustering import _transport


def make_scores(kind: str, n: int, m: int, seed: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, m, generator=g)  # float32, as a cluster head emits
    if kind == "skewed":
        z[:, 0] += 10.0
    elif kind == "sharp":
        z *= 20.0
    return z.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--n", type=int, default=113_800, help="molecules (QM9's pool: 113,800)")
    parser.add_argument("--m", type=int, default=100, help="clusters (ASGN: 100)")
    parser.add_argument("--lam", type=float, default=25.0)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"N={args.n} M={args.m} lam={args.lam} tol={args.tol} device={device}")
    if device.type == "cuda":  # CUDA context and kernels, outside the timing
        _transport(make_scores("random", 1000, args.m, 0, device), lam=args.lam, n_iter=1000, tol=args.tol)

    seconds, iterations, deviation = {}, {}, {}
    for kind in ("random", "skewed", "sharp"):
        scores = make_scores(kind, args.n, args.m, args.seed, device)
        runs = []
        for _ in range(args.repeats):
            t, s = timed(
                lambda scores=scores: _transport(scores, lam=args.lam, n_iter=1000, tol=args.tol), device
            )
            labels = t.labels()
            runs.append(s)
        counts = torch.bincount(labels, minlength=args.m).cpu().numpy()
        argmax_counts = torch.bincount(scores.argmax(dim=1), minlength=args.m).cpu().numpy()
        target = args.n / args.m
        seconds[kind] = float(np.median(runs))
        iterations[kind] = t.iterations
        deviation[kind] = float(np.abs(counts / target - 1).max())
        stages = ", ".join(
            f"lam {st['lam']:.3g}: {st['iterations']} it/{st['rebuilds']} rb" for st in t.stages
        )
        print(
            f"{kind:7s} {seconds[kind]:6.3f} s (runs {', '.join(f'{r:.3f}' for r in runs)}), "
            f"{t.iterations} iterations, marginal error {max(t.row_error, t.col_error):.1e}; "
            f"cluster sizes {counts.min()}..{counts.max()} of {target:.0f} "
            f"(plain argmax: {argmax_counts.min()}..{argmax_counts.max()})\n        stages: {stages}"
        )

    result = {
        "n": args.n,
        "m": args.m,
        "seconds_random": round(seconds["random"], 3),
        "seconds_skewed": round(seconds["skewed"], 3),
        "seconds_sharp": round(seconds["sharp"], 3),
        "max_count_dev": round(max(deviation.values()), 4),
        "iterations": max(iterations.values()),
        "iterations_by_case": iterations,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
