"""The kernel student (``student_kind: krr``): kernel ridge regression on FCHL19, one model per
target, fitted on a round's labelled molecules with (sigma, lambda) chosen on the validation
molecules (:func:`pipeline.learn.kernel_ridge.select`), in place of the network student.

It is the field's standard learner at small label budgets (issue #25's anchor), so a benchmark
method with it sits on the same split and labels as the network's by construction. Its checkpoint
(``student.pt``) holds what predicting needs but the training molecules' FCHL19 vectors, which are
recomputed from the graphs by id (:func:`save_kernel_student`, :func:`load_kernel_student`): ~100 MB
of vectors at 1,000 labels against ~3 s to compute them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.config.training import KernelSettings
from pipeline.config.units import EXTENSIVE_TARGETS
from pipeline.data.graphs import GraphSet
from pipeline.learn.kernel_ridge import AtomSet, KernelRidge, fchl19, local_kernels, select

__all__ = [
    "KERNEL_STUDENT_VERSION",
    "KernelStudent",
    "fit_kernel_student",
    "load_kernel_student",
    "save_kernel_student",
]

#: 1: per target sigma, lambda, references and dual coefficients; the training molecules by id
KERNEL_STUDENT_VERSION = 1


def elements_of(graphs: GraphSet) -> list[int]:
    """The atomic numbers in ``graphs``: the FCHL19 channels every set of a run is computed with."""
    return sorted(int(z) for z in torch.unique(graphs.z).tolist())


def atoms_of(graphs: GraphSet, index: np.ndarray, elements: Sequence[int]) -> AtomSet:
    """FCHL19 vectors of the molecules at positions ``index`` of ``graphs`` (in that order)."""
    batch = graphs.batch(np.asarray(index, dtype=np.int64))
    return fchl19(
        batch.z.cpu().numpy(),
        batch.pos.cpu().numpy().astype(np.float64),
        batch.atom_ptr.cpu().numpy(),
        elements,
    )


@dataclass
class KernelStudent:
    """One fitted :class:`KernelRidge` per target, on the same training molecules (``train_ids``)."""

    targets: list[str]
    models: dict[str, KernelRidge]
    train_ids: np.ndarray  # mol_id of the training molecules, in the order of the dual coefficients
    elements: list[int]
    grid: dict[str, dict[str, float]]  # target -> "sigma,lambda" -> validation MAE

    def predict(self, graphs: GraphSet, index: np.ndarray, chunk: int = 1000) -> np.ndarray:
        """[n, T] predictions for the molecules at positions ``index`` of ``graphs``, ``chunk``
        molecules at a time (FCHL19 holds ~6 kB per atom: ~100 MB per 1,000 QM9 molecules)."""
        index = np.asarray(index, dtype=np.int64)
        out = np.zeros((len(index), len(self.targets)))
        sigmas = sorted({m.sigma for m in self.models.values()})
        for start in range(0, len(index), chunk):
            part = atoms_of(graphs, index[start : start + chunk], self.elements)
            kernels = dict(zip(sigmas, local_kernels(part, self._train(graphs), sigmas), strict=True))
            for k, target in enumerate(self.targets):
                model = self.models[target]
                out[start : start + chunk, k] = model.predict(part, kernels[model.sigma])
        return out

    def _train(self, graphs: GraphSet) -> AtomSet:
        """The training molecules' vectors (computed once, then shared by every model)."""
        train = next(iter(self.models.values())).train
        if train is None:
            train = atoms_of(graphs, graphs.index_of(self.train_ids), self.elements)
            for model in self.models.values():
                model.train = train
        return train

    def chosen(self) -> dict[str, dict[str, float]]:
        """Per target, the chosen sigma and lambda."""
        return {t: {"sigma": m.sigma, "lambda": m.lam} for t, m in self.models.items()}


