"""Methods compared on the test molecules every one of them predicts, from the recorded predictions.

    python docs/measured/benchmark-cpu/common_molecules.py PART BASELINE METHOD [METHOD ...] [--round R]

A delta-learning method has no prediction for a molecule its cheap method failed on (ANI-1x and
ANI-1ccx know no fluorine), so its test MAE in student.json is over fewer molecules than another
method's. This table restricts every method of a seed to the test molecules that all of them (and
the baseline) predict, from each run's round_XX/predictions.parquet (default: the last round the
runs share), and pairs them by seed like the benchmark table: per target, each method's mean ±
std test MAE over the seeds, and its ratio to the baseline with a 95% Student-t interval over the
seeds (one seed: the ratio alone). Runs without a predictions.parquet are left out, named.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
from compare import RUNS, seed_runs  # this folder's script: run folders by part, method and seed

from pipeline.reports.stats import t_interval


def predictions(part: str, method: str, round: str | None) -> dict[int, pd.DataFrame]:
    """Seed -> the test rows of that run's predictions.parquet (of ``round``, else its last round)."""
    out = {}
    for seed, folder in seed_runs(part, method).items():
        rounds = sorted(folder.glob("round_*/predictions.parquet"))
        if round is not None:
            rounds = [p for p in rounds if p.parent.name == f"round_{int(round):02d}"]
        if not rounds:
            where = "" if round is None else f" in round {round}"
            print(f"{folder.name}: no predictions.parquet{where}, left out")
            continue
        table = pd.read_parquet(rounds[-1])
        out[seed] = table[table.part == "test"].set_index("mol_id")
    return out


def compare(part: str, baseline: str, methods: list[str], round: str | None) -> pd.DataFrame:
    runs = {m: predictions(part, m, round) for m in [baseline, *methods]}
    seeds = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not seeds:
        raise SystemExit(f"no seed has predictions of {baseline} and of {', '.join(methods)}")
    targets = json.loads((RUNS / f"{part}-{baseline}-s{seeds[0]}" / "run.json").read_text())["targets"]
    rows = []
    for target in targets:
        mae: dict[str, list[float]] = {m: [] for m in runs}
        counts = []
        for seed in seeds:
            tables = [runs[m][seed] for m in runs]
            common = tables[0].index
            for table in tables[1:]:
                common = common.intersection(table.index)
            common = [mol for mol in common if all(np.isfinite(t.loc[mol, target]) for t in tables)]
            counts.append(len(common))
            for m, table in zip(runs, tables, strict=True):
                rows_here = table.loc[common]
                mae[m].append(float((rows_here[target] - rows_here[f"{target}_label"]).abs().mean()))
        base = np.array(mae[baseline])
        for m in runs:
            values = np.array(mae[m])
            mean, std, _, _ = t_interval(values, 0.95)
            ratio, _, low, high = t_interval(values / base, 0.95)
            rows.append((target, m, len(seeds), min(counts), mean, std, ratio, low, high))
    columns = ["target", "method", "seeds", "molecules", "test_mae", "std", "ratio"]
    return pd.DataFrame(rows, columns=[*columns, "ratio_low", "ratio_high"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part")
    parser.add_argument("baseline")
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--round", default=None, help="the round to compare (default: each run's last)")
    args = parser.parse_args()
    table = compare(args.part, args.baseline, args.methods, args.round)
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
