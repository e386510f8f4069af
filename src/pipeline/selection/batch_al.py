"""Batch active learning for regression: LCMD, BAIT and k-means++ on graph embeddings.

The strategies ``lcmd``, ``bait`` and ``kmeanspp`` are the selection methods of the ``bmdal-reg``
package (Holzmüller et al., "A Framework and Benchmark for Deep Batch Active Learning for
Regression", JMLR 2023), on the same input as k-center: the teacher's graph embeddings z_G, with the
labelled molecules as the training set and the other molecules of the pool as candidates. The
kernel is bmdal's ``'linear'`` base kernel on the embeddings, k(x, y) = x^T y: the embeddings are the
features (the paper's ``'ll'`` kernel, the last layer's features, is this kernel on the network's
penultimate layer). Per method, the settings (bmdal-reg's names; each is one of the configurations
its benchmark runs on the ``'linear'`` kernel, ``bmdal_reg/run_experiments.py``):

* ``lcmd`` (largest cluster maximum distance: the labelled points and the picks so far are cluster
  centres, each pool point belongs to its nearest; the next pick is the farthest point of the
  cluster with the largest sum of squared distances): TP mode (``sel_with_train=True``, the library's
  default and the paper's recommendation for LCMD: the labelled molecules are the first centres), no
  kernel transformation (``NN_lcmd-tp_linear``).
* ``kmeanspp`` (k-means++ seeding: each pick drawn with probability proportional to its squared
  distance to the nearest labelled molecule or earlier pick): TP mode (the library's default), no
  kernel transformation (``NN_kmeanspp-tp_linear``).
* ``bait`` (Ash et al., NeurIPS 2021: greedily the pick that most reduces the total posterior
  variance over the pool of a Bayesian linear model on the features, here with an intercept, below):
  P mode (``sel_with_train=False``, the library's default: the labelled molecules enter as the
  posterior's observations), forward selection only (``overselection_factor=1``: BAIT-F, the
  library's default), the kernel conditioned on the labelled molecules, ``('train', [sigma,
  factor])``, with ``factor`` the paper's automatic scale normalisation (mean k(x, x) over the
  labelled molecules becomes 1) and noise sigma = 1e-3 both for that posterior and for BAIT
  (``bait_sigma``), in float64 (``allow_float64=True``): ``NN_bait-f-p_linear_train`` with the
  paper's ``post_sigma=1e-3``. ``allow_kernel_space_posterior=False``: BAIT needs the feature
  matrix, which the kernel-space posterior (the library's choice above 1,024 dimensions) lacks.

No random projections (the paper's ``('rp', [512])``): they make the ``'grad'`` kernel's millions of
features tractable; z_G has ``model.hidden`` dimensions (96 by default), already fewer than 512, so a
sketch would only add noise.

The embeddings are taken in float64 and centred on the mean of the pool (labelled and candidates).
Distances do not change, so LCMD and k-means++ pick as on the raw embeddings (and squared distances
from ||x||^2 + ||y||^2 - 2 x.y lose less to rounding); for BAIT it is the paper's setting, whose linear
kernel acts on inputs standardised over the training and pool sets (here centred only, not scaled per
dimension, so that the geometry stays the one k-center sees). BAIT's features also get a constant
one, equal to the root mean square of the centred embeddings' norms: the intercept of a linear
readout (the paper's ``'ll'`` kernel has it too, from the last layer's bias), with the prior variance
of a typical k(x, x). Without it the model, y = w^T (x - mean), would treat the intercept as known,
and k groups' centred means, which are linearly dependent, would need only k - 1 picks to explain.

Where the library cannot take an empty labelled set (it builds no features from zero rows):
LCMD's first pick is then the library's own (the candidate of largest k(x, x), the farthest from the
mean), k-means++'s is drawn uniformly (seeded), and the library continues from that pick as its first
centre, which is how it proceeds itself; BAIT conditions on one zero vector, which in the linear kernel
is no observation at all (the posterior is the prior) and adds nothing to the pool's covariance, and
scales the kernel by the pool's mean k(x, x) instead.

Who computes (``backend``, :data:`BACKEND`): by default the pipeline, because bmdal-reg takes tens of times
k-center's time for the paper's 2,500 picks of 113,800 (docs/benchmarks.md, "Batch selection cost").
For LCMD and k-means++ the library evaluates, per pick, the kernel between the new centre and the
whole pool in float64. Both methods only need every candidate's nearest centre and distance to it, which
:class:`_Clusters` keeps exact while measuring only the candidates that a new centre could take (the
triangle inequality); the labelled molecules' distances come from k-center's screened matrix
products. LCMD then makes the library's picks: the same rules (TP mode, the nearest centre the
earliest of equally near ones, the largest cluster's farthest candidate, the lowest index on ties),
and the same picks on the benchmark's own rounds, but for distances equal to the last bit, which the
library (k(x, x) + k(c, c) - 2 k(x, c)) and this module (sums of squared differences, as k-center)
may round apart. k-means++ draws from the same distribution (each candidate in proportion to its
squared distance) with other random numbers than the library's ``torch.multinomial``, which draws an
exponential variate for every candidate on every pick (3 ms for 113,800 candidates, here): the
inverse CDF of one uniform here. BAIT is the library's own, features and kernel transformation
included, with its per-pick update of the [N, d] feature matrix kept implicit
(:func:`_implicit_bait`): one pass over the features per pick instead of three. Same picks on the
benchmark's rounds and in the tests, and scores no less accurate (measured against the posterior
computed afresh, 9 features, 23 picks: largest relative error 4% here, 12% in the library; both
lose digits once the picks outnumber the features, and pick the same there).
``backend="bmdal-reg"`` picks with the library as it is (the comparison of
``benchmarks/selection.py`` and the tests).

Randomness (k-means++'s draws; the fill-up with random candidates if a method stops early, logged as
a warning) comes from torch's global generator, seeded with the strategy's ``seed`` inside
:func:`torch.random.fork_rng`: the picks are a function of the seed, and the caller's random state is
as it was. No score per pick (the library returns none): the scores are NaN.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipeline.learn.runtime import seeded_global_rng
from pipeline.selection.distances import min_sq_dist_to, screening, sq_dist, validated

if TYPE_CHECKING:
    from pipeline.selection.strategies import SelectionContext

log = logging.getLogger(__name__)

__all__ = ["BACKEND", "METHODS", "SIGMA", "bait", "batch_select", "kmeanspp", "lcmd"]

#: BAIT's noise standard deviation, for the posterior on the labelled molecules and for BAIT itself
#: (the paper's post_sigma: sigma^2 = 1e-6 on the scale-normalised kernel, in float64).
SIGMA = 1e-3

#: Strategy name -> bmdal-reg's settings (select_batch keywords; BAIT's kernel transformation is
#: added per call, with the scale factor of the labelled set).
METHODS: dict[str, dict[str, Any]] = {
    "lcmd": {"selection_method": "lcmd", "sel_with_train": True},
    "bait": {
        "selection_method": "bait",
        "sel_with_train": False,
        "overselection_factor": 1.0,
        "bait_sigma": SIGMA,
        "allow_float64": True,
        "allow_kernel_space_posterior": False,
    },
    "kmeanspp": {"selection_method": "kmeanspp", "sel_with_train": True},
}

#: Who picks by default (see the module docstring): "pipeline"; bmdal-reg as it is takes tens of
#: times k-center's time for the paper's 2,500 of 113,800 (docs/benchmarks.md).
BACKEND = "pipeline"
#: The methods the pipeline computes on :class:`_Clusters` (BAIT: bmdal-reg's, :func:`_implicit_bait`).
CLUSTER_METHODS = ("lcmd", "kmeanspp")

#: _Clusters' screening margin (relative): far beyond float64 rounding, far below any real gap.
_MARGIN = 1e-9


def lcmd(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """LCMD (TP mode, linear kernel) over the pool, on :class:`_Clusters`; no score (NaN)."""
    return _pick(ctx, "lcmd")


def bait(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """BAIT-F (bmdal-reg, P mode, linear kernel conditioned on the labelled set); no score (NaN)."""
    return _pick(ctx, "bait")


def kmeanspp(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding (TP mode, linear kernel), seeded, on :class:`_Clusters`; no score (NaN)."""
    return _pick(ctx, "kmeanspp")


