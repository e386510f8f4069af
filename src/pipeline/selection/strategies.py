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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipeline.config import registry

if TYPE_CHECKING:
    from pipeline.data.graphs import GraphSet
    from pipeline.learn.train import TrainConfig
    from pipeline.model.asgn import ASGNModel

__all__ = ["SelectionContext", "Strategy", "get_strategy", "k_center_greedy"]

#: Screening blocks [rows, labelled]: (bytes, most rows). Within L2/L3 cache on a CPU; large on a
#: GPU, where each block costs a host synchronisation.
_SCREEN_BLOCK = {"cpu": (8 << 20, 8192), "cuda": (1 << 30, 1 << 18)}


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
    X, is_labelled, budget = _validated(embeddings, labelled, budget, device)
    if update not in ("auto", "lazy", "dense"):
        raise ValueError(f"update must be 'auto', 'lazy' or 'dense', got {update!r}")
    if update == "auto":
        update = "lazy" if X.device.type == "cpu" else "dense"
    if budget == 0:
        picks, dist = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    else:
        centres = torch.nonzero(is_labelled).squeeze(1)
        pool = torch.nonzero(~is_labelled).squeeze(1)
        d2 = _min_sq_dist_to(X, pool, centres)  # [len(pool)], exact, inf when nothing is labelled
        pick = _lazy_picks if update == "lazy" else _dense_picks
        picks, dist = pick(X, pool, d2, budget)
    if return_distances:
        return picks, dist
    return picks


