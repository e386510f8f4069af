"""Exact squared L2 distances between pool molecules and centres, screened for speed.

Shared by k-center (:mod:`pipeline.selection.kcenter`) and the batch-AL methods
(:mod:`pipeline.selection.batch_al`): :func:`validated` checks a pool's embeddings, labelled mask and
budget; :func:`sq_dist` measures exactly in float64 from the differences; :func:`screening` is the
screening dtype and its rounding bound on a device; :func:`min_sq_dist_to` gives each row's nearest
centre, exact, after screening every centre with one matrix product per block of rows.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Screening blocks [rows, labelled]: (bytes, most rows). Within L2/L3 cache on a CPU; large on a
#: GPU, where each block costs a host synchronisation.
_SCREEN_BLOCK = {"cpu": (8 << 20, 8192), "cuda": (1 << 30, 1 << 18)}


def validated(
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


def sq_dist(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Row-wise ||A_i - B_i||^2 in float64 from the differences: the exact distance of the screening
    recheck and the lazy picks (the dense picks' vector_norm is the same sum in its own order).

    Every row is reduced in the same order whatever the batch, so equal rows give equal values.
    """
    return (A - B).square_().sum(dim=1)


def screening(device: torch.device, d: int) -> tuple[torch.dtype, float]:
    """The screening products' dtype on ``device`` and their relative rounding bound (d + 8) * u:
    float32 on the CPU while float32 matmuls are exact float32 (precision "highest"), else float64
    (TF32 could creep in on GPUs)."""
    exact_fp32 = device.type == "cpu" and torch.get_float32_matmul_precision() == "highest"
    dtype = torch.float32 if exact_fp32 else torch.float64
    return dtype, (d + 8) * torch.finfo(dtype).eps / 2


def min_sq_dist_to(
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
    T <= min T + 3b is re-measured with :func:`sq_dist`. Rows with a single such centre (almost all)
    cost one exact distance.
    """
    out = torch.full((pool.numel(),), math.inf, dtype=torch.float64, device=X.device)
    owner = torch.full((pool.numel(),), -1, dtype=torch.long, device=X.device)
    if centres.numel() == 0 or pool.numel() == 0:
        return (out, owner) if nearest else out
    screen_dtype, slack = screening(X.device, X.shape[1])
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
        best = sq_dist(X.index_select(0, rows), X.index_select(0, centres.index_select(0, j1)))
        ambiguous = torch.nonzero(t2 <= t1 + 3 * b).squeeze(1)
        if ambiguous.numel():
            # All other centres within 3b of the best screen value, re-measured exactly.
            thr = (t1 + 3 * b).index_select(0, ambiguous)
            r, c = torch.nonzero(T.index_select(0, ambiguous).double() <= thr[:, None], as_tuple=True)
            extra = sq_dist(
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
