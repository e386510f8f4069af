"""Batch selection cost: the lcmd, bait and kmeanspp strategies against k-center greedy, on one pool.

    python benchmarks/selection.py [--device cpu|cuda] [--n 113800] [--d 96] [--labelled 5000]
                                   [--picks 2500] [--repeats 1] [--kcenter-repeats 3]
                                   [--strategies kcenter lcmd bait kmeanspp] [--no-library]

Data: kcenter.py's (its fixed-seed 64-component Gaussian mixture of float32 embeddings, imported from
it, and the same labelled draw), so that at the same --n/--d/--labelled/--seed both scripts select
from the same pool. The default budget is the paper's per-round one, 2,500 picks of 113,800 (kcenter.py
times 1,000 by default).

Measured: the wall-clock seconds of one `pipeline.selection.strategies.get_strategy(name).pick(ctx)` call per
strategy, with a SelectionContext as the select stage builds it (NumPy float32 embeddings, a boolean
labelled mask, the budget, the seed, the device), so the adapter's work (validation, float64 copy,
centring, moving to the device, bmdal-reg's feature and kernel set-up) is inside the timing. Outside
it: one small warm-up pick per strategy (imports bmdal-reg, starts CUDA). The comparison: each
strategy's median seconds over its repeats divided by k-center's (k-center: --kcenter-repeats runs,
default 3; the others: --repeats, default 1, as they take far longer). And, unless --no-library,
bmdal-reg's own methods as they are (``batch_select(..., backend="bmdal-reg")``, rows
"lcmd:bmdal-reg" and so on; about 4 minutes), which the strategies replace, with whether the
library's picks equal the strategy's (LCMD and BAIT; k-means++ draws other random numbers). Every
strategy must return exactly --picks distinct, unlabelled pool indices; the script exits with status
1 if one does not. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from _common import cpu_model, timed
from kcenter import mixture

from pipeline.selection.batch_al import METHODS, batch_select
from pipeline.selection.strategies import SelectionContext, get_strategy

REFERENCE = "kcenter"
STRATEGY_NAMES = [REFERENCE, "lcmd", "bait", "kmeanspp"]


def check(picks: np.ndarray, labelled: np.ndarray, budget: int) -> str:
    """'ok', or what is wrong with the picks: they must be ``budget`` distinct unlabelled pool indices."""
    picks = np.asarray(picks)
    if picks.shape != (budget,):
        return f"{picks.size} picks, not {budget}"
    if picks.size and (picks.min() < 0 or picks.max() >= len(labelled)):
        return "index out of the pool"
    if len(np.unique(picks)) != budget:
        return f"{budget - len(np.unique(picks))} repeated"
    if labelled[picks].any():
        return f"{int(labelled[picks].sum())} labelled"
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--n", type=int, default=113_800, help="pool size (QM9's pool: 113,800)")
    parser.add_argument("--d", "--dim", dest="d", type=int, default=96, help="embedding width")
    parser.add_argument("--labelled", type=int, default=5_000)
    parser.add_argument("--picks", type=int, default=2_500, help="budget B (the paper's per round: 2,500)")
    parser.add_argument("--repeats", type=int, default=1, help="lcmd/bait/kmeanspp: median of this many runs")
    parser.add_argument("--kcenter-repeats", type=int, default=3, help="k-center: median of this many runs")
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=STRATEGY_NAMES,
        choices=STRATEGY_NAMES,
        help="which to time (k-center always runs: it is the comparison)",
    )
    parser.add_argument(
        "--no-library", action="store_true", help="skip bmdal-reg's own methods (about 4 minutes)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.labelled + args.picks > args.n:
        parser.error(f"--labelled {args.labelled} + --picks {args.picks} exceed the pool --n {args.n}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"skipped: --device {args.device} asked for, but CUDA is not available here")
        return
    names = [REFERENCE] + [s for s in dict.fromkeys(args.strategies) if s != REFERENCE]

    X = mixture(args.n, args.d, args.seed)
    labelled = np.zeros(args.n, dtype=bool)
    labelled[np.random.default_rng(args.seed + 1).choice(args.n, args.labelled, replace=False)] = True
    print(
        f"pool {args.n} x {args.d} float32, {args.labelled} labelled, {args.picks} picks, device {device}, "
        f"{torch.get_num_threads()} threads"
    )

    # Warm-up, outside the timing: bmdal-reg's import (seconds) and the CUDA context and kernels.
    small = min(args.n, 2_000)
    warm_budget = min(10, small - int(labelled[:small].sum()))
    for name in names:
        get_strategy(name).pick(
            SelectionContext(X[:small], labelled[:small], warm_budget, seed=args.seed, device=device)
        )
    if not args.no_library:
        batch_select(
            X[:small],
            labelled[:small],
            warm_budget,
            "lcmd",
            seed=args.seed,
            device=device,
            backend="bmdal-reg",
        )

    ctx = SelectionContext(X, labelled, args.picks, seed=args.seed, device=device)
    jobs = [(name, lambda n=name: get_strategy(n).pick(ctx)[0]) for name in names]
    if not args.no_library:
        jobs += [
            (
                f"{m}:bmdal-reg",
                lambda m=m: batch_select(
                    X, labelled, args.picks, m, seed=args.seed, device=device, backend="bmdal-reg"
                ),
            )
            for m in METHODS
            if m in names
        ]
    rows, picked, same = [], {}, {}
    for name, pick in jobs:
        repeats = args.kcenter_repeats if name == REFERENCE else args.repeats
        runs = [timed(pick, device) for _ in range(max(1, repeats))]
        seconds = [s for _, s in runs]
        picked[name] = runs[0][0]
        verdict = check(picked[name], labelled, args.picks)
        ours = name.removesuffix(":bmdal-reg")
        if ours != name and ours != "kmeanspp" and ours in picked:  # k-means++: other random numbers
            same[ours] = bool(np.array_equal(picked[name], picked[ours]))
            verdict += f", same as {ours}'s" if same[ours] else f", NOT {ours}'s"
        rows.append((name, float(np.median(seconds)), seconds, verdict))
        print(f"  {name}: {', '.join(f'{s:.2f}' for s in seconds)} s, picks {verdict}", flush=True)

    base = rows[0][1]
    print()
    print(f"{'strategy':<18} | {'seconds':>9} | {'x k-center':>10} | runs | picks")
    print(f"{'-' * 18}-+-{'-' * 9}-+-{'-' * 10}-+------+------")
    for name, median, seconds, verdict in rows:
        print(f"{name:<18} | {median:9.3f} | {median / base:9.1f}x | {len(seconds):>4} | {verdict}")

    result = {
        "n": args.n,
        "d": args.d,
        "labelled": args.labelled,
        "picks": args.picks,
        "seconds": {name: round(median, 3) for name, median, _, _ in rows},
        "x_kcenter": {name: round(median / base, 2) for name, median, _, _ in rows},
        "runs": {name: len(seconds) for name, _, seconds, _ in rows},
        "valid": all(verdict.startswith("ok") for *_, verdict in rows),
        "same_as_bmdal_reg": same,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))
    if not result["valid"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