def fit_kernel_student(
    graphs: GraphSet,
    train: np.ndarray,
    y_train: np.ndarray,
    val: np.ndarray,
    y_val: np.ndarray,
    targets: Sequence[str],
    settings: KernelSettings,
) -> KernelStudent:
    """A kernel student fitted on the molecules at positions ``train`` of ``graphs`` (labels
    ``y_train`` [n, T]), each target's (sigma, lambda) chosen on the validation molecules ``val``
    (``y_val`` [m, T]) from ``settings``' grid. Extensive targets (U0) are learnt after per-element
    references fitted on the training labels, the others after their mean. A target's missing
    labels (NaN: the oracle failed on it) leave those molecules out of its fit and its score.

    The training molecules are the same for every target (the dual coefficients of a target with
    missing labels are zero there), so one kernel serves every target at prediction."""
    elements = elements_of(graphs)
    train_atoms = atoms_of(graphs, train, elements)
    val_atoms = atoms_of(graphs, val, elements)
    # one kernel per sigma for every target: a target's missing labels only drop rows and columns
    k_train = local_kernels(train_atoms, train_atoms, settings.sigmas)
    k_val = local_kernels(val_atoms, train_atoms, settings.sigmas)
    models, grid = {}, {}
    for k, target in enumerate(targets):
        has, scored = np.isfinite(y_train[:, k]), np.isfinite(y_val[:, k])
        if not has.any() or not scored.any():
            raise ValueError(
                f"krr student: no {'training' if not has.any() else 'validation'} label of {target}"
            )
        kernels = _block(k_train, has, has), _block(k_val, scored, has)
        model, scores = select(
            _rows(train_atoms, has), y_train[has, k], _rows(val_atoms, scored), y_val[scored, k],
            settings.sigmas, settings.lambdas, extensive=target in EXTENSIVE_TARGETS, kernels=kernels,
        )  # fmt: skip
        if not has.all():  # back onto every training molecule: zero weight where the label is missing
            alpha = np.zeros(len(has))
            alpha[has] = model.alpha
            model.alpha = alpha
        model.train = train_atoms  # one set of vectors for every target
        models[target] = model
        grid[target] = {f"{s:g},{lam:g}": v for (s, lam), v in scores.items()}
    return KernelStudent(list(targets), models, graphs.mol_id[train].astype(str), elements, grid)


def _block(kernels: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """[S, rows, columns] of kernels [S, n, m] (no copy when every row and column is kept)."""
    return kernels if rows.all() and columns.all() else kernels[:, rows][:, :, columns]


def _rows(atoms: AtomSet, keep: np.ndarray) -> AtomSet:
    return atoms if keep.all() else atoms.take(np.flatnonzero(keep))


def save_kernel_student(path: str | Path, student: KernelStudent, config: dict[str, Any], round: int) -> None:
    """Write ``student`` to ``path`` atomically, loadable with ``torch.load(weights_only=True)``."""
    from pipeline.data.store import atomic_path

    payload = {
        "version": KERNEL_STUDENT_VERSION,
        "kind": "krr",
        "config": config,
        "run": config.get("run"),
        "round": int(round),
        "targets": list(student.targets),
        "elements": list(student.elements),
        "train_ids": [str(m) for m in student.train_ids],
        "models": {
            t: {
                "sigma": m.sigma,
                "lambda": m.lam,
                "extensive": m.extensive,
                "elements": list(m.elements),
                "alpha": torch.from_numpy(m.alpha),
                "references": torch.from_numpy(m.references),
            }
            for t, m in student.models.items()
        },
        "grid": student.grid,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_kernel_student(
    path: str | Path, config: dict[str, Any] | None = None, round: int | None = None
) -> KernelStudent:
    """The kernel student stored at ``path``; with ``config`` (and ``round``), refused unless made for
    that run (and round) under it (:func:`pipeline.learn.checkpoint.check_made_for`)."""
    from pipeline.learn.checkpoint import check_made_for

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise ValueError(f"{path}: not a readable kernel student ({err})") from err
    if not isinstance(payload, dict) or payload.get("kind") != "krr":
        raise ValueError(f"{path}: not a kernel student (student_kind krr); it holds a network checkpoint")
    if payload.get("version") != KERNEL_STUDENT_VERSION:
        raise ValueError(
            f"{path}: a kernel student of version {payload.get('version')}, this pipeline reads "
            f"{KERNEL_STUDENT_VERSION}; delete it and the files made from it to make them again"
        )
    check_made_for(path, payload, config, round)
    models = {
        t: KernelRidge(
            float(m["sigma"]),
            float(m["lambda"]),
            bool(m["extensive"]),
            tuple(m["elements"]),
            alpha=m["alpha"].numpy(),
            references=m["references"].numpy(),
        )  # fmt: skip
        for t, m in payload["models"].items()
    }
    return KernelStudent(
        payload["targets"],
        models,
        np.array(payload["train_ids"], dtype=object),
        payload["elements"],
        payload["grid"],
    )
