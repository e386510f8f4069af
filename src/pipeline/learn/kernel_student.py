"""The kernel student (``student_kind: krr``): kernel ridge regression with the local Gaussian
kernel, one model per target, fitted on a round's labelled molecules with (sigma, lambda) chosen on
the validation molecules (:func:`pipeline.learn.kernel_ridge.select`), in place of the network
student.

The atoms' vectors (``krr.features``) are FCHL19 (the field's standard learner at small label
budgets, issue #25's anchor: a benchmark method with it sits on the same split and labels as the
network's by construction), or the round's teacher's node embeddings (:class:`TeacherFeatures`,
issue #25's lever e: a kernel on the representation ASGN learnt from the whole pool), each
feature standardised on the training atoms. Its checkpoint (``student.pt``) holds what predicting
needs but the training molecules' vectors, which are recomputed from the graphs by id (and, for
teacher features, the teacher, whose weights' checksum the checkpoint records):
:func:`save_kernel_student`, :func:`load_kernel_student`; ~100 MB of FCHL19 vectors at 1,000 labels
against ~3 s to compute them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipeline.config.training import KernelSettings
from pipeline.config.units import EXTENSIVE_TARGETS
from pipeline.data.graphs import GraphSet
from pipeline.learn.kernel_ridge import (
    AtomSet,
    KernelRidge,
    fchl19,
    local_kernels,
    select,
    self_kernels,
    squared_distances,
)

if TYPE_CHECKING:
    from pipeline.model.asgn import ASGNModel

__all__ = [
    "KERNEL_STUDENT_VERSION",
    "KernelStudent",
    "TeacherFeatures",
    "weights_sha256",
    "fit_kernel_student",
    "load_kernel_student",
    "save_kernel_student",
]

#: 1: per target sigma, lambda, references and dual coefficients; the training molecules by id.
#: 2: the features (fchl19 or teacher) and, for teacher features, their standardisation and the
#: teacher's checksum
KERNEL_STUDENT_VERSION = 2


def elements_of(graphs: GraphSet) -> list[int]:
    """The atomic numbers in ``graphs``: the FCHL19 channels every set of a run is computed with."""
    return sorted(int(z) for z in torch.unique(graphs.z).tolist())


def atoms_of(
    graphs: GraphSet, index: np.ndarray, elements: Sequence[int], teacher: TeacherFeatures | None = None
) -> AtomSet:
    """The atoms' vectors of the molecules at positions ``index`` of ``graphs`` (in that order):
    FCHL19, or ``teacher``'s standardised node embeddings."""
    if teacher is not None:
        return teacher(graphs, index)
    batch = graphs.batch(np.asarray(index, dtype=np.int64))
    return fchl19(
        batch.z.cpu().numpy(),
        batch.pos.cpu().numpy().astype(np.float64),
        batch.atom_ptr.cpu().numpy(),
        elements,
    )


@dataclass
class TeacherFeatures:
    """A teacher's node embeddings h [a, H] as the kernel's atom vectors (``krr.features:
    teacher``), each feature standardised (``mean``, ``scale`` [H], from the training atoms by
    :meth:`fit`), so that the sigma grid means the same whatever the embeddings' scale."""

    model: ASGNModel
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    batch_size: int = 256

    def raw(self, graphs: GraphSet, index: np.ndarray) -> AtomSet:
        """The unstandardised embeddings of the molecules at ``index``."""
        from pipeline.learn.inference import infer_nodes

        index = np.asarray(index, dtype=np.int64)
        x, z = infer_nodes(self.model, graphs, index, self.batch_size)
        counts = graphs.n_atoms[torch.as_tensor(index)].cpu().numpy() if len(index) else np.zeros(0, np.int64)
        return AtomSet(x.astype(np.float64), np.repeat(np.arange(len(index)), counts), z, len(index))

    def fit(self, atoms: AtomSet) -> AtomSet:
        """Standardise on ``atoms`` (the training molecules' raw embeddings); they, standardised."""
        self.mean = atoms.x.mean(axis=0)
        self.scale = np.maximum(atoms.x.std(axis=0), 1e-6)  # a constant feature stays 0, not NaN
        return self._standardised(atoms)

    def __call__(self, graphs: GraphSet, index: np.ndarray) -> AtomSet:
        if self.mean is None or self.scale is None:
            raise ValueError("fit the teacher features' standardisation on the training atoms first")
        return self._standardised(self.raw(graphs, index))

    def _standardised(self, atoms: AtomSet) -> AtomSet:
        return AtomSet((atoms.x - self.mean) / self.scale, atoms.owner, atoms.z, atoms.n_molecules)


