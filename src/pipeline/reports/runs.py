"""Reports of active-learning runs: learning curves, embedding maps and per-round tables.

Everything here reads the per-round files of :mod:`pipeline.stages.rounds` (laid out as
:mod:`pipeline.plan.paths` says)::

    results/runs/{run}/round_{r:02d}/student.json      -> learning_curve, round_table
    results/runs/{run}/round_{r:02d}/teacher.json      -> round_table
    results/runs/{run}/round_{r:02d}/embeddings.parquet, labelled.parquet, selected.parquet
                                                        -> embedding_map

Tables are built by pure functions (:func:`learning_curve`, :func:`round_table`, :func:`pca_2d`);
the ``write_*`` functions and :func:`embedding_map` write CSV or PNG atomically and return what they
wrote (the figure, for PNGs), so tests can inspect it. Figures are drawn on matplotlib's Agg canvas
without pyplot: no display and no global figure state.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.config.units import TARGET_UNITS, TARGETS
from pipeline.data.store import atomic_path

__all__ = [
    "LEARNING_CURVE_COLUMNS",
    "embedding_map",
    "learning_curve",
    "pca_2d",
    "round_table",
    "write_learning_curve",
    "write_round_table",
]

#: Columns of :func:`learning_curve`'s long table, one row per (run, round, target).
LEARNING_CURVE_COLUMNS = [
    "run",
    "round",
    "labelled",
    "target",
    "val_mae",
    "test_mae",
    "teacher_val_mae",
    "teacher_test_mae",
]

_ROUND_DIR = re.compile(r"round_(\d+)")
_DPI = 150


# --------------------------------------------------------------------------------------------------
# reading a run's per-round summaries (the files are given: nothing scans a folder, so rounds of an
# older config left on disk are never read)


def _read_json(path: str | Path) -> dict:
    """A round's JSON summary; its round number must agree with a ``round_XX`` folder holding it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such summary (has that round finished?)")
    record = json.loads(path.read_text())
    if "round" not in record:
        raise ValueError(f"{path}: not a round summary (no 'round')")
    match = _ROUND_DIR.fullmatch(path.parent.name)
    if match and int(match.group(1)) != record["round"]:
        raise ValueError(
            f"{path}: says round {record['round']}, but lies in the folder of round {int(match.group(1))}"
        )
    return record


