"""The per-round stages of an active-learning run, file in -> file out.

Each stage is one function here and one ``pipeline <stage>`` command (:mod:`pipeline.cli`), which is
what the Snakemake rules call. Round r:

    label         L_r = L_{r-1} + oracle(selected_{r-1})       (round 0: oracle(initial picks))
    teacher       teacher_r from teacher_{r-1}, learns L_r and pseudo_labels_{r-1}
    embed         z_G of every pool molecule under teacher_r
    student       teacher_r's weights fine-tuned on L_r; val and test MAE
    pseudo_label  student_r's predictions for the unlabelled pool
    select        b new pool molecules (strategy from the run config)

The label stages live in :mod:`pipeline.label.oracle` (``label_round``, ``label_holdout``: they need no
torch). Only they read the answer key; every other stage sees labels only through labelled.parquet
(and the student, for early stopping and its reported error, the held-out val/test labels).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.config import registry
from pipeline.config.settings import RunConfig
from pipeline.data.store import write_json, write_table
from pipeline.label.provenance import read_labelling
from pipeline.learn.checkpoint import save_checkpoint
from pipeline.learn.inference import infer, infer_gradients, mae
from pipeline.learn.train import (
    TeacherData,
    TrainingDiverged,
    teacher_property_groups,
    train_student,
    transfer,
)
from pipeline.learn.uncertainty import committee_predictions, mc_dropout_predictions, train_committee
from pipeline.model.asgn import ASGNModel
from pipeline.selection.strategies import SelectionContext, get_strategy
from pipeline.stages.context import RoundContext, molecule_rows, split_ids

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# helpers


@contextmanager
def _training_of(cfg: RunConfig, round: int) -> Iterator[None]:
    """Name the run and the round in a diverged training's message (the loops name themselves and
    the epoch: :class:`~pipeline.learn.train.TrainingDiverged`)."""
    try:
        yield
    except TrainingDiverged as err:
        raise TrainingDiverged(f"run {cfg.run}, round {round}, {err}") from None


def _labels(frame: pd.DataFrame, ids: np.ndarray, targets: list[str]) -> np.ndarray:
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise ValueError(f"labels have no column for targets {missing} (columns: {list(frame.columns)})")
    return frame.set_index("mol_id").loc[ids, targets].to_numpy(np.float64)


def _label_failures(labelled_path: Path, round: int) -> dict[str, int | None]:
    """How many molecules the oracle could not label: this round's picks and all rounds' so far
    (from labelled.parquet's record, :func:`pipeline.label.oracle.read_labelling`; None if not recorded)."""
    records = read_labelling(labelled_path)
    this = [r["failed"] for r in records if r.get("round") == round]
    return {
        "label_failures": this[-1] if this else None,
        "label_failures_total": sum(r["failed"] for r in records) if records else None,
    }


def _frame(ids: np.ndarray, values: np.ndarray, targets: list[str]) -> pa.Table:
    return pa.table({"mol_id": pa.array(ids.astype(str)), **{t: values[:, k] for k, t in enumerate(targets)}})


# --------------------------------------------------------------------------------------------------
# stages


def initial(run_json: Path, data: Path, split_path: Path, out: Path) -> pa.Table:
    """Round 0's picks: random (seeded), or k-center on an untrained teacher's pool embeddings."""
    ctx = RoundContext.read(run_json, 0, data, split_path)
    cfg = ctx.cfg
    pool = split_ids(ctx.split, "pool")
    registry.initial_info(cfg.initial_strategy)  # an unknown name: the error lists the valid ones
    if cfg.initial_size > len(pool):
        raise ValueError(f"initial_size {cfg.initial_size} is larger than the pool ({len(pool)} molecules)")
    seed = ctx.seed("initial")
    if cfg.initial_strategy == "random":
        picks = np.sort(np.random.default_rng(seed).choice(len(pool), cfg.initial_size, replace=False))
        distance = np.full(len(picks), np.nan)
    elif cfg.initial_strategy == "kcenter":
        _, emb = infer(ctx.new_model(seed), ctx.graphs, ctx.where["pool"])
        selection = SelectionContext(emb, np.zeros(len(pool), bool), cfg.initial_size, seed)
        picks, distance = get_strategy("kcenter").pick(selection)
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
    helpers: Path | None = None,
    baseline: Path | None = None,
) -> dict:
    """teacher_r: warm-started from ``previous`` (teacher_{r-1}; a fresh initialisation without it or
    with ``train.warm_start`` off), learns L_r, ``pseudo`` labels and, for a run with helping
    properties, ``helpers`` (helpers.parquet: every pool molecule's) for ``train.teacher_epochs``
    epochs (round 0: ``train.pretrain_epochs``); with delta learning, every label and pseudo-label
    minus ``baseline``'s value. ``summary`` (teacher.json) also counts the round's picks the oracle
    could not label (``label_failures``; ``label_failures_total`` over all rounds)."""
    ctx = RoundContext.read(run_json, round, data, split_path)
    cfg, train_cfg, graphs = ctx.cfg, ctx.train, ctx.graphs
    labelled = pq.read_table(labelled_path).to_pandas()
    lab_idx, unl_idx = ctx.pool_parts(labelled.mol_id)
    base = ctx.baseline(baseline)  # delta learning: labels and pseudo-labels minus the cheap method's
    y_lab = _labels(labelled, graphs.mol_id[lab_idx], cfg.targets) - base[lab_idx]
    y_pseudo = None
    if pseudo is not None and cfg.pseudo_labels:
        y_pseudo = (
            _labels(pq.read_table(pseudo).to_pandas(), graphs.mol_id[unl_idx], cfg.targets) - base[unl_idx]
        )
    h_lab = h_unl = None
    columns = cfg.helper_columns
    if bool(columns) != (helpers is not None):
        raise ValueError(
            f"{run_json}: the run has helping properties {columns}, but no --helpers file was given"
            if columns
            else f"--helpers {helpers}: the run {cfg.run} has no helping properties (run key helpers)"
        )
    if helpers is not None:  # every pool molecule's (NaN where their oracle failed)
        values = molecule_rows(helpers, graphs.mol_id[np.concatenate([lab_idx, unl_idx])], columns)
        h_lab, h_unl = values[: len(lab_idx)], values[len(lab_idx) :]
    seed = ctx.seed("teacher")
    warm = previous is not None and train_cfg.warm_start
    model = ctx.load(previous, round - 1) if warm else ctx.new_model(seed)  # the previous round's
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    data_r = TeacherData(lab_idx, y_lab, unl_idx, y_pseudo, h_lab, h_unl)
    train_loop = registry.teacher_info(train_cfg.semi).train_function()  # unknown: lists the valid ones
    with _training_of(cfg, round):
        history = train_loop(model, graphs, data_r, train_cfg, gen, train_cfg.epochs(round))
    groups = teacher_property_groups(train_cfg.semi, data_r, train_cfg.weights)
    save_checkpoint(out, model, cfg.as_dict(), round, gen)
    record = {
        "round": round,
        "labelled": int(len(lab_idx)),
        "unlabelled": int(len(unl_idx)),
        **_label_failures(labelled_path, round),
        # L_p's groups as learnt: true labels, pseudo-labels (absent when not given or weighted 0),
        # helpers; each with its weight and label count
        "pseudo_labels": "pseudo_labels" in groups,
        "property_groups": groups,
        "helpers": {
            c: int(np.isfinite(np.concatenate([h_lab[:, k], h_unl[:, k]])).sum())
            for k, c in enumerate(columns)
        }
        if columns
        else {},
        "warm_start": warm,
        "device": str(ctx.device),
        "seconds": time.perf_counter() - start,
        "epochs": history,
    }
    write_json(record, summary)
    return record


