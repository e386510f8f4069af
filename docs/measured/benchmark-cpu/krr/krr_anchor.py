"""KRR on FCHL19 (pipeline.learn.kernel_ridge) on one benchmark-cpu run's split and round-0 labels:
(sigma, lambda) chosen on the validation molecules, test MAE reported once, per target.

    python docs/measured/benchmark-cpu/krr/krr_anchor.py RESULTS_DIR RUN [> out.json]

RESULTS_DIR is a Snakemake results folder of config/benchmark-cpu.yaml (results/data/qm9 and
results/runs/RUN with split.parquet, holdout_labels.parquet and round_00/labelled.parquet).
"""

import json
import sys
import time

import numpy as np
import pandas as pd

from pipeline.data.graphs import load_graphs
from pipeline.learn.kernel_ridge import fchl19, select

SIGMAS = [1.0, 2.0, 4.0, 8.0, 16.0]
LAMBDAS = [1e-9, 1e-7, 1e-5, 1e-3]
TARGETS = {"homo": False, "u0": True}  # target -> extensive (per-element references subtracted)


def main(root: str, run: str) -> dict:
    split = pd.read_parquet(f"{root}/runs/{run}/split.parquet")
    labelled = pd.read_parquet(f"{root}/runs/{run}/round_00/labelled.parquet").set_index("mol_id")
    holdout = pd.read_parquet(f"{root}/runs/{run}/holdout_labels.parquet").set_index("mol_id")
    parts = {
        "train": labelled.index.to_numpy(),
        "val": split.mol_id[split.split == "val"].to_numpy(),
        "test": split.mol_id[split.split == "test"].to_numpy(),
    }
    graphs = load_graphs(f"{root}/data/qm9", mol_ids=np.concatenate(list(parts.values())))
    where = {m: k for k, m in enumerate(graphs.mol_id)}
    start = time.perf_counter()
    atoms = fchl19(
        graphs.z.numpy(), graphs.pos.numpy().astype(np.float64), graphs.atom_ptr.numpy(), [1, 6, 7, 8, 9]
    )
    out = {
        "run": run,
        "molecules": {k: len(v) for k, v in parts.items()},
        "fchl19_seconds": time.perf_counter() - start,
    }
    sets = {k: atoms.take([where[m] for m in v]) for k, v in parts.items()}
    for target, extensive in TARGETS.items():
        start = time.perf_counter()
        y_train, y_val = (
            labelled.loc[parts["train"], target].to_numpy(),
            holdout.loc[parts["val"], target].to_numpy(),
        )
        model, scores = select(sets["train"], y_train, sets["val"], y_val, SIGMAS, LAMBDAS, extensive)
        test = float(
            np.mean(np.abs(model.predict(sets["test"]) - holdout.loc[parts["test"], target].to_numpy()))
        )
        out[target] = {
            "sigma": model.sigma, "lambda": model.lam, "val_mae": scores[(model.sigma, model.lam)], "test_mae": test,
            "grid_val_mae": {f"{s:g},{lam:g}": v for (s, lam), v in scores.items()},
            "seconds": time.perf_counter() - start,
        }  # fmt: skip
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3]), indent=1))
