"""Kernel ridge regression on FCHL19: the field's standard learner at small label budgets (issue #25's
anchor), fitted in seconds on the labels a round has.

Representation: qmllib's FCHL19 (Christensen et al., J. Chem. Phys. 152, 044107, 2020), one vector
per atom (:func:`fchl19`, from the atomic numbers and coordinates the graph shards store). Kernel:
qmllib's local Gaussian kernel between molecules, a sum over pairs of atoms of the same element,

    K(A, B) = sum_{a in A} sum_{b in B, Z_a = Z_b} exp(-||x_a - x_b||^2 / (2 sigma^2)),

computed here as one matrix product per element (:func:`local_kernels`, several sigmas from one set
of squared distances; tested equal to qmllib's ``get_local_kernel``, which runs a scalar loop about
30x slower on this project's CPU). Targets: per-element reference values fitted by least squares
on the training labels are subtracted first for extensive targets (U0: the kernel then learns the
residual; this won on validation in every case tried), the training mean for intensive ones.
Hyperparameters (sigma, lambda) are chosen on validation molecules (:func:`select`), never on test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["AtomSet", "KernelRidge", "fchl19", "local_kernels", "select", "self_kernels"]


@dataclass(frozen=True)
class AtomSet:
    """The atomic environments of a list of molecules: their FCHL19 vectors ``x`` [a, D] (float64),
    the molecule each atom belongs to (``owner`` [a], 0..n-1, molecules in order) and its atomic
    number ``z`` [a]."""

    x: np.ndarray
    owner: np.ndarray
    z: np.ndarray
    n_molecules: int

    def take(self, molecules: np.ndarray | Sequence[int]) -> AtomSet:
        """The molecules at positions ``molecules`` (in that order), renumbered 0..len-1."""
        molecules = np.asarray(molecules, dtype=np.int64)
        order = np.full(self.n_molecules, -1, dtype=np.int64)
        order[molecules] = np.arange(len(molecules))
        keep = order[self.owner] >= 0
        new_owner = order[self.owner[keep]]
        perm = np.argsort(new_owner, kind="stable")
        return AtomSet(self.x[keep][perm], new_owner[perm], self.z[keep][perm], len(molecules))

    def counts(self, elements: Sequence[int]) -> np.ndarray:
        """[n, E] how many atoms of each element of ``elements`` every molecule has."""
        out = np.zeros((self.n_molecules, len(elements)))
        for k, element in enumerate(elements):
            np.add.at(out[:, k], self.owner[self.z == element], 1.0)
        return out


def fchl19(
    z: np.ndarray, pos: np.ndarray, atom_ptr: np.ndarray, elements: Sequence[int] | None = None, **settings
) -> AtomSet:
    """FCHL19 vectors of molecules given as flat arrays: atomic numbers ``z`` [a], coordinates ``pos``
    [a, 3] in Å, and ``atom_ptr`` [n + 1] (molecule m is atoms ``atom_ptr[m]:atom_ptr[m + 1]``, as
    :class:`pipeline.data.graphs.GraphSet` stores them). ``elements``: the atomic numbers the
    representation has channels for (default: those in ``z``; give the same list for every set a
    kernel compares). ``settings``: qmllib's ``generate_fchl19`` keywords (its defaults otherwise)."""
    from qmllib.representations import generate_fchl19  # Fortran extension: imported on first use

    z, pos, atom_ptr = np.asarray(z), np.asarray(pos, dtype=np.float64), np.asarray(atom_ptr)
    elements = sorted({int(e) for e in np.unique(z)}) if elements is None else list(elements)
    unknown = sorted(set(np.unique(z).tolist()) - set(elements))
    if unknown:
        raise ValueError(f"atomic numbers {unknown} are not among the representation's elements {elements}")
    vectors = []
    for m in range(len(atom_ptr) - 1):
        a, b = int(atom_ptr[m]), int(atom_ptr[m + 1])
        vectors.append(generate_fchl19(z[a:b], pos[a:b], elements=elements, pad=b - a, **settings))
    x = np.concatenate(vectors) if vectors else np.zeros((0, 0))
    owner = np.repeat(np.arange(len(atom_ptr) - 1), np.diff(atom_ptr))
    return AtomSet(np.ascontiguousarray(x, dtype=np.float64), owner, z.astype(np.int64), len(atom_ptr) - 1)