@dataclass
class KernelStudent:
    """One fitted :class:`KernelRidge` per target, on the same training molecules (``train_ids``);
    ``teacher``: the features are its embeddings (else FCHL19)."""

    targets: list[str]
    models: dict[str, KernelRidge]
    train_ids: np.ndarray  # mol_id of the training molecules, in the order of the dual coefficients
    elements: list[int]
    grid: dict[str, dict[str, float]]  # target -> "sigma,lambda" -> validation MAE
    teacher: TeacherFeatures | None = None

    @property
    def features(self) -> str:
        """``krr.features``: what the kernel compares."""
        return "fchl19" if self.teacher is None else "teacher"

    def predict(self, graphs: GraphSet, index: np.ndarray, chunk: int = 1000) -> np.ndarray:
        """[n, T] predictions for the molecules at positions ``index`` of ``graphs``, ``chunk``
        molecules at a time (FCHL19 holds ~6 kB per atom: ~100 MB per 1,000 QM9 molecules)."""
        index = np.asarray(index, dtype=np.int64)
        out = np.zeros((len(index), len(self.targets)))
        sigmas = sorted({m.sigma for m in self.models.values()})
        for start in range(0, len(index), chunk):
            part = atoms_of(graphs, index[start : start + chunk], self.elements, self.teacher)
            kernels = dict(zip(sigmas, local_kernels(part, self._train(graphs), sigmas), strict=True))
            for k, target in enumerate(self.targets):
                model = self.models[target]
                out[start : start + chunk, k] = model.predict(part, kernels[model.sigma])
        return out

    def posterior_picks(
        self, graphs: GraphSet, index: np.ndarray, budget: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Greedy batch selection by posterior variance: the ``budget`` molecules among ``index``
        (positions in ``graphs``) that each target's Gaussian process leaves most uncertain, one at a
        time, each pick conditioning the others before the next.

        Each target's GP has the student's kernel at its chosen sigma as prior covariance and its
        lambda as the noise variance (KRR's predictions are that GP's posterior mean), conditioned on
        the training molecules: var(p) = k(p, p) - k_p^T (K + lambda I)^-1 k_p. A pick x then lowers
        every variance by cov(p, x)^2 / (var(x) + lambda), as if it were labelled (labels do not enter
        a GP's variance). The score adds the targets' variances, each in units of the candidates'
        mean prior variance k(p, p). Returns positions into ``index`` (in pick order) and each pick's
        score when it was picked. Memory: the candidates' atom vectors (FCHL19: ~3.4 kB per atom,
        ~1.2 GB for 20,000 QM9 molecules) and ``budget`` columns per target.
        """
        from scipy.linalg import cho_factor, cho_solve

        index = np.asarray(index, dtype=np.int64)
        if not 0 < budget <= len(index):
            raise ValueError(f"budget {budget} must be between 1 and the {len(index)} candidates")
        train = self._train(graphs)
        pool = atoms_of(graphs, index, self.elements, self.teacher)
        blocks = _element_blocks(pool)
        states = []
        for model in self.models.values():
            k_tt = local_kernels(train, train, [model.sigma])[0]
            factor = cho_factor(k_tt + model.lam * np.eye(len(k_tt)), lower=True)
            k_pt = local_kernels(pool, train, [model.sigma])[0]  # [n, N]
            prior = self_kernels(pool, model.sigma)
            var = prior - np.einsum("ij,ji->i", k_pt, cho_solve(factor, k_pt.T))
            states.append(
                {"model": model, "factor": factor, "k_pt": k_pt, "var": var, "unit": prior.mean(), "cols": []}
            )
        picks, scores = [], []
        available = np.ones(len(index), dtype=bool)
        for _ in range(budget):
            total = sum(np.maximum(st["var"], 0.0) / st["unit"] for st in states)
            total[~available] = -np.inf
            x = int(np.argmax(total))
            picks.append(x)
            scores.append(float(total[x]))
            available[x] = False
            for st in states:
                model, k_pt = st["model"], st["k_pt"]
                cov = _kernel_column(pool, blocks, x, model.sigma) - k_pt @ cho_solve(st["factor"], k_pt[x])
                for col, denom in st["cols"]:  # the earlier picks of this batch
                    cov -= col * (col[x] / denom)
                denom = st["var"][x] + model.lam
                st["var"] = st["var"] - cov**2 / denom
                st["cols"].append((cov, denom))
        return np.asarray(picks, dtype=np.int64), np.asarray(scores)

    def _train(self, graphs: GraphSet) -> AtomSet:
        """The training molecules' vectors (computed once, then shared by every model)."""
        train = next(iter(self.models.values())).train
        if train is None:
            train = atoms_of(graphs, graphs.index_of(self.train_ids), self.elements, self.teacher)
            for model in self.models.values():
                model.train = train
        return train

    def chosen(self) -> dict[str, dict[str, float]]:
        """Per target, the chosen sigma and lambda."""
        return {t: {"sigma": m.sigma, "lambda": m.lam} for t, m in self.models.items()}


def weights_sha256(model: torch.nn.Module) -> str:
    """Hex SHA-256 of a model's weights (every state-dict tensor, by name): what a kernel student on
    teacher features records of its teacher. Unlike the file's checksum it survives a checkpoint's
    settings being rewritten (a run that copies another's round 0 renames the copy's run)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _element_blocks(atoms: AtomSet) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per element: its atoms' vectors, their squared norms and their molecules."""
    out = {}
    for element in np.unique(atoms.z):
        keep = atoms.z == element
        x = atoms.x[keep]
        out[int(element)] = (x, (x**2).sum(1), atoms.owner[keep])
    return out


def _kernel_column(atoms: AtomSet, blocks: dict, m: int, sigma: float) -> np.ndarray:
    """[n] the local kernel between every molecule of ``atoms`` and its molecule ``m`` (one column of
    ``local_kernels(atoms, atoms, [sigma])[0]``, from the per-element ``blocks``)."""
    out = np.zeros(atoms.n_molecules)
    mine = atoms.owner == m
    for element in np.unique(atoms.z[mine]):
        x, norms, owner = blocks[int(element)]
        xm = atoms.x[mine & (atoms.z == element)]
        d2 = squared_distances(x, xm, na=norms)
        out += np.bincount(owner, weights=np.exp(d2 * (-0.5 / sigma**2)).sum(1), minlength=atoms.n_molecules)
    return out


def fit_kernel_student(
    graphs: GraphSet,
    train: np.ndarray,
    y_train: np.ndarray,
    val: np.ndarray,
    y_val: np.ndarray,
    targets: Sequence[str],
    settings: KernelSettings,
    teacher: ASGNModel | None = None,
) -> KernelStudent:
    """A kernel student fitted on the molecules at positions ``train`` of ``graphs`` (labels
    ``y_train`` [n, T]), each target's (sigma, lambda) chosen on the validation molecules ``val``
    (``y_val`` [m, T]) from ``settings``' grid. Extensive targets (U0) are learnt after per-element
    references fitted on the training labels, the others after their mean. A target's missing
    labels (NaN: the oracle failed on it) leave those molecules out of its fit and its score.
    ``settings.features`` "teacher": the atoms' vectors are ``teacher``'s node embeddings.

    The training molecules are the same for every target (the dual coefficients of a target with
    missing labels are zero there), so one kernel serves every target at prediction."""
    elements = elements_of(graphs)
    encoder = None
    if settings.features == "teacher":
        if teacher is None:
            raise ValueError("krr.features teacher: the kernel student needs the round's teacher")
        encoder = TeacherFeatures(teacher)
        train_atoms = encoder.fit(encoder.raw(graphs, train))
    else:
        train_atoms = atoms_of(graphs, train, elements)
    val_atoms = atoms_of(graphs, val, elements, encoder)
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
    return KernelStudent(list(targets), models, graphs.mol_id[train].astype(str), elements, grid, encoder)


def _block(kernels: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """[S, rows, columns] of kernels [S, n, m] (no copy when every row and column is kept)."""
    return kernels if rows.all() and columns.all() else kernels[:, rows][:, :, columns]


def _rows(atoms: AtomSet, keep: np.ndarray) -> AtomSet:
    return atoms if keep.all() else atoms.take(np.flatnonzero(keep))


def save_kernel_student(
    path: str | Path,
    student: KernelStudent,
    config: dict[str, Any],
    round: int,
    teacher_sha256: str | None = None,
) -> None:
    """Write ``student`` to ``path`` atomically, loadable with ``torch.load(weights_only=True)``;
    ``teacher_sha256``: the checksum of the weights of the teacher whose embeddings are its features
    (:func:`weights_sha256`)."""
    from pipeline.data.store import atomic_path

    if student.teacher is not None and teacher_sha256 is None:
        raise ValueError("a kernel student on teacher features records its teacher's checksum")
    payload = {
        "version": KERNEL_STUDENT_VERSION,
        "kind": "krr",
        "config": config,
        "run": config.get("run"),
        "round": int(round),
        "features": student.features,
        "teacher": None
        if student.teacher is None
        else {
            "sha256": teacher_sha256,
            "mean": torch.from_numpy(student.teacher.mean),
            "scale": torch.from_numpy(student.teacher.scale),
        },
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
    path: str | Path,
    config: dict[str, Any] | None = None,
    round: int | None = None,
    teacher: ASGNModel | None = None,
    teacher_sha256: str | None = None,
) -> KernelStudent:
    """The kernel student stored at ``path``; with ``config`` (and ``round``), refused unless made for
    that run (and round) under it (:func:`pipeline.learn.checkpoint.check_made_for`). One on teacher
    features needs that ``teacher`` (and refuses a ``teacher_sha256`` other than its own)."""
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
    encoder = None
    if payload["features"] == "teacher":
        stored = payload["teacher"]
        if teacher is None:
            raise ValueError(
                f"{path}: a kernel student on a teacher's embeddings; give the teacher it was fitted on"
            )
        if teacher_sha256 is not None and teacher_sha256 != stored["sha256"]:
            raise ValueError(
                f"{path} was fitted on the embeddings of another teacher (checksum "
                f"{stored['sha256'][:12]}..., given {teacher_sha256[:12]}...): give that round's "
                "teacher.pt, or make the student again"
            )
        encoder = TeacherFeatures(teacher, stored["mean"].numpy(), stored["scale"].numpy())
    return KernelStudent(
        payload["targets"],
        models,
        np.array(payload["train_ids"], dtype=object),
        payload["elements"],
        payload["grid"],
        encoder,
    )
