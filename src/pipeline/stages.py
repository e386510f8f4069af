"""The per-round stages of an active-learning run, file in -> file out (DESIGN.md's layout).

Each stage is one function here and one ``pipeline <stage>`` command (:mod:`pipeline.cli`), which is
what the Snakemake rules call. Round r:

    label         L_r = L_{r-1} + oracle(selected_{r-1})       (round 0: oracle(initial picks))
    teacher       teacher_r from teacher_{r-1}, learns L_r and pseudo_labels_{r-1}
    embed         z_G of every pool molecule under teacher_r
    student       teacher_r's weights fine-tuned on L_r; val and test MAE
    pseudo_label  student_r's predictions for the unlabelled pool
    select        b new pool molecules (strategy from the run config)

The label stages live in :mod:`pipeline.oracle` (``label_round``, ``label_holdout``: they need no
torch). Only they read the answer key; every other stage sees labels only through labelled.parquet
(and the student, for early stopping and its reported error, the held-out val/test labels).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from . import registry
from .graphs import GraphSet, load_graphs
from .losses import LossWeights
from .model import ASGNModel, ModelConfig
from .oracle import read_labelling
from .select import get_strategy
from .split import read_split
from .store import write_json, write_table
from .train import (
    TeacherData,
    TrainConfig,
    infer,
    load_checkpoint,
    mae,
    resolve_device,
    save_checkpoint,
    train_mean_teacher,
    train_student,
    train_teacher,
    transfer,
)

log = logging.getLogger(__name__)

#: train.semi (pipeline.registry.TEACHERS) -> the teacher's training loop.
_TEACHERS = {"asgn": train_teacher, "mean_teacher": train_mean_teacher}
if set(_TEACHERS) != set(registry.TEACHERS):  # a teacher kind added to one but not the other
    raise ImportError(
        f"pipeline.stages trains {sorted(_TEACHERS)}; the registry has {sorted(registry.TEACHERS)}"
    )


@dataclass
class RunConfig:
    """One run's resolved settings (``run.json``), written by the workflow from config/*.yaml."""

    run: str
    targets: list[str]
    strategy: str = "kcenter"  # selection strategy (pipeline.select registry)
    initial_size: int = 100  # labelled molecules in round 0
    initial_strategy: str = "random"  # round 0: random, or kcenter on an untrained teacher's embeddings
    batch: int = 100  # molecules labelled per round (b)
    rounds: int = 3
    seed: int = 0
    device: str = "auto"
    student: bool = True  # False: ASGN-T (the teacher's own predictions are the result)
    pseudo_labels: bool = True  # the teacher learns the previous student's pseudo-labels
    committee: int = 4  # qbc: students in the committee (K)
    mc_samples: int = 20  # mc_dropout: stochastic forward passes per molecule
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields (targets are added)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields; "weights" = loss weights

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        values = json.loads(Path(path).read_text())
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown run config keys {sorted(unknown)}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def model_config(self, cutoff: float, dist_range: tuple[float, float] = (0.0, 30.0)) -> ModelConfig:
        """The architecture: RBF and filters up to the dataset's ``cutoff`` and, unless the run sets
        ``model.dist_min``/``dist_max``, distance bins over ``dist_range`` (see :func:`dist_range`)."""
        values = {k: v for k, v in self.model.items() if v is not None}
        values.setdefault("dist_min", dist_range[0])
        values.setdefault("dist_max", max(dist_range[1], values["dist_min"] + 0.1))
        return ModelConfig(**{"cutoff": cutoff, "rbf_stop": cutoff, **values, "targets": tuple(self.targets)})

    def train_config(self, round: int) -> TrainConfig:
        values = dict(self.train)
        values["weights"] = LossWeights(**values.get("weights", {}))
        # a different seed each round, derived from the run's
        values["seed"] = int(np.random.SeedSequence([self.seed, round]).generate_state(1)[0] % 2**31)
        return TrainConfig(**values)


# --------------------------------------------------------------------------------------------------
# helpers


def _ids(split: pd.DataFrame, which: str) -> np.ndarray:
    return split.mol_id[split.split == which].to_numpy()