def squared_distances(
    xa: np.ndarray, xb: np.ndarray, na: np.ndarray | None = None, nb: np.ndarray | None = None
) -> np.ndarray:
    """[n_a, n_b] squared Euclidean distances between the rows of ``xa`` and ``xb`` by one matrix
    product (``na``, ``nb``: their squared norms, when known), rounding below zero clipped."""
    na = (xa**2).sum(1) if na is None else na
    nb = (xb**2).sum(1) if nb is None else nb
    return np.maximum(na[:, None] + nb[None, :] - 2.0 * (xa @ xb.T), 0.0)


def local_kernels(a: AtomSet, b: AtomSet, sigmas: Sequence[float], block: int = 4096) -> np.ndarray:
    """[S, n_a, n_b] the local Gaussian kernel between the molecules of ``a`` and ``b`` for each
    sigma: per element, the squared distances of its atoms in ``a`` to its atoms in ``b`` (one
    matrix product per block of ``block`` atoms of ``a``), their Gaussians, summed per molecule."""
    sigmas = [float(s) for s in sigmas]
    if not sigmas or min(sigmas) <= 0:
        raise ValueError(f"sigmas must be positive, got {sigmas}")
    out = np.zeros((len(sigmas), a.n_molecules, b.n_molecules))
    for element in np.intersect1d(np.unique(a.z), np.unique(b.z)):
        xb, ob = b.x[b.z == element], b.owner[b.z == element]
        nb = (xb**2).sum(1)
        to_b = _molecule_sums(ob, b.n_molecules)  # [atoms of b, n_b]: atom -> its molecule
        rows = np.flatnonzero(a.z == element)
        for start in range(0, len(rows), block):
            part = rows[start : start + block]
            d2 = squared_distances(a.x[part], xb, nb=nb)
            to_a = _molecule_sums(a.owner[part], a.n_molecules).T  # [n_a, atoms of the block]
            for k, sigma in enumerate(sigmas):
                out[k] += to_a @ (np.exp(d2 * (-0.5 / sigma**2)) @ to_b)
    return out


def self_kernels(atoms: AtomSet, sigma: float) -> np.ndarray:
    """[n] the local kernel of each molecule of ``atoms`` with itself, K(A, A) (the diagonal of
    ``local_kernels(atoms, atoms, [sigma])[0]`` without the n x n matrix): per element, the
    Gaussians of the squared distances between the molecule's atoms of that element, summed."""
    out = np.zeros(atoms.n_molecules)
    order = np.lexsort((atoms.z, atoms.owner))  # by molecule, then element: each block contiguous
    key = atoms.owner[order] * (int(atoms.z.max(initial=0)) + 1) + atoms.z[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(order)]
    x = atoms.x[order]
    for a, b in zip(starts, ends, strict=True):
        d2 = squared_distances(x[a:b], x[a:b])
        out[atoms.owner[order[a]]] += np.exp(d2 * (-0.5 / sigma**2)).sum()
    return out


def _molecule_sums(owner: np.ndarray, n_molecules: int):
    """[atoms, n] sparse 0/1 matrix, atom i -> its molecule ``owner[i]``: a product with it sums the
    atoms of each molecule (no dense one-hot, no unbuffered ``np.add.at``)."""
    from scipy.sparse import csr_matrix

    ones = np.ones(len(owner))
    return csr_matrix((ones, (np.arange(len(owner)), owner)), shape=(len(owner), n_molecules))


