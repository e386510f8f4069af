"""Balanced hard cluster ids by entropy-regularised optimal transport (Sinkhorn–Knopp).

ASGN's clustering loss L_c (Hao et al., KDD 2020, after SeLa and SwAV) needs, for every molecule of the
pool, a hard cluster id such that the M clusters are used about equally. With the cluster head's
probabilities P = softmax(scores) ([N, M]) the ids come from the transport plan

    Q = diag(u) K diag(v),   K = P^lam (elementwise),   Q 1_M = 1_N / N,   Q^T 1_N = 1_M / M,

the plan closest to P^lam (in KL) whose clusters are uniformly filled; molecule i takes the cluster of
the largest entry of row i of Q.

Numerics. With lam = 25, P^lam underflows in float32, and even exp(lam * log p) underflows in float64
once the scores are skewed. :func:`sinkhorn` therefore keeps the plan in *stabilised* form (Schmitzer,
SIAM J. Sci. Comput. 2019), with float64 log-potentials f, g:

    Q_ij = a * u_i * Kt_ij * v_j,   Kt_ij = exp(lam * S_ij + f_i + g_j),   a = 1/N,

where S is the scores with each row's maximum subtracted (softmax's normaliser, raised to lam, is a row
factor: it only shifts f). u and v are O(1) scalings updated by the usual two matrix-vector products
per iteration; when one strays beyond e^+-(TAU - 1) it is absorbed into f, g and Kt is rebuilt from
the log domain ("absorb and restart"), so no entry that matters under- or overflows.

Speed. Sharp or skewed scores make plain Sinkhorn crawl (a thousand iterations and more for
scores = 20 * randn). Standard accelerations keep it near a hundred at most:

- lam-scaling (epsilon-scaling): solve for lam / 8^k, ..., lam / 8, lam in turn, each stage
  warm-started with the previous column potentials times the lam ratio (g / lam is a price in score
  units, which carries over);
- over-relaxation (Thibault et al., Algorithms 2021): u <- u (1 / rowsum)^omega and likewise for v, with
  omega from the observed convergence rate, back to 1 whenever the error jumps;
- truncation: a row whose every runner-up is below e^-THETA of its best entry keeps, while v stays
  within e^+-TAU, at least 1 - 1e-14 of its mass on that cluster; such "frozen" rows leave the
  matrix-vector products and are tracked by one number per cluster;
- the products run on a float32 copy of the (row-normalised, hence well-scaled) kernel; the potentials
  stay float64 and the final marginals are checked with the float64 kernel.

Stopping: max |N * rowsum(Q) - 1| < tol and max |M * colsum(Q) - 1| < tol, checked in float64, or
``n_iter`` iterations in all (then a :class:`RuntimeWarning` gives the error reached).
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["sinkhorn"]

#: v never leaves [e^-TAU, e^TAU] between rebuilds: u and v are absorbed into f, g (and Kt rebuilt)
#: once either leaves [e^-(TAU-1), e^(TAU-1)].
_TAU = 15.0
#: Kernel floor: entries below e^-THETA of their row's best are raised to it (a change below 1e-27 of
#: a row), and a row whose runners-up all sit at the floor is frozen. THETA - 2 TAU = 37 keeps a frozen
#: row's other mass below M e^-37 ~ 1e-14 of it while v moves within e^+-TAU; it also keeps the
#: float32 kernel and its products with u, v clear of subnormal numbers.
_THETA = 2 * _TAU + 37.0
#: Smallest tol for which the iterations use a float32 copy of the kernel (on CPU).
_FLOAT32_TOL = 1e-5
#: lam-scaling: stages lam / STAGE_FACTOR^k, ..., lam, the first with lam_0 * spread <= FIRST_SPREAD
#: (spread: the mean over rows of max - mean score), at most MAX_STAGES.
_STAGE_FACTOR = 8.0
_FIRST_SPREAD = 4.0
_MAX_STAGES = 8
#: Stages before the last stop at this marginal error (the last one at ``tol``).
_STAGE_TOL = 1e-2
#: Over-relaxation: omega from the error's rate over the last WINDOW iterations, at most OMEGA_MAX.
_WINDOW = 5
_OMEGA_MAX = 1.9


def sinkhorn(
    scores: torch.Tensor | np.ndarray,
    lam: float = 25.0,
    n_iter: int = 1000,
    tol: float = 1e-3,
) -> torch.Tensor:
    """Hard, near-uniformly balanced cluster ids from the Sinkhorn–Knopp transport plan.

    Args:
        scores: [N, M] cluster logits: a torch tensor on any device or a NumPy array; finite, M >= 2.
        lam: power of P = softmax(scores) in the kernel K = P^lam; larger is closer to a hard
            assignment (ASGN uses 25).
        n_iter: most Sinkhorn iterations, summed over all lam stages.
        tol: stop once every row of Q sums to 1/N and every column to 1/M within relative ``tol``:
            max |N * rowsum - 1| < tol and max |M * colsum - 1| < tol.

    Returns:
        [N] int64 tensor on the device of ``scores`` (CPU for NumPy input): the argmax of each row of
        Q, the lowest cluster id on ties. Cluster sizes come out close to N / M. Deterministic.
    """
    return _transport(scores, lam=lam, n_iter=n_iter, tol=tol).labels()


@dataclass
class _Transport:
    """The solved plan Q = exp(lam S + F[:, None] + G[None, :]) and how it was reached."""

    solver: _ScalingSolver  # holds S, lam and the last iterate
    iterations: int  # Sinkhorn iterations over all lam stages
    row_error: float  # max |N * rowsum(Q) - 1|
    col_error: float  # max |M * colsum(Q) - 1|
    stages: list[dict] = field(default_factory=list)  # per lam stage: iterations, rebuilds, active rows

    def labels(self) -> torch.Tensor:
        """argmax_j Q_ij for every row i (torch.argmax: the first maximum, i.e. the lowest id, on ties)."""
        return torch.argmax(self.solver.log_kernel(self.solver.G), dim=1)

    def plan(self) -> torch.Tensor:
        """The soft plan Q [N, M] in float64: rows sum to 1/N and columns to 1/M, within ``tol``."""
        F = self.solver.row_potential()
        return self.solver.log_kernel(self.solver.G).add_(F[:, None]).exp_()


def _transport(scores: torch.Tensor | np.ndarray, *, lam: float, n_iter: int, tol: float) -> _Transport:
    """Solve for the plan Q (see the module docstring)."""
    if isinstance(lam, bool) or not (isinstance(lam, numbers.Real) and math.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a positive finite number, got {lam!r}")
    if isinstance(n_iter, bool) or not (isinstance(n_iter, numbers.Integral) and n_iter >= 1):
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    if isinstance(tol, bool) or not (isinstance(tol, numbers.Real) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    lam, n_iter, tol = float(lam), int(n_iter), float(tol)
    S, spread = _shifted_scores(scores)
    lams = _lam_schedule(lam, spread)[-n_iter:]  # every stage gets at least one iteration

    # float32 products are accurate enough for tol >= 1e-5 and 2-4x faster on CPUs. Not on GPUs, where
    # float64 is fast and TF32 settings could silently degrade float32 products; nor when the user
    # relaxed float32 matmul precision (bf16 on some CPUs).
    fast = (
        tol >= _FLOAT32_TOL and S.device.type == "cpu" and torch.get_float32_matmul_precision() == "highest"
    )
    solver = _ScalingSolver(S, torch.float32 if fast else torch.float64)
    g = -lams[0] * S.amax(dim=0)  # start with every column's largest kernel entry at 1
    iterations = 0
    for k, lam_k in enumerate(lams):
        if k:
            # g / lam is a price in score units: carry the prices over to the next stage.
            g = g * (lam_k / lams[k - 1])
        last = k == len(lams) - 1
        budget = n_iter - iterations - (len(lams) - 1 - k)  # leave one iteration per later stage
        g, used = solver.solve(lam_k, g, tol if last else max(tol, _STAGE_TOL), budget, verify=last)
        iterations += used
    row_err, col_err = solver.errors
    if not max(row_err, col_err) < tol:
        warnings.warn(
            f"sinkhorn stopped after n_iter={n_iter} iterations with marginal error "
            f"{max(row_err, col_err):.2e} >= tol={tol:g}; cluster sizes may be less balanced than asked",
            RuntimeWarning,
            stacklevel=3,
        )
    return _Transport(solver, iterations, row_err, col_err, solver.stages)


def _shifted_scores(scores: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, float]:
    """float64 copy of ``scores`` with every row's maximum at 0, and the mean over rows of max - mean.

    Subtracting a row constant only rescales u_i: Q is unchanged. Clear errors for unusable input.
    """
    if isinstance(scores, np.ndarray):
        if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
            raise TypeError(f"scores must be a real-valued array, got dtype {scores.dtype}")
        scores = torch.from_numpy(scores)
    elif not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor or numpy.ndarray, got {type(scores).__name__}")
    if scores.is_complex() or scores.dtype == torch.bool:
        raise TypeError(f"scores must be real-valued, got dtype {scores.dtype}")
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D [N molecules, M clusters], got shape {tuple(scores.shape)}")
    N, M = scores.shape
    if M < 2:
        raise ValueError(f"scores need at least 2 clusters (columns), got M={M}")
    if N < 1:
        raise ValueError("scores have no rows (N=0)")
    S = scores.detach().to(torch.float64, memory_format=torch.contiguous_format, copy=True)
    S.sub_(S.amax(dim=1, keepdim=True))
    # A NaN or inf anywhere makes this sum NaN or -inf (a row with an inf max becomes inf - inf = NaN),
    # so a finite sum proves all scores finite; otherwise look at the input itself.
    total = float(S.sum())
    if not math.isfinite(total) and not bool(torch.isfinite(scores).all()):
        raise ValueError("scores contain NaN or infinite values")
    return S, -total / (N * M)  # inf if finite scores were too far apart to subtract


def _lam_schedule(lam: float, spread: float) -> list[float]:
    """lam / f^k, ..., lam / f, lam with lam_0 * spread <= _FIRST_SPREAD (an easy, soft problem)."""
    if lam * spread <= _FIRST_SPREAD:
        return [lam]
    ratio = lam * spread / _FIRST_SPREAD
    k = (
        _MAX_STAGES - 1
        if not math.isfinite(ratio)
        else min(math.ceil(math.log(ratio, _STAGE_FACTOR)), _MAX_STAGES - 1)
    )
    return [lam / _STAGE_FACTOR**i for i in range(k, 0, -1)] + [lam]


class _ScalingSolver:
    """Stabilised, truncated, over-relaxed Sinkhorn iterations, one lam at a time.

    Notation (Q = a diag(u) Kt diag(v) on the active rows A): a = 1/N, b = 1/M are the target row and
    column sums; S [N, M] the row-shifted scores; g [M] the absorbed column log-potential; Kt =
    exp(lam S + f + g) on A, with f [|A|] set at every rebuild so that Kt's rows sum to 1; u [|A|] and
    v [M] the scalings (u_i = 1 is an exact row). A frozen row (not in A) whose best cluster is j has
    all its mass, a * m_j, there; the frozen rows of cluster j share m_j because they start equal and
    take the same steps.
    """

    def __init__(self, S: torch.Tensor, dtype: torch.dtype) -> None:
        self.S = S
        self.N, self.M = S.shape
        self.dtype = dtype  # of Kt and the matrix-vector products
        self.lam = math.nan
        # Reused [N, M] buffers: on CPU a fresh 100 MB tensor costs more than a pass of arithmetic.
        self._work = torch.empty_like(S)  # log kernel, then exp(lam S + g - best) for all rows
        self._work32 = torch.empty_like(S, dtype=torch.float32) if dtype == torch.float32 else None
        self._gather32: torch.Tensor | None = None  # active rows of _work32, allocated when needed
        self.errors = (math.inf, math.inf)  # (row, column) marginal error of the last iterate
        self.stages: list[dict] = []

    def log_kernel(self, g: torch.Tensor) -> torch.Tensor:
        """lam S + g [N, M] in the work buffer (overwritten by the next call)."""
        return torch.add(g, self.S, alpha=self.lam, out=self._work)

    def _rebuild(self, g: torch.Tensor) -> None:
        """Absorb and restart from column potentials g: sets A, Kt, f, the frozen counts (u = v = m = 1)."""
        work = self.log_kernel(g)
        best, self.best_j = work.max(dim=1)
        # Unnormalised kernel exp(lam S + g - best): in [e^-THETA, 1], exactly 1 at each row's best.
        work.sub_(best[:, None]).clamp_(min=-_THETA).exp_()
        # Runner-up mass of each row; a row is frozen iff all its runners-up sit at the floor.
        work.scatter_(1, self.best_j[:, None], 0.0)
        runner_up = work.sum(dim=1)
        work.scatter_(1, self.best_j[:, None], 1.0)
        is_active = runner_up > (self.M - 1) * math.exp(-_THETA) * (1 + 1e-9)
        self.row_sums = runner_up.add_(1.0)
        self.active = torch.nonzero(is_active).squeeze(1)
        self.n_frozen = torch.bincount(self.best_j[~is_active], minlength=self.M).to(torch.float64)
        n_active = self.active.numel()
        active_sums = self.row_sums.index_select(0, self.active)
        # Kt = active rows of the kernel, divided by their sums (so u = 1 is an exact row step).
        if self._work32 is not None:  # float32 copy; work keeps the float64 kernel for verify()
            kernel = self._work32.copy_(work)
            if n_active < self.N:
                if self._gather32 is None:
                    self._gather32 = torch.empty_like(self._work32)
                kernel = torch.index_select(kernel, 0, self.active, out=self._gather32[:n_active])
            self.Kt = kernel.div_(active_sums.float()[:, None])
        else:
            kernel = work if n_active == self.N else work.index_select(0, self.active)
            self.Kt = kernel.div_(active_sums[:, None])
        self.f = -(best.index_select(0, self.active) + torch.log(active_sums))
        self.g = g

    def solve(
        self, lam: float, g: torch.Tensor, tol: float, budget: int, verify: bool
    ) -> tuple[torch.Tensor, int]:
        """Iterate at this lam, from column potentials g, until both marginal errors are below tol or
        ``budget`` iterations are spent. With ``verify`` (and a float32 kernel) the errors are
        confirmed with the float64 kernel of all rows before stopping.

        Returns the column potentials G = g + log v of the last iterate and the iterations used.
        """
        self.lam = lam
        bound, absorb_at = math.exp(_TAU), math.exp(_TAU - 1.0)
        self._rebuild(g)
        stage = {"lam": lam, "iterations": 0, "rebuilds": 1, "active_rows": [self.active.numel()]}
        self.stages.append(stage)
        u = torch.ones_like(self.f)
        v = torch.ones_like(g)
        m = torch.ones_like(g)
        history: list[float] = []
        omega = 1.0
        used = 0
        while used < budget:
            used += 1
            # Row step: every row of Q sums to a (over-relaxed: u <- u (1 / rowsum)^omega). A frozen
            # row's sum is its single entry m_j, which the same step takes to m_j^(1 - omega).
            Kv = (self.Kt @ v.to(self.dtype)).double()
            row = u * Kv  # row sums in units of a, before the step ...
            u.mul_(row.pow(-omega))
            row.pow_(1.0 - omega)  # ... and after it (all 1 for omega = 1)
            m.pow_(1.0 - omega)
            # Column sums of this plan in units of b: the active rows' share plus the frozen rows' mass.
            col = (u.to(self.dtype) @ self.Kt).double().mul_(v).addcmul_(self.n_frozen, m)
            col.mul_(self.M / self.N)
            # One device sync per iteration: extremes of the row sums, u and v, and the errors.
            row_lo, row_hi, u_lo, u_hi, v_lo, v_hi, frozen_err, col_err = torch.cat(
                [
                    _aminmax(row),
                    _aminmax(u),
                    _aminmax(v),
                    torch.stack([(m - 1).abs_().mul_(self.n_frozen > 0).amax(), (col - 1).abs_().amax()]),
                ]
            ).tolist()
            errors = (max(row_hi - 1, 1 - row_lo, frozen_err), col_err)
            if verify and self._work32 is not None and max(errors) < tol:
                errors = self._exact_errors(u, v, m)
            self.errors = errors
            history.append(max(errors))
            if history[-1] < tol:
                break
            # Absorb and restart once u or v leave [e^-(TAU-1), e^(TAU-1)]: v within e^+-TAU keeps
            # Kt and the frozen rows valid; u and v within it keep the float32 products normal.
            if max(u_hi, 1 / u_lo, v_hi, 1 / v_lo) > absorb_at:
                self._rebuild(self.g + torch.log(v))
                stage["rebuilds"] += 1
                stage["active_rows"].append(self.active.numel())
                u = torch.ones_like(self.f)
                v = torch.ones_like(g)
                m = torch.ones_like(g)
                history.clear()
                omega = 1.0
                continue
            omega = _next_omega(history, omega)
            # Column step: every column of Q sums to b (over-relaxed; v never leaves e^+-TAU), and
            # a frozen row's mass m_j moves with v_j.
            v_next = col.reciprocal_().pow_(omega).mul_(v).clamp_(1.0 / bound, bound)
            m.mul_(v_next / v)
            v = v_next
        self.log_u, self.log_m = torch.log(u), torch.log(m)
        self.G = self.g + torch.log(v)
        stage.update(iterations=used, error=max(self.errors))
        return self.G, used

    def _exact_errors(self, u: torch.Tensor, v: torch.Tensor, m: torch.Tensor) -> tuple[float, float]:
        """Marginal errors of the current plan from the float64 kernel of *all* rows (work buffer):
        Q = a diag(w) work diag(v), w = u / rowsum on active rows and m_j / v_j on frozen ones."""
        w = (m / v).index_select(0, self.best_j)
        w.index_copy_(0, self.active, u / self.row_sums.index_select(0, self.active))
        rows = (self._work @ v).mul_(w)
        cols = (w @ self._work).mul_(v).mul_(self.M / self.N)
        row_lo, row_hi, col_lo, col_hi = torch.cat([_aminmax(rows), _aminmax(cols)]).tolist()
        return max(row_hi - 1, 1 - row_lo), max(col_hi - 1, 1 - col_lo)

    def row_potential(self) -> torch.Tensor:
        """F [N] of the last iterate: log a + f + log u on active rows; on a frozen row with best
        cluster j, log a + log m_j - (lam S_ij + G_j), i.e. all of its mass a m_j on cluster j."""
        best, best_j = self.log_kernel(self.G).max(dim=1)
        F = self.log_m[best_j] - best
        F[self.active] = self.f + self.log_u
        return F - math.log(self.N)


def _aminmax(x: torch.Tensor) -> torch.Tensor:
    """[min, max] of x as one tensor; [1, 1] for an empty x (every row frozen)."""
    if x.numel() == 0:
        return x.new_ones(2)
    return torch.stack(torch.aminmax(x))


def _next_omega(history: list[float], omega: float) -> float:
    """Over-relaxation from the observed linear rate rho of the error: omega = 2 / (1 + sqrt(1 - rho)),
    the optimum for a linear iteration with that rate; back to plain Sinkhorn (omega = 1) as soon as
    the error more than doubles in one iteration."""
    if len(history) > 1 and history[-1] > 2 * history[-2]:
        return 1.0
    if len(history) > _WINDOW and history[-1] < history[-1 - _WINDOW]:
        rho = (history[-1] / history[-1 - _WINDOW]) ** (1.0 / _WINDOW)
        return min(2.0 / (1.0 + math.sqrt(1.0 - rho)), _OMEGA_MAX)
    return omega