def embed(run_json: Path, data: Path, split_path: Path, checkpoint: Path, out: Path) -> pa.Table:
    """Graph embeddings z_G of every pool molecule (labelled or not) under the teacher. A teacher
    in a ``round_XX`` folder (as the workflow keeps them) must be round XX's: one copied there from
    another round is refused."""
    ctx = RoundContext.read(run_json, 0, data, split_path)
    graphs, pool = ctx.graphs, ctx.where["pool"]
    folder = re.fullmatch(r"round_(\d+)", Path(checkpoint).parent.name)
    model = ctx.load(checkpoint, int(folder.group(1)) if folder else None)
    _, emb = infer(model, graphs, pool, ctx.train.eval_batch_size, ctx.train.amp)
    width = emb.shape[1]
    table = pa.table(
        {
            "mol_id": pa.array(graphs.mol_id[pool].astype(str)),
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
    round: int,
    out: Path,
    summary: Path,
    predictions: Path,
    teacher_path: Path | None = None,
    baseline: Path | None = None,
) -> dict:
    """student_r: teacher_r's weights (``teacher_path``) fine-tuned on L_r (early stopping on val);
    val and test MAE, and each val and test molecule's prediction (``predictions``:
    :func:`_write_predictions`).

    With ``student: false`` in the run config (ASGN-T) the teacher itself is evaluated and saved.
    With ``student_kind: krr`` the student is kernel ridge regression fitted on L_r, its grid chosen
    on val (:func:`_kernel_student`); it reads the teacher only for ``krr.features: teacher`` (a
    kernel on the teacher's embeddings). With delta learning
    (``baseline``), the student learns each delta target minus the cheap method's value; the errors
    are the same as those of that value plus the prediction, over the molecules that have one
    (``baseline_missing`` counts the val/test molecules the cheap method failed on).

    The errors are over the val/test molecules that have labels (``val_molecules``,
    ``test_molecules`` in ``summary``); ``holdout_failures`` counts those the oracle could not label
    (left out), ``label_failures`` the round's picks it could not label.
    """
    ctx = RoundContext.read(run_json, round, data, split_path)
    cfg, train_cfg, graphs = ctx.cfg, ctx.train, ctx.graphs
    where = dict(ctx.where)  # val and test narrowed below to the molecules with labels
    labelled = pq.read_table(labelled_path).to_pandas()
    holdout = pq.read_table(holdout_path).to_pandas()
    lab_idx, _ = ctx.pool_parts(labelled.mol_id)
    base = ctx.baseline(baseline)  # delta learning: every label minus the cheap method's value
    y_lab = _labels(labelled, graphs.mol_id[lab_idx], cfg.targets) - base[lab_idx]
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
    y_val = _labels(holdout, graphs.mol_id[where["val"]], cfg.targets) - base[where["val"]]
    y_test = _labels(holdout, graphs.mol_id[where["test"]], cfg.targets) - base[where["test"]]
    start = time.perf_counter()
    counts = {
        "round": round,
        "labelled": int(len(lab_idx)),
        **_label_failures(labelled_path, round),
        "val_molecules": int(len(where["val"])),  # the molecules the errors are over
        "test_molecules": int(len(where["test"])),
        "holdout_failures": unlabelled,  # val/test molecules left out: the oracle could not label them
    }
    if cfg.delta_targets:  # molecules the cheap method failed on: no prediction, out of the errors
        counts["delta"] = cfg.delta
        counts["baseline_missing"] = {
            part: int(np.isnan(base[where[part]]).any(axis=1).sum()) for part in ("val", "test")
        }
    labels = {"val": y_val, "test": y_test}
    if cfg.student_kind == "krr":
        held, kernel_record = _kernel_student(ctx, lab_idx, y_lab, where, labels, out, teacher_path)
        record = {**counts, **kernel_record}
        record["seconds"] = time.perf_counter() - start
        _write_predictions(predictions, ctx, where, held, labels, base)
        write_json(record, summary)
        log.info("round %d, %d labels: krr test MAE %s", round, len(lab_idx), record["test_mae"])
        return record
    if teacher_path is None:
        raise ValueError("the network student is fine-tuned from the round's teacher: give --teacher-path")
    teacher_model = ctx.load(teacher_path, round)

    def holdout(m: ASGNModel) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
        """Val and test MAE per target of model ``m``, and its predictions (as learnt: minus the base)."""
        errors, held = {}, {}
        for part, y in labels.items():
            held[part], _ = infer(m, graphs, where[part], train_cfg.eval_batch_size, train_cfg.amp)
            errors[part] = dict(zip(cfg.targets, map(float, mae(held[part], y)), strict=True))
        return errors, held

    model = transfer(teacher_model, cfg.targets)  # the targets' outputs (not the helpers')
    # the teacher's own error, before fine-tuning (the ASGN-T ablation without a run of its own)
    teacher_mae, held = holdout(model)
    history: list[dict] = []
    if cfg.student:
        gen = torch.Generator().manual_seed(ctx.seed("student"))
        with _training_of(cfg, round):
            history = train_student(model, graphs, lab_idx, y_lab, where["val"], y_val, train_cfg, gen)
    if cfg.student:  # else an unchanged copy: the same errors and predictions
        student_mae, held = holdout(model)
    else:
        student_mae = teacher_mae
    save_checkpoint(out, model, cfg.as_dict(), round)
    _write_predictions(predictions, ctx, where, held, labels, base)
    best = min(history, key=lambda r: r["val_score"])["epoch"] if history else None
    record = {
        **counts,
        "kind": "network",
        "fine_tuned": cfg.student,
        "val_mae": student_mae["val"],
        "test_mae": student_mae["test"],
        "teacher_val_mae": teacher_mae["val"],
        "teacher_test_mae": teacher_mae["test"],
        "epochs": len(history),
        "best_epoch": best,
        "device": str(ctx.device),
        "seconds": time.perf_counter() - start,
        "history": history,
    }
    write_json(record, summary)
    log.info("round %d, %d labels: test MAE %s", round, len(lab_idx), record["test_mae"])
    return record


def _write_predictions(
    path: Path,
    ctx: RoundContext,
    where: dict[str, np.ndarray],
    predicted: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    base: np.ndarray,
) -> None:
    """predictions.parquet: for each val and test molecule with a label (``mol_id``, ``part``), each
    target's prediction (``{target}``) and label (``{target}_label``) in the target's units, the
    cheap method's value added back under delta learning (NaN where it failed: no prediction).
    ``predicted`` and ``labels`` are as learnt (minus ``base``), [n, T] per part."""
    columns: dict[str, Any] = {"mol_id": [], "part": []}
    for target in ctx.cfg.targets:
        columns[target], columns[f"{target}_label"] = [], []
    for part, rows in where.items():
        if part not in predicted:
            continue
        columns["mol_id"] += ctx.graphs.mol_id[rows].astype(str).tolist()
        columns["part"] += [part] * len(rows)
        for k, target in enumerate(ctx.cfg.targets):
            columns[target] += (np.asarray(predicted[part])[:, k] + base[rows, k]).tolist()
            columns[f"{target}_label"] += (labels[part][:, k] + base[rows, k]).tolist()
    types = {name: pa.float64() for name in columns if name not in ("mol_id", "part")}
    schema = pa.schema([("mol_id", pa.string()), ("part", pa.string()), *types.items()])
    write_table(pa.table(columns, schema=schema), path)


def _kernel_student(
    ctx: RoundContext,
    lab_idx: np.ndarray,
    y_lab: np.ndarray,
    where: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    out: Path,
    teacher_path: Path | None,
) -> tuple[dict[str, np.ndarray], dict]:
    """The krr student of the round (:mod:`pipeline.learn.kernel_student`): fitted on the labelled
    molecules (on the embeddings of the teacher at ``teacher_path`` with ``krr.features:
    teacher``), its grid chosen on val; written to ``out``; its val and test predictions (as learnt)
    and its part of student.json."""
    from pipeline.learn.kernel_student import fit_kernel_student, save_kernel_student

    cfg, graphs = ctx.cfg, ctx.graphs
    teacher, teacher_sha256 = _kernel_teacher(ctx, teacher_path, ctx.round)
    fitted = fit_kernel_student(
        graphs, lab_idx, y_lab, where["val"], labels["val"], cfg.targets, cfg.krr, teacher
    )
    held = {part: fitted.predict(graphs, where[part]) for part in labels}
    errors = {
        part: dict(zip(cfg.targets, map(float, mae(held[part], y)), strict=True))
        for part, y in labels.items()
    }
    save_kernel_student(out, fitted, cfg.as_dict(), ctx.round, teacher_sha256)
    return held, {
        "kind": "krr",
        "features": fitted.features,
        "fine_tuned": False,
        "val_mae": errors["val"],
        "test_mae": errors["test"],
        "chosen": fitted.chosen(),  # per target: sigma and lambda
        "grid_val_mae": fitted.grid,
        "device": "cpu",
    }


def _kernel_teacher(
    ctx: RoundContext, teacher_path: Path | None, round: int | None
) -> tuple[ASGNModel | None, str | None]:
    """The teacher (of ``round``) whose embeddings a kernel student compares, and its file's checksum
    (``None, None`` unless ``krr.features`` is teacher)."""
    if ctx.cfg.krr.features != "teacher":
        return None, None
    if teacher_path is None:
        raise ValueError(
            "krr.features teacher: the kernel student reads the round's teacher; give --teacher-path"
        )
    from pipeline.learn.kernel_student import weights_sha256

    teacher = ctx.load(teacher_path, round)
    return teacher, weights_sha256(teacher)


def pseudo_label(
    run_json: Path,
    data: Path,
    split_path: Path,
    labelled_path: Path,
    checkpoint: Path,
    out: Path,
    baseline: Path | None = None,
    teacher_path: Path | None = None,
) -> pa.Table:
    """The student's predictions for every unlabelled pool molecule (and for no labelled one), in the
    targets' units (with delta learning, the cheap method's value plus the learnt difference). A
    kernel student on teacher features also reads that teacher (``teacher_path``)."""
    ctx = RoundContext.read(run_json, 0, data, split_path)
    _, unl_idx = ctx.pool_parts(pq.read_table(labelled_path)["mol_id"].to_numpy())
    # the student must be of the round the labels are: the last round labelled.parquet records
    round = max((r["round"] for r in read_labelling(labelled_path) if "round" in r), default=None)
    if ctx.cfg.student_kind == "krr":
        from pipeline.learn.kernel_student import load_kernel_student

        teacher, teacher_sha256 = _kernel_teacher(ctx, teacher_path, round)
        student = load_kernel_student(checkpoint, ctx.cfg.as_dict(), round, teacher, teacher_sha256)
        pred = student.predict(ctx.graphs, unl_idx)
    else:
        model = ctx.load(checkpoint, round)
        pred, _ = infer(model, ctx.graphs, unl_idx, ctx.train.eval_batch_size, ctx.train.amp)
    pred = pred.astype(np.float64) + ctx.baseline(baseline)[unl_idx]
    table = _frame(ctx.graphs.mol_id[unl_idx], pred, ctx.cfg.targets)
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
    baseline: Path | None = None,
    teacher_path: Path | None = None,
) -> pa.Table:
    """The next ``batch`` pool molecules to label, by the run's strategy, in pick order.

    Molecules listed in ``failures`` (label_failures.parquet: the oracle could not label them) are
    left out of the pool.

    Embedding strategies (kcenter, random, lcmd, bait, kmeanspp) read only the embeddings; with
    ``selection_features: student_gradients``, kcenter, lcmd, bait and kmeanspp pick on the
    student's (``checkpoint``) last-layer gradient features of the same molecules instead.
    Uncertainty strategies also need the graphs (``data``, ``split_path``) and a ``checkpoint``: the
    round's student for mc_dropout; for qbc the round's teacher, from which ``committee`` students are
    fine-tuned, each on its own bootstrap resample of the labelled molecules, for as many epochs as
    the round's student needed (``student_summary``), so selection never sees validation labels.
    krr_variance reads the round's kernel student (``checkpoint``; with ``krr.features: teacher``
    also ``teacher_path``) and picks by its Gaussian process's posterior variance.
    """
    ctx = RoundContext.read(run_json, round, data, split_path)
    cfg = ctx.cfg
    emb_table = pq.read_table(embeddings)
    ids = emb_table["mol_id"].to_numpy().astype(str)
    labelled_frame = pq.read_table(labelled_path).to_pandas()
    labelled = np.isin(ids, labelled_frame.mol_id.to_numpy().astype(str))
    # molecules the oracle failed on have left the pool: neither candidates nor centres
    in_pool = ~np.isin(ids, pq.read_table(failures)["mol_id"].to_numpy().astype(str)) if failures else None
    strategy = get_strategy(cfg.strategy)
    X = emb_table["embedding"].combine_chunks().flatten().to_numpy().reshape(len(ids), -1)
    model_parts = {}
    if registry.STRATEGIES[cfg.strategy].on_student_gradients(cfg.selection_features):
        model, position = _pool_model(ctx, checkpoint)
        index = np.array([position[m] for m in ids], dtype=np.int64)
        X = infer_gradients(model, ctx.graphs, index, ctx.train.eval_batch_size)
    elif strategy.needs == "kernel":
        model_parts = {"variance_picks": _kernel_variance(ctx, ids, checkpoint, teacher_path)}
    elif strategy.needs != "embeddings":
        model_parts = _model_parts(
            ctx, strategy.needs, ids, labelled_frame, checkpoint, student_summary, baseline
        )
    selection = SelectionContext(
        X, labelled, cfg.batch, ctx.seed("select"), ctx.device, in_pool=in_pool, **model_parts
    )
    with _training_of(cfg, round):  # qbc's committee trains in the pick
        picks, score = strategy.pick(selection)
    table = pa.table({"mol_id": ids[picks], "pick": np.arange(len(picks)), "distance": score})
    write_table(table, out)
    log.info(
        "round %d: %s picked %d of %d unlabelled",
        round, cfg.strategy, len(picks), int((~labelled[selection.pool]).sum()),
    )  # fmt: skip
    return table


