"""k-center greedy speed: `pipeline.selection.strategies.k_center_greedy` vs the usual scikit-learn loop.

    python benchmarks/kcenter.py [--device cpu|cuda] [--n 113800] [--d 96] [--labelled 5000] [--picks 1000]

Data: a fixed-seed Gaussian mixture (64 components) of float32 embeddings, as a teacher would write.
The reference is the loop most active-learning code uses (e.g. Sener & Savarese's coreset sampler):
sklearn `pairwise_distances(X, X[labelled]).min(1)` (in row chunks), then per pick one
`pairwise_distances(X[new:new+1], X)`, an elementwise minimum and an argmax, all in float64.
Both must pick the same molecules in the same order. On cuda it also times 5,000 picks (--gpu-picks).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from _common import cpu_model, timed

from pipeline.selection.kcenter import k_center_greedy


def mixture(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(64, d))
    scales = rng.uniform(0.5, 2.0, size=64)
    component = rng.integers(0, 64, size=n)
    return (means[component] + rng.normal(size=(n, d)) * scales[component, None]).astype(np.float32)


def reference(X: np.ndarray, labelled: np.ndarray, budget: int, chunk: int = 4096) -> np.ndarray:
    """The usual implementation: sklearn distances, one full row per pick."""
    from sklearn.metrics import pairwise_distances

    X = X.astype(np.float64)
    dmin = np.concatenate(
        [pairwise_distances(X[s : s + chunk], X[labelled]).min(axis=1) for s in range(0, len(X), chunk)]
    )
    dmin[labelled] = -np.inf
    picks = []
    for _ in range(budget):
        new = int(np.argmax(dmin))
        picks.append(new)
        dmin = np.minimum(dmin, pairwise_distances(X[new : new + 1], X)[0])
        dmin[new] = -np.inf
    return np.asarray(picks, dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--n", type=int, default=113_800, help="pool size (QM9's pool: 113,800)")
    parser.add_argument("--d", type=int, default=96, help="embedding width")
    parser.add_argument("--labelled", type=int, default=5_000)
    parser.add_argument("--picks", type=int, default=1_000)
    parser.add_argument("--gpu-picks", type=int, default=5_000, help="also time this many picks on cuda")
    parser.add_argument("--repeats", type=int, default=3, help="ours: report the median of this many runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)

    X = mixture(args.n, args.d, args.seed)
    labelled = np.random.default_rng(args.seed + 1).choice(args.n, args.labelled, replace=False)
    print(f"pool {args.n} x {args.d} float32, {args.labelled} labelled, {args.picks} picks, device {device}")
    Xd = torch.from_numpy(X).to(device)
    labelled_d = torch.from_numpy(labelled).to(device)
    if device.type == "cuda":  # CUDA context and kernels, outside the timing
        k_center_greedy(Xd[:2000], labelled_d[labelled_d < 2000], 10)

    runs = [timed(lambda: k_center_greedy(Xd, labelled_d, args.picks), device) for _ in range(args.repeats)]
    picks = runs[0][0]
    ours = float(np.median([s for _, s in runs]))
    print(f"ours:      {ours:7.2f} s (median of {args.repeats}: {', '.join(f'{s:.2f}' for _, s in runs)})")

    expected, ref_s = timed(lambda: reference(X, labelled, args.picks), torch.device("cpu"))
    identical = bool(np.array_equal(picks, expected))
    print(f"reference: {ref_s:7.2f} s (sklearn pairwise_distances, float64, CPU)")
    print(f"speed-up {ref_s / ours:.1f}x, identical picks: {identical}")
    if not identical:
        first = int(np.argmax(picks != expected))
        print(f"  first difference at pick {first}: ours {picks[first]}, reference {expected[first]}")

    result = {
        "n": args.n,
        "d": args.d,
        "labelled": args.labelled,
        "picks": args.picks,
        "ours_s": round(ours, 3),
        "reference_s": round(ref_s, 3),
        "speedup": round(ref_s / ours, 1),
        "identical": identical,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        gpu_picks, gpu_s = timed(lambda: k_center_greedy(Xd, labelled_d, args.gpu_picks), device)
        head_ok = bool(np.array_equal(gpu_picks[: args.picks], picks))
        print(f"{args.gpu_picks} picks on {device}: {gpu_s:.3f} s (first {args.picks} as above: {head_ok})")
        result.update(gpu_picks=args.gpu_picks, gpu_picks_s=round(gpu_s, 3))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
