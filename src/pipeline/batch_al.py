"""Batch active learning for regression from bmdal-reg: LCMD, BAIT and k-means++ on graph embeddings.

The strategies ``lcmd``, ``bait`` and ``kmeanspp`` pick with the selection methods of the
``bmdal-reg`` package (Holzmüller et al., "A Framework and Benchmark for Deep Batch Active Learning
for Regression", JMLR 2023), on the same input as k-center: the teacher's graph embeddings z_G, with
the labelled molecules as the training set and the other molecules of the pool as candidates. The
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

Randomness (k-means++'s draws; the library's fill-up with random candidates if a method stops early,
logged as a warning) comes from torch's global generator, seeded with the strategy's ``seed`` inside
:func:`torch.random.fork_rng`: the picks are a function of the seed, and the caller's random state is
as it was. The library returns no score per pick: the scores are NaN.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .train import seeded_global_rng

if TYPE_CHECKING:
    from .select import SelectionContext

log = logging.getLogger(__name__)

__all__ = ["METHODS", "SIGMA", "bait", "bmdal_select", "kmeanspp", "lcmd"]

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


def lcmd(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """LCMD (bmdal-reg, TP mode, linear kernel) over the pool; no score (NaN)."""
    return _pick(ctx, "lcmd")


def bait(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """BAIT-F (bmdal-reg, P mode, linear kernel conditioned on the labelled set); no score (NaN)."""
    return _pick(ctx, "bait")


def kmeanspp(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding (bmdal-reg, TP mode, linear kernel), seeded; no score (NaN)."""
    return _pick(ctx, "kmeanspp")


def _pick(ctx: SelectionContext, method: str) -> tuple[np.ndarray, np.ndarray]:
    """The method's picks over the pool: molecules left out are neither candidates nor labelled."""
    rows = ctx.pool
    picks = bmdal_select(
        ctx.embeddings[rows], ctx.labelled[rows], ctx.budget, method, seed=ctx.seed, device=ctx.device
    )
    return rows[picks], np.full(len(picks), np.nan)


def bmdal_select(
    embeddings: np.ndarray | torch.Tensor,
    labelled: np.ndarray | torch.Tensor | list[int],
    budget: int,
    method: str,
    *,
    seed: int,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """``budget`` distinct unlabelled molecules picked by bmdal-reg's ``method`` (see the module docstring).

    Args:
        embeddings: [N, d] real array (NumPy or torch), finite: one embedding per molecule.
        labelled: the labelled molecules, a boolean mask [N] or indices (possibly none): never picked,
            the method's training set.
        budget: molecules to pick, at most the unlabelled ones.
        method: ``"lcmd"``, ``"bait"`` or ``"kmeanspp"``.
        seed: seeds the method's random draws (torch's global generator, restored afterwards).
        device: where to compute; default: the device of ``embeddings`` (CPU for NumPy).

    Returns:
        int64 NumPy array [budget] of molecule indices, in pick order.
    """
    from .select import _validated  # k-center's checks and messages (select imports this module)

    if method not in METHODS:
        raise ValueError(f"unknown bmdal method {method!r}; choose one of {', '.join(METHODS)}")
    X, is_labelled, budget = _validated(embeddings, labelled, budget, device)
    mask = is_labelled.cpu().numpy()
    train, pool = np.flatnonzero(mask), np.flatnonzero(~mask)
    if budget == 0:
        return np.empty(0, dtype=np.int64)
    X = X - X.mean(dim=0)
    with seeded_global_rng(seed, X.device):
        picks = _select(X, train, pool, budget, method)
    if len(picks) != budget or len(np.unique(picks)) != budget or mask[picks].any():
        raise RuntimeError(f"bmdal-reg's {method} gave {len(picks)} picks, not {budget} distinct unlabelled")
    return picks


def _select(X: torch.Tensor, train: np.ndarray, pool: np.ndarray, budget: int, method: str) -> np.ndarray:
    """Picks (indices of X) from ``pool`` with ``train`` labelled, X centred float64, RNG seeded."""
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
            # The library's own first pick without training data (it cannot take zero rows): LCMD's
            # largest k(x, x), k-means++'s uniform draw; then that pick is the first centre.
            if method == "lcmd":
                j = int(torch.argmax(_rows(X, pool).square().sum(dim=1)))
            else:
                j = int(torch.randint(len(pool), (1,)))
            first, pool, train, budget = pool[j : j + 1], np.delete(pool, j), pool[j : j + 1], budget - 1
            if budget == 0:
                return first
        train_X = _rows(X, train)
    allow_tf32 = torch.backends.cuda.matmul.allow_tf32  # the library restores it only if it succeeds
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
    if info.get("selection_status") is not None:  # it stopped early and filled up with random picks
        log.warning("bmdal-reg %s: %s", method, info["selection_status"])
    return np.concatenate([first, pool[idx.cpu().numpy()]]).astype(np.int64)


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