def share_round_0(
    run_json: Path,
    source_run_json: Path,
    split_path: Path,
    source_split: Path,
    initial: Path,
    source_initial: Path,
    source_round: Path,
    out_round: Path,
) -> None:
    """Round 0 of a run, copied from another run's that did the same work (``share_round_0`` of a
    benchmark: :func:`pipeline.config.settings.round_0_sources` pairs them).

    Copies every round-0 artefact but the selection (:data:`pipeline.plan.paths.ROUND_0_COPIED`) from
    ``source_round`` into ``out_round``, each written atomically (the checkpoints with this run's
    settings in place of the source's, which later rounds check), after checking what makes the
    copy the run's own: the two run.json agree on every setting round 0 reads (all but
    :data:`pipeline.config.settings.NOT_READ_IN_ROUND_0` and the names), and the splits and initial picks
    are equal row for row. Raises ValueError naming the first difference otherwise.
    """
    import shutil

    from pipeline.config.settings import NOT_READ_IN_ROUND_0, run_json_path, without_paths
    from pipeline.data.store import atomic_path
    from pipeline.learn.checkpoint import config_differences
    from pipeline.plan.paths import ROUND_0_COPIED

    ignored = ["run", "benchmark", "method", *map(run_json_path, NOT_READ_IN_ROUND_0)]
    own, other = RunConfig.read(run_json).as_dict(), RunConfig.read(source_run_json).as_dict()
    differ = config_differences(without_paths(own, ignored), without_paths(other, ignored))
    if differ:
        raise ValueError(
            f"{run_json} and {source_run_json} differ in {', '.join(differ)}, which round 0 reads: "
            "the run cannot reuse the other's round 0"
        )
    for mine, theirs in ((split_path, source_split), (initial, source_initial)):
        if not pd.read_parquet(mine).equals(pd.read_parquet(theirs)):
            raise ValueError(f"{mine} differs from {theirs}: the run cannot reuse the other's round 0")
    for name in ROUND_0_COPIED:
        source = Path(source_round) / name
        with atomic_path(Path(out_round) / name) as tmp:
            if source.suffix == ".pt":  # a checkpoint records its run's settings: now this run's
                payload = torch.load(source, map_location="cpu", weights_only=True)
                torch.save({**payload, "config": own, "run": own["run"]}, tmp)
            else:
                shutil.copyfile(source, tmp)
    log.info("round 0 of %s copied from %s (%d files)", own["run"], source_round, len(ROUND_0_COPIED))


