"""Batch selection: k-center greedy (farthest-first traversal) on graph embeddings.

ASGN picks the next molecules to label by k-center greedy on the teacher's graph embeddings z_G
(Sener & Savarese, ICLR 2018): with L the labelled set, repeat b times

    x* = argmax_{x not in L} min_{c in L} ||x - c||_2,   L <- L + {x*},

ties broken by the lowest index. :func:`k_center_greedy` returns exactly these picks (the L2 distances
evaluated in float64 from the differences x - c), fast:

1. Distances from the pool to the already-labelled set: one matrix product per block of rows in
   float32 (float64 on GPUs, where TF32 could creep in, and whenever float32 matmul precision has been
   relaxed) screens the candidates for each row's nearest labelled point; a rounding-error bound on
   that product keeps every centre that could be the nearest, and those few are re-measured exactly
   in float64.
2. Picks. On the CPU, lazily (the "lazy greedy" of Minoux, 1978): a max-heap holds for every point an
   upper bound on its distance to L, exact as of some earlier pick; the top is re-measured against the
   centres added since, and it is the next pick as soon as its bound is current. Distances only
   shrink, so this is exact, and with a few thousand labelled points a pick re-measures one or two
   points (with almost none labelled, the first hundred picks re-measure thousands each: 5,000 picks
   from an empty labelled set take seconds on a small CPU). On a GPU, densely: each pick updates
   every point's distance in one pass, with no host round trip.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import torch

from pipeline.selection.distances import min_sq_dist_to, sq_dist, validated


def k_center_greedy(
    embeddings: np.ndarray | torch.Tensor,
    labelled: np.ndarray | torch.Tensor | list[int],
    budget: int,
    *,
    device: str | torch.device | None = None,
    update: str = "auto",
    return_distances: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Exact greedy farthest-first picks from the unlabelled molecules (L2 distance, ties -> lowest index).

    Args:
        embeddings: [N, d] float array (NumPy or torch, any device): one embedding per molecule, finite.
        labelled: the already-labelled molecules, as a boolean mask [N] or an array of indices
            (possibly empty). They are never picked and every pick is measured against them.
        budget: number of molecules to pick, at most the number of unlabelled ones.
        device: where to compute; default: the device of ``embeddings`` (CPU for NumPy).
        update: how picks update the distances: "lazy" (max-heap of upper bounds; best on CPU),
            "dense" (one pass over all points per pick, no host synchronisation; best on GPU) or
            "auto" (lazy on CPU, dense elsewhere). Both give the same picks (barring distances
            equal to the last bit in exact arithmetic but not in float64).
        return_distances: also return, per pick, its distance to the nearest labelled or earlier pick
            at the time it was picked (inf for a first pick with nothing labelled).

    Returns:
        int64 NumPy array [budget] of molecule indices in pick order (and the float64 distances if
        asked). With nothing labelled the first pick is index 0: every point is then infinitely far
        from the (empty) labelled set, and ties go to the lowest index.
    """
    X, is_labelled, budget = validated(embeddings, labelled, budget, device)
    if update not in ("auto", "lazy", "dense"):
        raise ValueError(f"update must be 'auto', 'lazy' or 'dense', got {update!r}")
    if update == "auto":
        update = "lazy" if X.device.type == "cpu" else "dense"
    if budget == 0:
        picks, dist = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    else:
        centres = torch.nonzero(is_labelled).squeeze(1)
        pool = torch.nonzero(~is_labelled).squeeze(1)
        d2 = min_sq_dist_to(X, pool, centres)  # [len(pool)], exact, inf when nothing is labelled
        pick = _lazy_picks if update == "lazy" else _dense_picks
        picks, dist = pick(X, pool, d2, budget)
    if return_distances:
        return picks, dist
    return picks


def _lazy_picks(
    X: torch.Tensor, pool: torch.Tensor, d2: torch.Tensor, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy picks with a max-heap of upper bounds (exact; see the module docstring)."""
    pool_np = pool.cpu().numpy()
    bound = d2.cpu().numpy()
    picks: list[int] = []
    dist: list[float] = []
    # Picked centres' coordinates, in pick order, so "centres since pick t" is a slice.
    centres = torch.empty((budget, X.shape[1]), dtype=X.dtype, device=X.device)
    if np.isinf(bound).all():
        # Nothing labelled: every bound is inf, so the first pick is the lowest index; then every
        # point needs its distance to it, which one vectorised pass gives.
        first = int(pool_np[0])
        picks.append(first)
        dist.append(math.inf)
        centres[0] = X[first]
        bound = sq_dist(X.index_select(0, pool), X[first].expand(pool.numel(), -1)).cpu().numpy()
        keep = pool_np != first
        pool_np, bound = pool_np[keep], bound[keep]
    # Heap entries (-bound, index): the largest bound first, the lowest index among equal bounds.
    # as_of[i] = number of picks that bound[i] accounts for; the bound is current when as_of[i] == t.
    heap = list(zip((-bound).tolist(), pool_np.tolist(), strict=True))
    heapq.heapify(heap)
    as_of = dict.fromkeys(pool_np.tolist(), len(picks))
    while len(picks) < budget:
        neg, i = heapq.heappop(heap)
        t = len(picks)
        if as_of[i] == t:
            # A current bound on top: i's true distance to L is its bound, every other point's is at
            # most its own bound <= this one (and a higher index on equality). i is the greedy pick.
            picks.append(i)
            dist.append(math.sqrt(-neg))
            centres[t] = X[i]
            continue
        # Stale: re-measure against the centres picked since, and put it back.
        new = centres[as_of[i] : t]
        d_new = float(sq_dist(new, X[i].expand(new.shape[0], -1)).min())
        as_of[i] = t
        heapq.heappush(heap, (max(neg, -d_new), i))
    return np.asarray(picks, dtype=np.int64), np.asarray(dist, dtype=np.float64)


def _dense_picks(
    X: torch.Tensor, pool: torch.Tensor, d2: torch.Tensor, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy picks updating every point's distance per pick, on the device, without host syncs."""
    N = X.shape[0]
    dmin = torch.full((N,), -math.inf, dtype=torch.float64, device=X.device)  # -inf: labelled or picked
    dmin[pool] = d2.sqrt()
    picks = torch.empty(budget, dtype=torch.long, device=X.device)
    dist = torch.empty(budget, dtype=torch.float64, device=X.device)
    diff = torch.empty_like(X)
    for t in range(budget):
        i = torch.argmax(dmin).view(1)  # first maximum: the lowest index on ties
        picks.narrow(0, t, 1).copy_(i)  # tensor ops only: no host round trip per pick
        dist.narrow(0, t, 1).copy_(dmin.index_select(0, i))
        # Every point's distance to the new centre, from the differences (one read of X, one write
        # and one read of diff), then the running minimum; the pick itself leaves the pool.
        d = torch.linalg.vector_norm(torch.sub(X, X.index_select(0, i), out=diff), dim=1)
        torch.minimum(dmin, d, out=dmin)
        dmin.index_fill_(0, i, -math.inf)
    return picks.cpu().numpy(), dist.cpu().numpy()