def _pick(ctx: SelectionContext, method: str) -> tuple[np.ndarray, np.ndarray]:
    """The method's picks over the pool: molecules left out are neither candidates nor labelled."""
    rows = ctx.pool
    picks = batch_select(
        ctx.embeddings[rows], ctx.labelled[rows], ctx.budget, method, seed=ctx.seed, device=ctx.device
    )
    return rows[picks], np.full(len(picks), np.nan)


def batch_select(
    embeddings: np.ndarray | torch.Tensor,
    labelled: np.ndarray | torch.Tensor | list[int],
    budget: int,
    method: str,
    *,
    seed: int,
    device: str | torch.device | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """``budget`` distinct unlabelled molecules picked by ``method`` (see the module docstring).

    Args:
        embeddings: [N, d] real array (NumPy or torch), finite: one embedding per molecule.
        labelled: the labelled molecules, a boolean mask [N] or indices (possibly none): never picked,
            the method's training set.
        budget: molecules to pick, at most the unlabelled ones.
        method: ``"lcmd"``, ``"bait"`` or ``"kmeanspp"``.
        seed: seeds the method's random draws (torch's global generator, restored afterwards).
        device: where to compute; default: the device of ``embeddings`` (CPU for NumPy).
        backend: ``"pipeline"`` (this module's LCMD and k-means++, and BAIT with its updates
            implicit) or ``"bmdal-reg"`` (the library's selection methods as they are); default:
            :data:`BACKEND`.

    Returns:
        int64 NumPy array [budget] of molecule indices, in pick order.
    """
    if method not in METHODS:
        raise ValueError(f"unknown batch method {method!r}; choose one of {', '.join(METHODS)}")
    backend = BACKEND if backend is None else backend
    if backend not in ("pipeline", "bmdal-reg"):
        raise ValueError(f"backend must be 'pipeline' or 'bmdal-reg', got {backend!r}")
    X, is_labelled, budget = validated(embeddings, labelled, budget, device)
    mask = is_labelled.cpu().numpy()
    train, pool = np.flatnonzero(mask), np.flatnonzero(~mask)
    if budget == 0:
        return np.empty(0, dtype=np.int64)
    X = X - X.mean(dim=0)
    with seeded_global_rng(seed, X.device):
        if backend == "pipeline" and method in CLUSTER_METHODS:
            picks = _cluster_select(X, train, pool, budget, method)
        else:
            picks = _select(X, train, pool, budget, method, implicit=backend == "pipeline")
    if len(picks) != budget or len(np.unique(picks)) != budget or mask[picks].any():
        raise RuntimeError(f"{backend}'s {method} gave {len(picks)} picks, not {budget} distinct unlabelled")
    return picks


def _first_pick(X: torch.Tensor, pool: np.ndarray, method: str) -> int:
    """The first pick with nothing labelled, as bmdal-reg makes it: LCMD's largest k(x, x) (the
    farthest from the mean), k-means++'s uniform draw (position in ``pool``)."""
    if method == "lcmd":
        return int(torch.argmax(_rows(X, pool).square().sum(dim=1)))
    return int(torch.randint(len(pool), (1,)))


class _Clusters:
    """Every candidate's nearest centre and squared distance to it, kept exact as centres are added.

    Squared distances are float64 sums of squared differences (as k-center's), the nearest centre the
    earliest added of equally near ones (a new centre takes a candidate only if strictly nearer):
    what recomputing every candidate's distance to every new centre would give. But a new centre c
    can take a candidate x from its centre a(x) only if ||x - c|| < ||x - a(x)|| = r(x), and
    ||x - c|| >= ||c - a(x)|| - r(x), so only candidates with ||c - a(x)|| < 2 r(x) are measured.
    ||c - a||^2 comes from one matrix-vector product, ||c||^2 + ||a||^2 - 2 a.c, less its rounding
    bound (k-center's screening bound, on centred data), and r(x) carries a relative margin of 1e-9:
    a candidate left out cannot be nearer to c, whatever the rounding.
    """

    def __init__(self, X: torch.Tensor, candidates: np.ndarray, centres: np.ndarray, capacity: int):
        if not len(centres):
            raise ValueError("_Clusters needs at least one centre")  # _cluster_select makes the first
        self.P = _rows(X, candidates)
        self.n = len(centres)
        C = _rows(X, centres)
        # the centres as the screen reads them: squared norms (float64) and coordinates in the
        # screening dtype (as k-center's screening), room for ``capacity`` more
        screen_dtype, self.slack = screening(X.device, X.shape[1])
        self.C_sq = X.new_empty(self.n + capacity)
        self.C_sq[: self.n] = C.square().sum(dim=1)
        self.C_screen = X.new_empty((self.n + capacity, X.shape[1]), dtype=screen_dtype)
        self.C_screen[: self.n] = C
        on = X.device
        self.d2, self.owner = min_sq_dist_to(
            X, torch.from_numpy(candidates).to(on), torch.from_numpy(centres).to(on), nearest=True
        )
        self.reach = self._reach(self.d2)

    @staticmethod
    def _reach(d2: torch.Tensor) -> torch.Tensor:
        return d2.sqrt().mul_(2 * (1 + _MARGIN))

    def add(self, c: torch.Tensor) -> None:
        """Make ``c`` ([d], float64) the next centre."""
        n = self.n
        c_sq = c.square().sum()
        C_sq = self.C_sq[:n]
        # a lower bound on ||c - a|| for every centre a
        dot = torch.mv(self.C_screen[:n], c.to(self.C_screen.dtype)).double()
        to_centres = (C_sq + c_sq).sub_(dot, alpha=2.0)
        to_centres -= self.slack * (C_sq.sqrt() + c_sq.sqrt()).square_()
        to_centres.clamp_(min=0.0).sqrt_()
        near = torch.nonzero(to_centres.index_select(0, self.owner) < self.reach).squeeze(1)
        d2 = sq_dist(self.P.index_select(0, near), c.expand(near.numel(), -1))
        closer = d2 < self.d2.index_select(0, near)
        moved, d2 = near[closer], d2[closer]
        self.d2.index_copy_(0, moved, d2)
        self.owner.index_fill_(0, moved, n)
        self.reach.index_copy_(0, moved, self._reach(d2))
        self.C_sq[n], self.C_screen[n] = c_sq, c
        self.n += 1


def _cluster_select(
    X: torch.Tensor, train: np.ndarray, pool: np.ndarray, budget: int, method: str
) -> np.ndarray:
    """LCMD or k-means++ (TP mode: the labelled molecules are the first centres), picks as indices of X.

    LCMD's picks are bmdal-reg's but for distances equal to the last bit, which the library,
    computing them as k(x, x) + k(c, c) - 2 k(x, c), may order differently; k-means++ draws from the
    library's distribution by the inverse CDF (other random numbers than its torch.multinomial). Each
    pick costs a few passes over the candidates' distances instead of a kernel row over the pool.
    """
    first = np.empty(0, dtype=np.int64)
    if not len(train):
        j = _first_pick(X, pool, method)
        first, pool, train, budget = pool[j : j + 1], np.delete(pool, j), pool[j : j + 1], budget - 1
        if budget == 0:
            return first
    clusters = _Clusters(X, pool, train, budget)
    chosen = torch.zeros(len(pool), dtype=torch.bool, device=X.device)
    minus_inf = X.new_tensor(-math.inf)
    picks: list[int] = []
    while len(picks) < budget:
        d2 = clusters.d2
        if method == "lcmd":
            # the largest cluster (sum of squared distances; ties: all of them) and its farthest point
            weight = torch.bincount(clusters.owner, weights=d2, minlength=clusters.n)
            top = torch.nonzero(weight == weight.max()).squeeze(1)
            largest = clusters.owner == top if top.numel() == 1 else torch.isin(clusters.owner, top)
            i = int(torch.argmax(torch.where(largest & ~chosen, d2, minus_inf)))
        else:
            # (squared distances from differences: never negative, unlike the library's)
            cumulative = torch.cumsum(d2, dim=0)
            if not bool(cumulative[-1] > 0):
                # what bmdal-reg does when torch.multinomial fails: the rest uniformly at random
                log.warning("kmeanspp: every candidate is a centre's duplicate; the last picks are random")
                rest = torch.nonzero(~chosen).squeeze(1)
                fill = rest[torch.randperm(rest.numel(), device=X.device)[: budget - len(picks)]]
                picks.extend(fill.tolist())
                break
            # inverse CDF: the first candidate whose cumulative weight exceeds u * total
            u = torch.rand((), dtype=cumulative.dtype, device=X.device) * cumulative[-1]
            i = int(torch.searchsorted(cumulative, u, right=True))
            if i == len(d2):  # u rounded up to the total: the last candidate of positive weight
                i = int(torch.nonzero(d2)[-1])
        picks.append(i)
        chosen[i] = True
        clusters.add(clusters.P[i])
    return np.concatenate([first, pool[np.asarray(picks, dtype=np.int64)]]).astype(np.int64)


def _select(
    X: torch.Tensor, train: np.ndarray, pool: np.ndarray, budget: int, method: str, *, implicit: bool = False
) -> np.ndarray:
    """bmdal-reg's picks (indices of X) from ``pool`` with ``train`` labelled, X centred float64, RNG
    seeded; ``implicit``: BAIT's updates by :func:`_implicit_bait`."""
    select_batch, TensorFeatureData = _import_bmdal()
    settings = dict(METHODS[method])
    first = np.empty(0, dtype=np.int64)  # a pick made here, before the library's
    if method == "bait":
        # The intercept: a constant feature, the root mean square norm (distances would not change).
        X = torch.cat([X, X.square().sum(dim=1).mean().sqrt().expand(len(X), 1)], dim=1)
        # The paper's automatic scale: mean k(x, x) over the labelled molecules 1 (or over the pool).
        mean_diag = float(_rows(X, train if len(train) else pool).square().sum(dim=1).mean())
        factor = 1.0 / np.sqrt(mean_diag) if mean_diag > 0 else 1.0
        settings["kernel_transforms"] = [("train", [SIGMA, factor])]
        # nothing labelled: one zero vector, k(0, .) = 0, so observing it changes nothing
        train_X = _rows(X, train) if len(train) else X.new_zeros((1, X.shape[1]))
    else:
        settings["kernel_transforms"] = []
        if not len(train):
            # The library's own first pick (it cannot take zero rows); then it is the first centre.
            j = _first_pick(X, pool, method)
            first, pool, train, budget = pool[j : j + 1], np.delete(pool, j), pool[j : j + 1], budget - 1
            if budget == 0:
                return first
        train_X = _rows(X, train)
    allow_tf32 = torch.backends.cuda.matmul.allow_tf32  # the library restores it only if it succeeds
    from bmdal_reg.bmdal import algorithms

    library_bait = algorithms.BaitFeatureSpaceSelectionMethod
    if implicit and method == "bait":
        algorithms.BaitFeatureSpaceSelectionMethod = _implicit_bait(library_bait)
    try:
        idx, info = select_batch(
            batch_size=budget,
            models=[torch.nn.Identity()],  # unused, but the linear kernel builds one feature map per model
            data={"train": TensorFeatureData(train_X), "pool": TensorFeatureData(_rows(X, pool))},
            y_train=None,
            base_kernel="linear",
            verbosity=0,
            **settings,
        )
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        algorithms.BaitFeatureSpaceSelectionMethod = library_bait
    if info.get("selection_status") is not None:  # it stopped early and filled up with random picks
        log.warning("bmdal-reg %s: %s", method, info["selection_status"])
    return np.concatenate([first, pool[idx.cpu().numpy()]]).astype(np.int64)


def _implicit_bait(library_bait: type) -> type:
    """bmdal-reg's BAIT-F (``BaitFeatureSpaceSelectionMethod``) with the feature matrix kept implicit.

    After each pick phi (a row of the current features F), the library rewrites all of F,
    F <- F (I - beta phi phi^T), and multiplies it by two vectors: three passes over the pool's
    [N, d] features per pick. Here F = F0 M, with F0 the features the library started from and M the
    product of those [d, d] factors, so a pick costs one product F0 [M phi, M C phi] (both of the
    library's products at once) and an update of M; the scores' and diagonal's updates are the
    library's. Backward steps (``remove``, never reached with overselection_factor 1) get the
    explicit matrix back first.
    """

    class ImplicitBait(library_bait):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.M = torch.eye(self.feature_matrix.shape[1], dtype=self.feature_matrix.dtype,
                               device=self.feature_matrix.device)  # fmt: skip

        def add(self, new_idx: int) -> None:
            # the library's add (bmdal_reg/bmdal/selection.py) with F = feature_matrix @ M
            diag_entry = self.diag[new_idx] + self.noise_sigma**2
            sqrt_diag_entry = torch.sqrt(diag_entry)
            beta = 1.0 / (sqrt_diag_entry * (sqrt_diag_entry + self.noise_sigma))
            phi_x = self.feature_matrix[new_idx] @ self.M
            cov_phi = self.feature_cov_matrix @ phi_x
            M_phi_cov_phi = self.M @ torch.stack([phi_x, cov_phi], dim=1)
            dot_prods, F_cov_phi = (self.feature_matrix @ M_phi_cov_phi).unbind(dim=1)
            dot_prods_sq = dot_prods**2
            phi_cov_phi = self.scores_numerator[new_idx].clone()
            mult = 1 / diag_entry
            self.scores_numerator -= 2 * mult * F_cov_phi * dot_prods
            self.scores_numerator += mult**2 * phi_cov_phi * dot_prods_sq
            cov_phi_phit = cov_phi[:, None] * phi_x[None, :]
            self.feature_cov_matrix -= beta * (cov_phi_phit + cov_phi_phit.t())
            self.feature_cov_matrix += beta**2 * phi_cov_phi * (phi_x[:, None] * phi_x[None, :])
            self.M -= M_phi_cov_phi[:, :1] * (beta * phi_x[None, :])  # M (I - beta phi phi^T)
            self.diag -= dot_prods_sq / diag_entry

        def remove(self, idx: int) -> None:
            self.feature_matrix = self.feature_matrix @ self.M
            self.M = torch.eye(self.M.shape[0], dtype=self.M.dtype, device=self.M.device)
            super().remove(idx)

    return ImplicitBait


def _rows(X: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    return X.index_select(0, torch.from_numpy(index).to(X.device))


def _import_bmdal() -> tuple[Any, Any]:
    """bmdal-reg's ``select_batch`` and ``TensorFeatureData``, imported on first use (seconds)."""
    # bmdal-reg 3.0.2 writes np.Inf (in bmdal/selection.py), an alias NumPy 2.0 removed
    # ("AttributeError: `np.Inf` was removed"); np.inf is the same value. The only NumPy-2 removal
    # in the modules these strategies run (bmdal/*.py, layers.py, utils.py).
    if not hasattr(np, "Inf"):
        np.Inf = np.inf  # noqa: NPY201 (restores the alias for bmdal-reg; it is not used here)
    from bmdal_reg.bmdal.algorithms import select_batch
    from bmdal_reg.bmdal.feature_data import TensorFeatureData

    return select_batch, TensorFeatureData