def _ranks(values: list[str], first: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Sort rank of each value: those in ``first`` in that order, then the others alphabetically."""
    rest = sorted(set(values) - set(first))
    return {v: k for k, v in enumerate([*first, *rest])}


def panel_grid(n_panels: int, title_height: float = 0.4) -> tuple[Figure, list]:
    """A figure (Agg canvas, no pyplot state) with one panel per target, at most 3 per row; unused
    panels hidden."""
    ncols = min(max(n_panels, 1), 3)
    nrows = max(math.ceil(n_panels / ncols), 1)
    fig = Figure(figsize=(4.6 * ncols, 3.6 * nrows + title_height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def learning_curve(runs: Mapping[str, Sequence[str | Path]]) -> pd.DataFrame:
    """Long table of the given rounds' val and test MAE, one row per (run, round, target).

    Args:
        runs: run name -> the ``round_XX/student.json`` files of its rounds (any order; each says
            its round). Only these are read: a round of an older config left in the run folder does
            not enter the curve.

    Returns:
        Columns :data:`LEARNING_CURVE_COLUMNS`: ``run, round, labelled, target, val_mae, test_mae,
        teacher_val_mae, teacher_test_mae``, sorted by run (in the order of ``runs``), round, and
        target (canonical order). ``labelled`` is |L_r|, the x of the curve. ``val_mae`` and
        ``test_mae`` are the student's (the round's result); ``teacher_val_mae`` and
        ``teacher_test_mae`` the teacher checkpoint's own, before fine-tuning. A MAE the student.json
        does not record (the teacher's, in rounds written before it was recorded) is NaN.
    """
    rows = []
    for run, paths in runs.items():
        for path in paths:
            student = _read_json(path)
            r = student["round"]
            val = student.get("val_mae", {})
            teacher_val = student.get("teacher_val_mae", {})
            teacher_test = student.get("teacher_test_mae", {})
            for target, test in student["test_mae"].items():
                rows.append(
                    (
                        run,
                        r,
                        student["labelled"],
                        target,
                        val.get(target, math.nan),
                        test,
                        teacher_val.get(target, math.nan),
                        teacher_test.get(target, math.nan),
                    )
                )
    table = pd.DataFrame(rows, columns=LEARNING_CURVE_COLUMNS)
    maes = ("val_mae", "test_mae", "teacher_val_mae", "teacher_test_mae")
    table = table.astype(
        {"run": str, "round": "int64", "labelled": "int64", "target": str, **dict.fromkeys(maes, float)}
    )
    ranks = {
        "run": _ranks(list(table["run"]), list(runs)),
        "target": _ranks(list(table["target"]), TARGETS),
    }
    table = table.sort_values(
        ["run", "round", "target"], key=lambda c: c.map(ranks[c.name]) if c.name in ranks else c
    )
    return table.reset_index(drop=True)


def round_table(teachers: Sequence[str | Path], students: Sequence[str | Path]) -> pd.DataFrame:
    """One row per round of a run, from its rounds' teacher.json and student.json: what each cost and
    gave. Only the files given are read (each says its round); a round may have either or both.

    Columns: ``round``, ``labelled`` (|L_r|), ``new_labels`` (labels added for this round; empty when
    the previous round's summary is missing), ``teacher_epochs``, ``teacher_seconds``,
    ``teacher_{term}_loss`` (each loss term of the teacher's last epoch: property, atom_type,
    distance, clustering, total, as recorded), ``student_epochs``, ``student_best_epoch``,
    ``student_seconds``, ``fine_tuned``, and ``test_mae_{target}`` per target.
    Stages that have not finished leave their columns empty.
    """
    by_round: dict[int, dict[str, dict]] = {}
    for kind, paths in (("teacher", teachers), ("student", students)):
        for path in paths:
            record = _read_json(path)
            if kind in by_round.setdefault(record["round"], {}):
                raise ValueError(f"{path}: a second {kind} summary of round {record['round']}")
            by_round[record["round"]][kind] = record
    rows = []
    for r in sorted(by_round):
        teacher, student = by_round[r].get("teacher"), by_round[r].get("student")
        row: dict = {"round": r, "labelled": (student or teacher)["labelled"]}
        if teacher is not None:
            epochs = teacher.get("epochs", [])
            row["teacher_epochs"] = len(epochs)
            row["teacher_seconds"] = teacher.get("seconds")
            last = epochs[-1] if epochs else {}
            row.update({f"teacher_{k}_loss": v for k, v in last.items() if k not in ("epoch", "seconds")})
        if student is not None:
            row["student_epochs"] = student.get("epochs")
            row["student_best_epoch"] = student.get("best_epoch")
            row["student_seconds"] = student.get("seconds")
            row["fine_tuned"] = student.get("fine_tuned")
            row.update({f"test_mae_{t}": v for t, v in student["test_mae"].items()})
        rows.append(row)

    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=["round", "labelled", "new_labels"])
    size = dict(zip(table["round"], table["labelled"], strict=True))  # round -> |L_r|
    added = [n if r == 0 else n - size[r - 1] if r - 1 in size else None for r, n in size.items()]
    table.insert(2, "new_labels", added)
    losses = sorted(c for c in table.columns if c.startswith("teacher_") and c.endswith("_loss"))
    maes = [c for c in table.columns if c.startswith("test_mae_")]
    order = ["round", "labelled", "new_labels", "teacher_epochs", "teacher_seconds", *losses]
    order += ["student_epochs", "student_best_epoch", "student_seconds", "fine_tuned", *maes]
    table = table.reindex(columns=order)
    for column in ("new_labels", "teacher_epochs", "student_epochs", "student_best_epoch"):
        table[column] = table[column].astype("Int64")  # integers that may be missing
    return table


# --------------------------------------------------------------------------------------------------
# writing


def _write_csv(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _save_png(fig: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)


def _unit_label(target: str) -> str:
    """Axis-label unit of a target, with exponents as superscripts ("bohr^3" -> bohr³)."""
    unit = TARGET_UNITS.get(target)
    if unit is None:
        return "units as given"
    return re.sub(r"\^(\d+)", r"$^{\1}$", unit)


def write_round_table(table: pd.DataFrame, csv_path: str | Path) -> pd.DataFrame:
    """Write :func:`round_table`'s table to CSV atomically; returns it."""
    _write_csv(table, csv_path)
    return table


def write_learning_curve(
    table: pd.DataFrame, csv_path: str | Path, png_path: str | Path, title: str = "Learning curve"
) -> Figure:
    """Write the learning-curve table to CSV and plot test MAE against the number of labels.

    One subplot per target, one line per run with a marker per round. A subplot's y axis is
    logarithmic when its test MAEs span more than a decade. Returns the figure (already saved).
    """
    _write_csv(table, csv_path)
    targets = list(dict.fromkeys(table["target"]))
    runs = list(dict.fromkeys(table["run"]))
    fig, axes = panel_grid(len(targets), title_height=0.4)
    if not targets:
        axes[0].set_visible(True)
        axes[0].text(
            0.5, 0.5, "no finished rounds yet", ha="center", va="center", transform=axes[0].transAxes
        )
        axes[0].set_axis_off()
    for ax, target in zip(axes, targets, strict=False):
        rows = table[table["target"] == target]
        for run in runs:
            line = rows[rows["run"] == run].sort_values("labelled")
            ax.plot(line["labelled"], line["test_mae"], marker="o", markersize=4, label=run)
        values = rows["test_mae"][rows["test_mae"] > 0]
        if len(values) and values.max() > 10 * values.min():
            ax.set_yscale("log")
        ax.set_title(target)
        ax.set_xlabel("labelled molecules")
        ax.set_ylabel(f"test MAE ({_unit_label(target)})")
        ax.grid(True, which="both", alpha=0.3)
    if targets:
        axes[0].legend(title="run", fontsize="small")
    fig.suptitle(title)
    _save_png(fig, png_path)
    return fig


# --------------------------------------------------------------------------------------------------
# embedding map


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of ``x`` [N, d] on their first two principal components (SVD of the centred data).

    Returns the coordinates [N, 2] and the fraction of the total variance each component explains [2].
    Signs are fixed (each component's largest loading is positive), so the map does not flip between
    runs of the same data. Missing components (d < 2 or N < 2) are zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a [N, d] array, got shape {x.shape}")
    coords, explained = np.zeros((len(x), 2)), np.zeros(2)
    if len(x) < 2:
        return coords, explained
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(s))
    components = vt[:k]
    components *= np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])[:, None]
    coords[:, :k] = centred @ components.T
    total = float((s**2).sum())
    if total > 0:
        explained[:k] = s[:k] ** 2 / total
    return coords, explained


