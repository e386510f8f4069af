"""How the selections of `make benchmark-cpu-al` differ, on the one round where they share a teacher.

Round 0 of every method on ASGN's teacher (asgn, asgn_random, lcmd, kmeanspp, bait) is asgn's round 0
of the same seed (`share_round_0`), so their 500 picks for round 1 are made on the same embeddings.
For each method this prints, as a mean over the seeds: how many picks it shares with k-center, the
picks' mean atom count and spread of the targets (from the answer key: an analysis, not a label rule),
and how well the 1,000 labelled molecules then cover the pool (the embedding distance of every pool
molecule to its nearest labelled one). docs/benchmarks.md, "Why the selections tie", is its output.

    python docs/measured/benchmark-cpu/pick_anatomy.py [--results results] [--dataset qm9]
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

METHODS = {
    "asgn": "k-center (ASGN)",
    "asgn_random": "random picks",
    "lcmd": "LCMD",
    "kmeanspp": "k-means++",
    "bait": "BAIT",
}


def anatomy(results: Path, dataset: str, seeds: list[int]) -> pd.DataFrame:
    data = results / "data" / dataset
    answers = pd.read_parquet(data / "answer_key.parquet").set_index("mol_id")
    shards = sorted((data / "graphs").glob("*.parquet"))
    atoms = pd.concat(pq.read_table(f, columns=["mol_id", "n_atoms"]).to_pandas() for f in shards)
    atoms = atoms.set_index("mol_id")["n_atoms"]
    rows = []
    for seed in seeds:
        round0 = results / "runs" / f"al-asgn-s{seed}" / "round_00"
        emb = pd.read_parquet(round0 / "embeddings.parquet")
        ids = emb["mol_id"].to_numpy()
        x = torch.tensor(np.stack(emb.iloc[:, 1].to_numpy()), dtype=torch.float64)
        row_of = pd.Series(np.arange(len(ids)), index=ids)
        sample = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:2000]]
        pair_mean = torch.pdist(sample).mean().item()
        labelled = pd.read_parquet(round0 / "labelled.parquet")["mol_id"]
        runs = results / "runs"
        picks = {
            m: pd.read_parquet(runs / f"al-{m}-s{seed}" / "round_00" / "selected.parquet")["mol_id"]
            for m in METHODS
        }
        for m, picked in picks.items():
            chosen = torch.tensor(row_of[pd.concat([labelled, picked])].to_numpy())
            nearest = torch.cdist(x, x[chosen]).min(dim=1).values.numpy()
            rows.append(
                {
                    "seed": seed,
                    "method": m,
                    "shared": len(set(picked) & set(picks["asgn"])),
                    "atoms": atoms[picked].mean(),
                    "homo_std": answers.loc[picked, "homo"].std(),
                    "u0_std": answers.loc[picked, "u0"].std(),
                    "cover_mean": nearest.mean(),
                    "cover_p90": np.quantile(nearest, 0.9),
                    "cover_max": nearest.max(),
                    "pool_atoms": atoms[ids].mean(),
                    "pool_homo_std": answers.loc[ids, "homo"].std(),
                    "pool_u0_std": answers.loc[ids, "u0"].std(),
                    "pair_mean": pair_mean,
                }
            )
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    seeds = df["seed"].nunique()
    mean = df.groupby("method", sort=False).mean(numeric_only=True)
    out = [
        f"| round 0's picks (mean of {seeds} seeds) | shared with k-center | atoms | HOMO std (eV) "
        "| U0 std (eV) | pool molecule to nearest labelled: mean | 90th percentile | max |",
        "| --- | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for m, r in mean.iterrows():
        out.append(
            f"| {METHODS[m]} | {r.shared:.0f} | {r.atoms:.1f} | {r.homo_std:.2f} | {r.u0_std:,.0f} "
            f"| {r.cover_mean:.2f} | {r.cover_p90:.2f} | {r.cover_max:.1f} |"
        )
    r = mean.iloc[0]
    out.append(f"| the pool | | {r.pool_atoms:.1f} | {r.pool_homo_std:.2f} | {r.pool_u0_std:,.0f} | | | |")
    out.append("")
    out.append(
        f"(Distances in the teacher's embedding space: two pool molecules are {r.pair_mean:.1f} apart "
        "on average.)"
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="the workflow's results folder")
    parser.add_argument("--dataset", default="qm9")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(markdown(anatomy(args.results, args.dataset, args.seeds)))


if __name__ == "__main__":
    main()