@dataclass
class KernelRidge:
    """KRR of one target on FCHL19 with the local Gaussian kernel: ``fit`` on training molecules,
    ``predict`` any others. ``extensive``: per-element references fitted by least squares on the
    training labels are subtracted first (else the training mean)."""

    sigma: float
    lam: float
    extensive: bool = False
    elements: tuple[int, ...] = ()
    train: AtomSet | None = None
    alpha: np.ndarray | None = None
    references: np.ndarray | None = None  # [E] per element (extensive) or [1] the mean

    def baseline(self, atoms: AtomSet) -> np.ndarray:
        """[n] what is subtracted before the kernel: sum of element references, or the mean."""
        if self.extensive:
            return atoms.counts(self.elements) @ self.references
        return np.full(atoms.n_molecules, self.references[0])

    def fit(self, atoms: AtomSet, y: np.ndarray, kernel: np.ndarray | None = None) -> KernelRidge:
        """Fit on ``atoms``' molecules with labels ``y`` [n] (finite); ``kernel``: their [n, n] kernel at
        this sigma, if already computed."""
        y = np.asarray(y, dtype=np.float64)
        if not np.isfinite(y).all():
            raise ValueError("KRR needs a finite label for every training molecule")
        self.elements = tuple(sorted({int(e) for e in np.unique(atoms.z)} | set(self.elements)))
        if self.extensive:
            self.references = np.linalg.lstsq(atoms.counts(self.elements), y, rcond=None)[0]
        else:
            self.references = np.array([y.mean()])
        if kernel is None:
            kernel = local_kernels(atoms, atoms, [self.sigma])[0]
        self.train, self.alpha = atoms, _solve(kernel, y - self.baseline(atoms), self.lam)
        return self

    def predict(self, atoms: AtomSet, kernel: np.ndarray | None = None) -> np.ndarray:
        """[n] predictions for ``atoms``' molecules; ``kernel``: their [n, n_train] kernel, if computed."""
        if self.alpha is None or self.train is None:
            raise ValueError("fit the model first")
        if kernel is None:
            kernel = local_kernels(atoms, self.train, [self.sigma])[0]
        return kernel @ self.alpha + self.baseline(atoms)


def _solve(kernel: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """(K + lam I)^-1 y by Cholesky (K is positive semi-definite, so lam > 0 makes it definite)."""
    from scipy.linalg import cho_factor, cho_solve

    return cho_solve(cho_factor(kernel + lam * np.eye(len(kernel)), lower=True), y)


def select(
    train: AtomSet,
    y_train: np.ndarray,
    val: AtomSet,
    y_val: np.ndarray,
    sigmas: Sequence[float],
    lambdas: Sequence[float],
    extensive: bool = False,
    kernels: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[KernelRidge, dict[tuple[float, float], float]]:
    """The (sigma, lambda) of the grid with the lowest validation MAE, fitted on ``train``, and every
    grid point's validation MAE. Ties go to the first in grid order (sigmas outer, lambdas inner).
    ``kernels``: the [S, n, n] training and [S, m, n] validation kernels at ``sigmas``, if computed
    (several targets on the same molecules share them)."""
    if kernels is None:
        kernels = local_kernels(train, train, sigmas), local_kernels(val, train, sigmas)
    k_train, k_val = kernels
    y_val = np.asarray(y_val, dtype=np.float64)
    scores: dict[tuple[float, float], float] = {}
    best: KernelRidge | None = None
    for s, sigma in enumerate(sigmas):
        for lam in lambdas:
            model = KernelRidge(float(sigma), float(lam), extensive).fit(train, y_train, k_train[s])
            mae = float(np.mean(np.abs(model.predict(val, k_val[s]) - y_val)))
            scores[(model.sigma, model.lam)] = mae
            if best is None or mae < scores[(best.sigma, best.lam)]:
                best = model  # the fitted model itself: no refit
    return best, scores