def _read_ids(path: str | Path) -> np.ndarray:
    return pq.read_table(path, columns=["mol_id"])["mol_id"].to_numpy().astype(str)


def embedding_map(
    embeddings_parquet: str | Path,
    labelled_parquet: str | Path,
    selected_parquet: str | Path,
    png_path: str | Path,
    title: str = "",
) -> Figure:
    """2D PCA map of a round's pool embeddings: unlabelled (grey), labelled (blue), selected (red).

    ``selected`` are the molecules the round's strategy picked, to be labelled for the next round.
    Every labelled and selected molecule must be in the pool (the embeddings), and none may be both.
    Returns the figure (already saved); its three scatter collections hold the unlabelled, labelled
    and selected points, in that order, and the legend gives their counts.
    """
    table = pq.read_table(embeddings_parquet)
    ids = table["mol_id"].to_numpy().astype(str)
    emb = table["embedding"].combine_chunks().flatten().to_numpy().reshape(len(ids), -1)
    labelled, selected = _read_ids(labelled_parquet), _read_ids(selected_parquet)
    for name, picked in (("labelled", labelled), ("selected", selected)):
        outside = np.setdiff1d(picked, ids)
        if len(outside):
            raise ValueError(
                f"{len(outside)} {name} molecules are not in the pool embeddings {embeddings_parquet} "
                f"(e.g. {outside[0]!r}): are the files from the same run and round?"
            )
    both = np.intersect1d(labelled, selected)
    if len(both):
        raise ValueError(f"{len(both)} selected molecules are already labelled (e.g. {both[0]!r})")
    is_lab, is_sel = np.isin(ids, labelled), np.isin(ids, selected)
    xy, explained = pca_2d(emb)

    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    groups = [
        (~is_lab & ~is_sel, "unlabelled", {"s": 3, "c": "0.65", "alpha": 0.5}),
        (is_lab, "labelled", {"s": 12, "c": "tab:blue", "alpha": 0.8}),
        (is_sel, "selected for next round", {"s": 22, "c": "tab:red", "edgecolors": "k", "linewidths": 0.3}),
    ]
    for mask, name, style in groups:
        style = {"linewidths": 0, **style}
        ax.scatter(xy[mask, 0], xy[mask, 1], label=f"{name} ({int(mask.sum()):,})", rasterized=True, **style)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="best", fontsize="small", markerscale=1.5)
    ax.set_title(title or "Pool embeddings (PCA)")
    _save_png(fig, png_path)
    return fig