def _load(data: Path, split: pd.DataFrame, device: torch.device) -> tuple[GraphSet, dict[str, np.ndarray]]:
    """Pool, val and test graphs on the device, and each part's positions in that set."""
    parts = {s: _ids(split, s) for s in ("pool", "val", "test")}
    graphs = load_graphs(data, mol_ids=np.concatenate(list(parts.values())))
    bounds = np.cumsum([0] + [len(v) for v in parts.values()])
    where = {s: np.arange(bounds[k], bounds[k + 1]) for k, s in enumerate(parts)}
    return graphs.to(device), where


def _pool_parts(
    graphs: GraphSet, where: dict[str, np.ndarray], labelled_ids
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the labelled and of the unlabelled pool molecules, in pool order."""
    pool = where["pool"]
    is_lab = np.isin(graphs.mol_id[pool], np.asarray(labelled_ids).astype(str))
    return pool[is_lab], pool[~is_lab]


def _labels(frame: pd.DataFrame, ids: np.ndarray, targets: list[str]) -> np.ndarray:
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise ValueError(f"labels have no column for targets {missing} (columns: {list(frame.columns)})")
    return frame.set_index("mol_id").loc[ids, targets].to_numpy(np.float64)


def _label_failures(labelled_path: Path, round: int) -> dict[str, int | None]:
    """How many molecules the oracle could not label: this round's picks and all rounds' so far
    (from labelled.parquet's record, :func:`pipeline.oracle.read_labelling`; None if not recorded)."""
    records = read_labelling(labelled_path)
    this = [r["failed"] for r in records if r.get("round") == round]
    return {
        "label_failures": this[-1] if this else None,
        "label_failures_total": sum(r["failed"] for r in records) if records else None,
    }


def _frame(ids: np.ndarray, values: np.ndarray, targets: list[str]) -> pa.Table:
    return pa.table({"mol_id": pa.array(ids.astype(str)), **{t: values[:, k] for k, t in enumerate(targets)}})


def dist_range(graphs: GraphSet) -> tuple[float, float]:
    """The span of the pair distances stored in ``graphs``, rounded outward to 0.1 Å (QM9 subsets of
    3,000 and 24,000 molecules: 0.9 to 10.8 and 11.7 Å): where the reconstruction's distance bins go."""
    if not graphs.dist.numel():
        return 0.0, graphs.cutoff
    lo, hi = float(graphs.dist.min()), float(graphs.dist.max())
    return math.floor(lo * 10) / 10, math.ceil(hi * 10) / 10


def _new_model(cfg: RunConfig, graphs: GraphSet, seed: int, device: torch.device) -> ASGNModel:
    """A freshly initialised model; the initialisation is seeded without touching global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ASGNModel(cfg.model_config(graphs.cutoff, dist_range(graphs)))
    return model.to(device)


# --------------------------------------------------------------------------------------------------
# stages


def initial(run_json: Path, data: Path, split_path: Path, out: Path) -> pa.Table:
    """Round 0's picks: random (seeded), or k-center on an untrained teacher's pool embeddings."""
    cfg = RunConfig.read(run_json)
    split = read_split(split_path)
    pool = _ids(split, "pool")
    registry.initial_info(cfg.initial_strategy)  # an unknown name: the error lists the valid ones
    if cfg.initial_size > len(pool):
        raise ValueError(f"initial_size {cfg.initial_size} is larger than the pool ({len(pool)} molecules)")
    if cfg.initial_strategy == "random":
        picks = np.sort(np.random.default_rng(cfg.seed).choice(len(pool), cfg.initial_size, replace=False))
        distance = np.full(len(picks), np.nan)
    elif cfg.initial_strategy == "kcenter":
        device = resolve_device(cfg.device)
        graphs, where = _load(data, split, device)
        model = _new_model(cfg, graphs, cfg.seed, device)
        _, emb = infer(model, graphs, where["pool"])
        picks, distance = get_strategy("kcenter").pick(emb, np.zeros(len(pool), bool), cfg.initial_size)
    table = pa.table({"mol_id": pool[picks].astype(str), "pick": np.arange(len(picks)), "distance": distance})
    write_table(table, out)
    return table


def teacher(
    run_json: Path,
    data: Path,
    split_path: Path,
    labelled_path: Path,
    round: int,
    out: Path,
    summary: Path,
    previous: Path | None = None,
    pseudo: Path | None = None,
) -> dict:
    """teacher_r: warm-started from ``previous`` (teacher_{r-1}; a fresh initialisation without it or
    with ``train.warm_start`` off), learns L_r and ``pseudo`` labels for ``train.teacher_epochs``
    epochs (round 0: ``train.pretrain_epochs``). ``summary`` (teacher.json) also counts the round's
    picks the oracle could not label (``label_failures``; ``label_failures_total`` over all rounds)."""
    cfg = RunConfig.read(run_json)
    device = resolve_device(cfg.device)
    split = read_split(split_path)
    graphs, where = _load(data, split, device)
    labelled = pq.read_table(labelled_path).to_pandas()
    lab_idx, unl_idx = _pool_parts(graphs, where, labelled.mol_id)
    y_lab = _labels(labelled, graphs.mol_id[lab_idx], cfg.targets)
    y_pseudo = None
    if pseudo is not None and cfg.pseudo_labels:
        y_pseudo = _labels(pq.read_table(pseudo).to_pandas(), graphs.mol_id[unl_idx], cfg.targets)
    train_cfg = cfg.train_config(round)
    warm = previous is not None and train_cfg.warm_start
    if warm:
        model, _ = load_checkpoint(previous, cfg.as_dict(), device)
    else:
        model = _new_model(cfg, graphs, train_cfg.seed, device)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    start = time.perf_counter()
    data_r = TeacherData(lab_idx, y_lab, unl_idx, y_pseudo)
    registry.teacher_info(train_cfg.semi)  # an unknown name: the error lists the valid ones
    history = _TEACHERS[train_cfg.semi](model, graphs, data_r, train_cfg, gen, train_cfg.epochs(round))
    save_checkpoint(out, model, cfg.as_dict(), round, gen)
    record = {
        "round": round,
        "labelled": int(len(lab_idx)),
        "unlabelled": int(len(unl_idx)),
        **_label_failures(labelled_path, round),
        "pseudo_labels": y_pseudo is not None,
        "warm_start": warm,
        "device": str(device),
        "seconds": time.perf_counter() - start,
        "epochs": history,
    }
    write_json(record, summary)
    return record


def embed(run_json: Path, data: Path, split_path: Path, checkpoint: Path, out: Path) -> pa.Table:
    """Graph embeddings z_G of every pool molecule (labelled or not) under the teacher."""
    cfg = RunConfig.read(run_json)
    device = resolve_device(cfg.device)
    graphs, where = _load(data, read_split(split_path), device)
    model, _ = load_checkpoint(checkpoint, cfg.as_dict(), device)
    train_cfg = cfg.train_config(0)
    _, emb = infer(model, graphs, where["pool"], train_cfg.eval_batch_size, train_cfg.amp)
    width = emb.shape[1]
    table = pa.table(
        {
            "mol_id": pa.array(graphs.mol_id[where["pool"]].astype(str)),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.astype(np.float32).ravel()), width),
        }
    )
    write_table(table, out)
    return table


def student(
    run_json: Path,
    data: Path,
    split_path: Path,
    labelled_path: Path,
    holdout_path: Path,
    teacher_path: Path,
    round: int,
    out: Path,
    summary: Path,
) -> dict:
    """student_r: teacher_r's weights fine-tuned on L_r (early stopping on val); val and test MAE.

    With ``student: false`` in the run config (ASGN-T) the teacher itself is evaluated and saved.

    The errors are over the val/test molecules that have labels (``val_molecules``,
    ``test_molecules`` in ``summary``); ``holdout_failures`` counts those the oracle could not label
    (left out), ``label_failures`` the round's picks it could not label.
    """
    cfg = RunConfig.read(run_json)
    device = resolve_device(cfg.device)
    split = read_split(split_path)
    graphs, where = _load(data, split, device)
    labelled = pq.read_table(labelled_path).to_pandas()
    holdout = pq.read_table(holdout_path).to_pandas()
    lab_idx, _ = _pool_parts(graphs, where, labelled.mol_id)
    y_lab = _labels(labelled, graphs.mol_id[lab_idx], cfg.targets)
    unlabelled = {}
    for part in ("val", "test"):  # molecules the oracle could not label are not in the holdout labels
        kept = np.isin(graphs.mol_id[where[part]], holdout.mol_id.to_numpy().astype(str))
        unlabelled[part] = int((~kept).sum())
        where[part] = where[part][kept]
    if any(unlabelled.values()):
        log.warning(
            "%s: %d val and %d test molecules have no label (holdout_failures.parquet lists them); "
            "the errors are over the other %d and %d",
            holdout_path, unlabelled["val"], unlabelled["test"], len(where["val"]), len(where["test"]),
        )  # fmt: skip
    if len(where["test"]) == 0:
        raise ValueError(f"{holdout_path}: no test molecule has a label, so there is no error to report")
    y_val = _labels(holdout, graphs.mol_id[where["val"]], cfg.targets)
    y_test = _labels(holdout, graphs.mol_id[where["test"]], cfg.targets)
    teacher_model, _ = load_checkpoint(teacher_path, cfg.as_dict(), device)
    train_cfg = cfg.train_config(round)
    start = time.perf_counter()

    def holdout_mae(m: ASGNModel) -> dict[str, dict[str, float]]:
        """Val and test MAE per target of model ``m``."""
        errors = {}
        for part, y in (("val", y_val), ("test", y_test)):
            pred, _ = infer(m, graphs, where[part], train_cfg.eval_batch_size, train_cfg.amp)
            errors[part] = dict(zip(cfg.targets, map(float, mae(pred, y)), strict=True))
        return errors

    # the teacher's own error, before fine-tuning (the ASGN-T ablation without a run of its own)
    teacher_mae = holdout_mae(teacher_model)
    model = transfer(teacher_model)
    history: list[dict] = []
    if cfg.student:
        gen = torch.Generator().manual_seed(train_cfg.seed + 1)
        history = train_student(model, graphs, lab_idx, y_lab, where["val"], y_val, train_cfg, gen)
    student_mae = holdout_mae(model) if cfg.student else teacher_mae  # unchanged copy: same error
    save_checkpoint(out, model, cfg.as_dict(), round)
    best = min(history, key=lambda r: r["val_score"])["epoch"] if history else None
    record = {
        "round": round,
        "labelled": int(len(lab_idx)),
        **_label_failures(labelled_path, round),
        "val_molecules": int(len(where["val"])),  # the molecules the errors are over
        "test_molecules": int(len(where["test"])),
        "holdout_failures": unlabelled,  # val/test molecules left out: the oracle could not label them
        "fine_tuned": cfg.student,
        "val_mae": student_mae["val"],
        "test_mae": student_mae["test"],
        "teacher_val_mae": teacher_mae["val"],
        "teacher_test_mae": teacher_mae["test"],
        "epochs": len(history),
        "best_epoch": best,
        "device": str(device),
        "seconds": time.perf_counter() - start,
        "history": history,
    }
    write_json(record, summary)
    log.info("round %d, %d labels: test MAE %s", round, len(lab_idx), record["test_mae"])
    return record


def pseudo_label(
    run_json: Path, data: Path, split_path: Path, labelled_path: Path, checkpoint: Path, out: Path
) -> pa.Table:
    """The student's predictions for every unlabelled pool molecule (and for no labelled one)."""
    cfg = RunConfig.read(run_json)
    device = resolve_device(cfg.device)
    graphs, where = _load(data, read_split(split_path), device)
    _, unl_idx = _pool_parts(graphs, where, pq.read_table(labelled_path)["mol_id"].to_numpy())
    model, _ = load_checkpoint(checkpoint, cfg.as_dict(), device)
    train_cfg = cfg.train_config(0)
    pred, _ = infer(model, graphs, unl_idx, train_cfg.eval_batch_size, train_cfg.amp)
    table = _frame(graphs.mol_id[unl_idx], pred.astype(np.float64), cfg.targets)
    write_table(table, out)
    return table


def select(
    run_json: Path,
    embeddings: Path,
    labelled_path: Path,
    round: int,
    out: Path,
    data: Path | None = None,
    split_path: Path | None = None,
    checkpoint: Path | None = None,
    student_summary: Path | None = None,
    failures: Path | None = None,
) -> pa.Table:
    """The next ``batch`` pool molecules to label, by the run's strategy, in pick order.

    Molecules listed in ``failures`` (label_failures.parquet: the oracle could not label them) are
    left out of the pool.

    Embedding strategies (kcenter, random) read only the embeddings. Uncertainty strategies also
    need the graphs (``data``, ``split_path``) and a ``checkpoint``: the round's student for
    mc_dropout; for qbc the round's teacher, from which ``committee`` students are fine-tuned, each on
    its own bootstrap resample of the labelled molecules, for as many epochs as the round's student
    needed (``student_summary``), so selection never sees validation labels.
    """
    cfg = RunConfig.read(run_json)
    emb_table = pq.read_table(embeddings)
    ids = emb_table["mol_id"].to_numpy().astype(str)
    labelled_frame = pq.read_table(labelled_path).to_pandas()
    labelled = np.isin(ids, labelled_frame.mol_id.to_numpy().astype(str))
    # molecules the oracle failed on have left the pool: neither candidates nor centres
    keep = ~np.isin(ids, pq.read_table(failures)["mol_id"].to_numpy().astype(str)) if failures else None
    seed = int(np.random.SeedSequence([cfg.seed, round, 1]).generate_state(1)[0] % 2**31)
    device = resolve_device(cfg.device)
    strategy = get_strategy(cfg.strategy)
    if strategy.needs == "embeddings":
        X = emb_table["embedding"].combine_chunks().flatten().to_numpy().reshape(len(ids), -1)
    else:
        X = _uncertainty(
            cfg,
            strategy.needs,
            ids,
            labelled,
            labelled_frame,
            data,
            split_path,
            checkpoint,
            student_summary,
            round,
            seed,
            device,
        )
    if keep is not None:
        ids, X, labelled = ids[keep], X[keep], labelled[keep]
    picks, score = strategy.pick(X, labelled, cfg.batch, seed=seed, device=device)
    table = pa.table({"mol_id": ids[picks], "pick": np.arange(len(picks)), "distance": score})
    write_table(table, out)
    log.info(
        "round %d: %s picked %d of %d unlabelled", round, cfg.strategy, len(picks), int((~labelled).sum())
    )
    return table


def _uncertainty(
    cfg, needs, ids, labelled, labelled_frame, data, split_path, checkpoint, summary, round, seed, device
) -> np.ndarray:
    """Prediction variance [N] of the pool molecules ``ids`` (NaN for labelled ones)."""
    from .uncertainty import (
        committee_predictions,
        mc_dropout_predictions,
        prediction_variance,
        train_committee,
    )

    if data is None or split_path is None or checkpoint is None:
        raise ValueError(f"strategy {cfg.strategy!r} needs --data, --split-path and --checkpoint")
    graphs, where = _load(data, read_split(split_path), device)
    position = dict(zip(graphs.mol_id[where["pool"]], where["pool"], strict=True))
    todo = np.flatnonzero(~labelled)
    index = np.array([position[m] for m in ids[todo]], dtype=np.int64)
    model, _ = load_checkpoint(checkpoint, cfg.as_dict(), device)
    y_lab = _labels(labelled_frame, labelled_frame.mol_id.to_numpy(), cfg.targets)
    train_cfg = cfg.train_config(round)
    if needs == "student":
        samples = mc_dropout_predictions(
            model, graphs, index, cfg.mc_samples, seed, train_cfg.eval_batch_size
        )
    else:  # committee
        if summary is None:
            raise ValueError("strategy 'qbc' needs --student-summary (the round's student.json: its epochs)")
        best = json.loads(Path(summary).read_text()).get("best_epoch")
        train_cfg.student_max_epochs = (best or 0) + 1
        lab_index = np.array([position[m] for m in labelled_frame.mol_id], dtype=np.int64)
        members = train_committee(
            model,
            graphs,
            lab_index,
            y_lab,
            np.zeros(0, np.int64),
            y_lab[:0],
            train_cfg,
            cfg.committee,
            seed,
            bootstrap=True,
        )
        samples = committee_predictions(members, graphs, index, train_cfg.eval_batch_size)
    scale = np.nanstd(y_lab, axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    scores = np.full(len(ids), np.nan)
    scores[todo] = prediction_variance(samples, scale)
    return scores