def _require_model_inputs(ctx: RoundContext, checkpoint: Path | None) -> None:
    """A strategy that reads a model (network or kernel) needs the graphs, the split and a checkpoint."""
    if ctx.data is None or ctx.split_path is None or checkpoint is None:
        raise ValueError(f"strategy {ctx.cfg.strategy!r} needs --data, --split-path and --checkpoint")


def _pool_model(ctx: RoundContext, checkpoint: Path | None) -> tuple[Any, dict[str, int]]:
    """The checkpoint's model (on the device) and each pool molecule's position in ``ctx.graphs``:
    what a strategy that reads a network is computed from."""
    _require_model_inputs(ctx, checkpoint)
    pool = ctx.where["pool"]
    return ctx.load(checkpoint, ctx.round), dict(zip(ctx.graphs.mol_id[pool], pool, strict=True))


def _kernel_variance(
    ctx: RoundContext, ids: np.ndarray, checkpoint: Path | None, teacher_path: Path | None
) -> Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]:
    """krr_variance's ``variance_picks``: rows of the pool molecules ``ids`` and a budget -> the
    round's kernel student's greedy posterior-variance picks among them."""
    from pipeline.learn.kernel_student import load_kernel_student

    _require_model_inputs(ctx, checkpoint)
    teacher, teacher_sha256 = _kernel_teacher(ctx, teacher_path, ctx.round)
    student = load_kernel_student(checkpoint, ctx.cfg.as_dict(), ctx.round, teacher, teacher_sha256)
    index = ctx.graphs.index_of(list(ids))

    def variance_picks(rows: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
        return student.posterior_picks(ctx.graphs, index[rows], budget)

    return variance_picks


def _model_parts(
    ctx: RoundContext,
    needs: str,
    ids: np.ndarray,
    labelled_frame: pd.DataFrame,
    checkpoint: Path | None,
    summary: Path | None,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """What an uncertainty strategy picks from besides the pool: ``samples``, the predictions of the
    pool molecules ``ids`` (rows of it -> [K, n, T]) by the checkpoint's model (mc_dropout: the
    student's MC-dropout samples; qbc: a committee fine-tuned from the teacher on bootstrap resamples
    of the labelled molecules), and ``y_labelled``, the labels (in ``labelled_frame``'s order) whose
    spread scales each target."""
    cfg = ctx.cfg
    model, position = _pool_model(ctx, checkpoint)
    if needs == "committee" and summary is None:
        raise ValueError("strategy 'qbc' needs --student-summary (the round's student.json: its epochs)")
    graphs = ctx.graphs
    index = np.array([position[m] for m in ids], dtype=np.int64)
    labelled_index = np.array([position[m] for m in labelled_frame.mol_id], dtype=np.int64)
    y_labelled = _labels(labelled_frame, labelled_frame.mol_id.to_numpy(), cfg.targets)
    if needs == "committee":  # fine-tuned from the teacher: the labels as it learnt them (deltas too)
        y_labelled = y_labelled - ctx.baseline(baseline)[labelled_index]
    seed, train_cfg = ctx.seed("select"), ctx.train
    if needs == "student":

        def samples(rows: np.ndarray) -> np.ndarray:
            return mc_dropout_predictions(
                model, graphs, index[rows], cfg.mc_samples, seed, train_cfg.eval_batch_size
            )

    else:  # the committee trains for as many epochs as the round's student needed
        best = json.loads(Path(summary).read_text()).get("best_epoch")
        train_cfg = dataclasses.replace(train_cfg, student_max_epochs=(best or 0) + 1)

        def samples(rows: np.ndarray) -> np.ndarray:
            members = train_committee(
                model, graphs, labelled_index, y_labelled, np.zeros(0, np.int64), y_labelled[:0],
                train_cfg, cfg.committee, seed, bootstrap=True,
            )  # fmt: skip
            return committee_predictions(members, graphs, index[rows], train_cfg.eval_batch_size)

    return {"samples": samples, "y_labelled": y_labelled}