def _validated(
    embeddings: np.ndarray | torch.Tensor,
    labelled: np.ndarray | torch.Tensor | list[int],
    budget: int,
    device: str | torch.device | None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(X [N, d] float64 on the device, labelled mask [N] bool on the device, budget), or clear errors."""
    if isinstance(embeddings, np.ndarray):
        if not (np.issubdtype(embeddings.dtype, np.floating) or np.issubdtype(embeddings.dtype, np.integer)):
            raise TypeError(f"embeddings must be a real-valued array, got dtype {embeddings.dtype}")
        # read-only arrays (e.g. Arrow's zero-copy views) are copied: torch needs writable memory
        X = torch.from_numpy(embeddings if embeddings.flags.writeable else embeddings.copy())
    elif isinstance(embeddings, torch.Tensor):
        if embeddings.is_complex() or embeddings.dtype == torch.bool:
            raise TypeError(f"embeddings must be real-valued, got dtype {embeddings.dtype}")
        X = embeddings.detach()
    else:
        raise TypeError(
            f"embeddings must be a numpy.ndarray or torch.Tensor, got {type(embeddings).__name__}"
        )
    if X.dim() != 2:
        raise ValueError(f"embeddings must be 2-D [N molecules, d], got shape {tuple(X.shape)}")
    N, d = X.shape
    if d < 1:
        raise ValueError("embeddings have no columns (d=0)")
    device = torch.device(device) if device is not None else X.device
    X = X.to(device=device, dtype=torch.float64).contiguous()
    if not bool(torch.isfinite(X).all()):
        bad = torch.nonzero(~torch.isfinite(X).all(dim=1)).squeeze(1)[:5].tolist()
        raise ValueError(f"embeddings contain NaN or infinite values (rows {bad}...)")

    if isinstance(labelled, torch.Tensor):
        lab = labelled.detach().cpu().numpy()
    else:
        lab = np.asarray(labelled)
    if lab.dtype == np.bool_:
        if lab.shape != (N,):
            raise ValueError(f"labelled mask must have shape ({N},) to match embeddings, got {lab.shape}")
        mask = lab
    else:
        if lab.ndim != 1:
            raise ValueError(
                f"labelled must be a boolean mask [N] or a 1-D index array, got shape {lab.shape}"
            )
        if lab.size and not np.issubdtype(lab.dtype, np.integer):
            raise TypeError(f"labelled indices must be integers (or a boolean mask), got dtype {lab.dtype}")
        lab = lab.astype(np.int64)
        if lab.size and (lab.min() < 0 or lab.max() >= N):
            raise ValueError(f"labelled indices must lie in [0, {N}), got min {lab.min()}, max {lab.max()}")
        mask = np.zeros(N, dtype=bool)
        mask[lab] = True

    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise TypeError(f"budget must be an integer, got {budget!r}")
    budget = int(budget)
    n_pool = N - int(mask.sum())
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if budget > n_pool:
        raise ValueError(f"budget {budget} exceeds the {n_pool} unlabelled molecules (N={N})")
    return X, torch.from_numpy(mask).to(device), budget


def _sq_dist(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Row-wise ||A_i - B_i||^2 in float64 from the differences: the exact distance of the screening
    recheck and the lazy picks (the dense picks' vector_norm is the same sum in its own order).

    Every row is reduced in the same order whatever the batch, so equal rows give equal values.
    """
    return (A - B).square_().sum(dim=1)


def _screen(device: torch.device, d: int) -> tuple[torch.dtype, float]:
    """The screening products' dtype on ``device`` and their relative rounding bound (d + 8) * u:
    float32 on the CPU while float32 matmuls are exact float32 (precision "highest"), else float64
    (TF32 could creep in on GPUs)."""
    exact_fp32 = device.type == "cpu" and torch.get_float32_matmul_precision() == "highest"
    dtype = torch.float32 if exact_fp32 else torch.float64
    return dtype, (d + 8) * torch.finfo(dtype).eps / 2


def _min_sq_dist_to(
    X: torch.Tensor, pool: torch.Tensor, centres: torch.Tensor, *, nearest: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Exact min_c ||X[p] - X[c]||^2 over the centres for every pool point p (inf with no centres);
    with ``nearest``, also which centre: its position in ``centres``, the first of equally near ones
    (LCMD's clusters; -1 with no centres).

    Screening: T = ||c||^2 - 2 x.c (the squared distance less the row constant ||x||^2) from one
    matrix product per block, on mean-centred data. Each entry is within
        b = (d + 8) * unit_roundoff * (||x|| + max_c ||c||)^2
    of its exact value (input rounding, the dot product's gamma_d bound, and the additions, with a
    factor 2 to spare), so the nearest centre is among those with T <= min T + 2b; every centre with
    T <= min T + 3b is re-measured with :func:`_sq_dist`. Rows with a single such centre (almost all)
    cost one exact distance.
    """
    out = torch.full((pool.numel(),), math.inf, dtype=torch.float64, device=X.device)
    owner = torch.full((pool.numel(),), -1, dtype=torch.long, device=X.device)
    if centres.numel() == 0 or pool.numel() == 0:
        return (out, owner) if nearest else out
    screen_dtype, slack = _screen(X.device, X.shape[1])
    Xc = X - X.mean(dim=0)  # distances are translation-invariant; centring shrinks the norms in b
    sq_norm = Xc.square().sum(dim=1)
    C = Xc.index_select(0, centres).to(screen_dtype)
    C_sq = sq_norm.index_select(0, centres)
    C_sq_screen = C_sq.to(screen_dtype)[None, :]
    R = float(C_sq.max().sqrt())
    block_bytes, max_rows = _SCREEN_BLOCK.get(X.device.type, _SCREEN_BLOCK["cpu"])
    block = max(64, min(max_rows, block_bytes // (centres.numel() * C.element_size())))
    for start in range(0, pool.numel(), block):
        rows = pool[start : start + block]
        A = Xc.index_select(0, rows).to(screen_dtype)
        T = torch.addmm(C_sq_screen, A, C.T, alpha=-2.0)  # [rows, centres]
        t1, j1 = T.min(dim=1)
        T.scatter_(1, j1[:, None], math.inf)
        t2 = T.amin(dim=1).double()
        t1 = t1.double()
        b = slack * (sq_norm.index_select(0, rows).sqrt() + R).square_()
        best = _sq_dist(X.index_select(0, rows), X.index_select(0, centres.index_select(0, j1)))
        ambiguous = torch.nonzero(t2 <= t1 + 3 * b).squeeze(1)
        if ambiguous.numel():
            # All other centres within 3b of the best screen value, re-measured exactly.
            thr = (t1 + 3 * b).index_select(0, ambiguous)
            r, c = torch.nonzero(T.index_select(0, ambiguous).double() <= thr[:, None], as_tuple=True)
            extra = _sq_dist(
                X.index_select(0, rows.index_select(0, ambiguous.index_select(0, r))),
                X.index_select(0, centres.index_select(0, c)),
            )
            at = ambiguous.index_select(0, r)
            to_j1 = best.clone() if nearest else best
            best.scatter_reduce_(0, at, extra, reduce="amin")
            if nearest:
                # the first of the centres at the minimum: j1 if it is one, else the lowest such c
                j1 = torch.where(to_j1 == best, j1, centres.numel())
                tied = extra == best.index_select(0, at)
                j1.scatter_reduce_(0, at[tied], c[tied], reduce="amin")
        out[start : start + block] = best
        owner[start : start + block] = j1
    return (out, owner) if nearest else out


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
        bound = _sq_dist(X.index_select(0, pool), X[first].expand(pool.numel(), -1)).cpu().numpy()
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
        d_new = float(_sq_dist(new, X[i].expand(new.shape[0], -1)).min())
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


# --------------------------------------------------------------------------------------------------
# Strategies: their names and needs live in pipeline.config.registry. A strategy says what the select
# stage must give it (``needs``) and picks from a SelectionContext: `pick(ctx)` returns the picks
# (indices into the pool, in pick order) and a per-pick score. "embeddings" strategies read the
# teacher's z_G; "student" (MC-dropout samples of the round's student) and "committee" (K students
# fine-tuned from the round's teacher) strategies pick the largest prediction variance.


@dataclass(frozen=True)
class SelectionContext:
    """What a strategy picks from: the pool ([N] arrays in one order; picks index them) and, for
    uncertainty strategies, the round's model and the graphs (:func:`pipeline.stages.rounds.select`
    builds it).
    """

    embeddings: np.ndarray  # [N, d] the pool's graph embeddings under the round's teacher
    labelled: np.ndarray  # [N] bool: in the labelled set (never picked; k-center's first centres)
    budget: int  # molecules to pick
    seed: int
    device: str | torch.device | None = None  # k-center's; None: the embeddings' (the CPU)
    in_pool: np.ndarray | None = None  # [N] bool: False where the oracle failed (left out); None: all in
    # uncertainty strategies: the student (mc_dropout) or the teacher (qbc), on graphs.device
    model: ASGNModel | None = None
    graphs: GraphSet | None = None
    index: np.ndarray | None = None  # [N] the pool molecules' positions in graphs
    labelled_index: np.ndarray | None = None  # [L] the labelled molecules' positions in graphs
    y_labelled: np.ndarray | None = None  # [L, T] their labels (real units, NaN = missing)
    train: TrainConfig | None = None  # eval batch size; qbc: how the committee trains
    mc_samples: int = 20  # mc_dropout: stochastic forward passes per molecule
    committee: int = 4  # qbc: committee size K

    @property
    def pool(self) -> np.ndarray:
        """Indices of the molecules still in the pool (all but those left out)."""
        return np.arange(len(self.labelled)) if self.in_pool is None else np.flatnonzero(self.in_pool)


@dataclass(frozen=True)
class Strategy:
    needs: str  # "embeddings" | "student" | "committee"
    pick: Callable[[SelectionContext], tuple[np.ndarray, np.ndarray]]
    description: str


def pick_kcenter(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """Exact greedy k-center over the pool (left-out molecules are neither picked nor centres)."""
    rows = ctx.pool
    picks, dist = k_center_greedy(
        ctx.embeddings[rows], ctx.labelled[rows], ctx.budget, device=ctx.device, return_distances=True
    )
    return rows[picks], dist


def pick_random(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """Uniform picks (seeded) from the unlabelled pool; no score (NaN)."""
    rows = ctx.pool
    candidates = rows[~ctx.labelled[rows]]
    if ctx.budget > len(candidates):
        raise ValueError(f"budget {ctx.budget} exceeds the {len(candidates)} unlabelled molecules")
    picks = np.random.default_rng(ctx.seed).choice(candidates, size=ctx.budget, replace=False)
    return picks.astype(np.int64), np.full(ctx.budget, np.nan)


def pick_mc_dropout(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """The largest variance of ``mc_samples`` MC-dropout predictions of the student (``model``)."""
    from pipeline.selection.uncertainty import mc_dropout_predictions

    todo = np.flatnonzero(~ctx.labelled)
    samples = mc_dropout_predictions(
        ctx.model, ctx.graphs, ctx.index[todo], ctx.mc_samples, ctx.seed, ctx.train.eval_batch_size
    )
    return _most_uncertain(ctx, todo, samples)


def pick_qbc(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """The largest disagreement of ``committee`` students fine-tuned from the teacher (``model``),
    each on its own bootstrap resample of the labelled molecules, without validation."""
    from pipeline.selection.uncertainty import committee_predictions, train_committee

    members = train_committee(
        ctx.model,
        ctx.graphs,
        ctx.labelled_index,
        ctx.y_labelled,
        np.zeros(0, np.int64),
        ctx.y_labelled[:0],
        ctx.train,
        ctx.committee,
        ctx.seed,
        bootstrap=True,
    )
    todo = np.flatnonzero(~ctx.labelled)
    samples = committee_predictions(members, ctx.graphs, ctx.index[todo], ctx.train.eval_batch_size)
    return _most_uncertain(ctx, todo, samples)


def _most_uncertain(
    ctx: SelectionContext, todo: np.ndarray, samples: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ``budget`` pool molecules of highest prediction variance (``samples`` [K, len(todo), T] of
    the unlabelled molecules ``todo``, each target in units of its labelled std), and their scores."""
    from pipeline.selection.uncertainty import prediction_variance, top_b

    scale = np.nanstd(ctx.y_labelled, axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    scores = np.full(len(ctx.labelled), np.nan)
    scores[todo] = prediction_variance(samples, scale)
    candidates = ~ctx.labelled if ctx.in_pool is None else ~ctx.labelled & ctx.in_pool
    picks = top_b(scores, candidates, ctx.budget)
    return picks, scores[picks]


def get_strategy(name: str) -> Strategy:
    """The selection strategy registered under ``name`` (:data:`pipeline.config.registry.STRATEGIES`, which
    names its picking function); the error lists the valid names."""
    info = registry.strategy_info(name)
    return Strategy(info.needs, info.pick_function(), info.description)
