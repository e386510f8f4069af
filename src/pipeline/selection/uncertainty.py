"""Uncertainty-based batch selection: the disagreement of several predictions of one molecule.

The paper's uncertainty baselines (Hao et al., KDD 2020) pick the pool molecules on which the model is
least sure, measured by the spread of several predictions of the same molecule: MC-dropout samples of
the student, or a committee of students (:mod:`pipeline.learn.uncertainty` makes them; the select
stage hands them to the strategy). Either gives predictions ``preds`` [K, n, T]; the acquisition
score of molecule i is the variance over the K predictions, each target in units of its scale s_t,
summed over targets,

    u_i = sum_t Var_k(preds[k, i, t] / s_t),

(:func:`prediction_variance`) and the batch is the b highest scores among the candidates, ties to the
lowest index (:func:`top_b`). Both are pure NumPy functions.

``pool`` sorted ascending keeps "ties to the lowest index" true for the molecules' positions too. The
labelled std is the natural scale; for extensive targets fitted with per-element references
(``atomref``) the std of the residuals (what :func:`pipeline.learn.scaling.fit_scaler` returns) is the
fairer unit, as the model's errors are on that scale. With a single target the scale does not change
the picks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["prediction_variance", "top_b"]


# --------------------------------------------------------------------------------------------------
# Acquisition functions (pure NumPy)


def prediction_variance(preds: np.ndarray, scale: np.ndarray | Sequence[float] | None = None) -> np.ndarray:
    """Disagreement of K predictions per molecule: u_i = sum_t Var_k(preds[k, i, t] / scale[t]).

    Args:
        preds: [K, N, T] predictions of N molecules by K committee members or MC-dropout samples
            (K >= 2), finite.
        scale: [T] positive per-target scale (e.g. the labelled std), so that targets in different
            units weigh the same; default 1 for every target.

    Returns:
        [N] float64 scores: the population variance over K (``np.var``, ddof 0) of the scaled
        predictions, summed over targets. Invariant to shifting a target and to scaling a target
        together with its scale.
    """
    p = np.asarray(preds)
    if p.ndim != 3:
        raise ValueError(
            f"preds must be [K members, N molecules, T targets], got shape {p.shape} "
            "(for a single target use preds[..., None])"
        )
    if not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)):
        raise TypeError(f"preds must be real-valued, got dtype {p.dtype}")
    K, _, T = p.shape
    if K < 2:
        raise ValueError(f"need at least 2 predictions per molecule to measure disagreement, got K={K}")
    p = p.astype(np.float64)
    finite = np.isfinite(p).all(axis=(0, 2))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"preds contain NaN or infinite values for molecules {bad[:5].tolist()} (of {bad.size})"
        )
    if scale is None:
        s = np.ones(T)
    else:
        s = np.asarray(scale, dtype=np.float64)
        if s.shape != (T,):
            raise ValueError(f"scale must have shape ({T},) to match preds' {T} targets, got {s.shape}")
        if not (np.isfinite(s).all() and (s > 0).all()):
            raise ValueError(
                f"scale must be finite and positive for every target, got {s.tolist()} "
                "(a target with fewer than two labels has no std: give it scale 1)"
            )
    return np.var(p / s, axis=0).sum(axis=-1)


def top_b(scores: np.ndarray, candidates_mask: np.ndarray, b: int) -> np.ndarray:
    """The ``b`` candidates with the highest scores, highest first; ties go to the lowest index.

    Args:
        scores: [N] real scores (NaN not allowed among the candidates).
        candidates_mask: [N] bool, True for the molecules that may be picked (e.g. the unlabelled pool).
        b: number of picks, 0 <= b <= number of candidates.

    Returns:
        int64 [b] indices into ``scores``, in descending score order.
    """
    s = np.asarray(scores)
    mask = np.asarray(candidates_mask)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D [N], got shape {s.shape}")
    if mask.dtype != np.bool_ or mask.shape != s.shape:
        raise ValueError(
            f"candidates_mask must be a boolean array of shape {s.shape} like scores, "
            f"got dtype {mask.dtype} shape {mask.shape}"
        )
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
        raise TypeError(f"b must be an integer, got {b!r}")
    candidates = np.flatnonzero(mask)
    if not 0 <= b <= candidates.size:
        raise ValueError(f"b must be in [0, {candidates.size}] (the number of candidates), got {b}")
    cand_scores = s[candidates].astype(np.float64)
    if np.isnan(cand_scores).any():
        bad = candidates[np.isnan(cand_scores)]
        raise ValueError(f"scores are NaN for candidates {bad[:5].tolist()} (of {bad.size})")
    # stable sort of the negated scores: descending, equal scores keep ascending index order
    order = np.argsort(-cand_scores, kind="stable")[:b]
    return candidates[order].astype(np.int64)
