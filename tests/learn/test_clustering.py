"""Sinkhorn cluster assignment: balance, the transport plan's marginals, invariances, input checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from pipeline.learn.clustering import _THETA, _ScalingSolver, _transport, sinkhorn

N, M = 10_000, 10


def scores(kind: str, n: int = N, m: int = M, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, m, generator=g, dtype=torch.float64)
    if kind == "biased":  # column j gets +2j/(m-1): argmax fills the last clusters
        return z + torch.linspace(0, 2, m, dtype=torch.float64)
    if kind == "skewed":  # every row prefers cluster 0 by ~10 logits
        return z + 10.0 * (torch.arange(m) == 0)
    if kind == "sharp":  # nearly one-hot P, the slow case for plain Sinkhorn
        return 20.0 * z
    return z


def max_count_deviation(labels: torch.Tensor, m: int) -> float:
    counts = torch.bincount(labels, minlength=m).double()
    return float((counts / (labels.numel() / m) - 1).abs().max())


@pytest.mark.parametrize("kind", ["biased", "skewed", "sharp"])
def test_counts_near_uniform_where_argmax_is_not(kind):
    s = scores(kind)
    labels = sinkhorn(s)
    assert labels.dtype == torch.int64 and labels.shape == (N,)
    assert max_count_deviation(labels, M) < 0.03  # every cluster within 3% of N / M
    if kind != "sharp":
        assert max_count_deviation(s.argmax(dim=1), M) > 0.5  # plain argmax: far from it
    if kind == "skewed":
        assert bool((s.argmax(dim=1) == 0).all())  # argmax puts everything in cluster 0


def test_many_clusters_on_skewed_scores():
    s = scores("skewed", n=20_000, m=100, seed=3)
    assert max_count_deviation(sinkhorn(s), 100) < 0.15  # 200 per cluster, within 30


def test_deterministic():
    s = scores("sharp", seed=1)
    assert torch.equal(sinkhorn(s), sinkhorn(s.clone()))


@pytest.mark.parametrize("kind", ["random", "skewed", "sharp"])
@pytest.mark.parametrize("tol", [1e-3, 1e-7])
def test_plan_marginals_within_tol(kind, tol):
    s = scores(kind, n=2_000, m=7, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged: no "stopped after n_iter" warning
        t = _transport(s, lam=25.0, n_iter=5_000, tol=tol)
    Q = t.plan()
    assert torch.isfinite(Q).all() and (Q >= 0).all()
    n, m = Q.shape
    assert float((Q.sum(dim=1) * n - 1).abs().max()) < tol  # rows sum to 1/N
    assert float((Q.sum(dim=0) * m - 1).abs().max()) < tol  # columns sum to 1/M
    assert max(t.row_error, t.col_error) < tol
    assert torch.equal(t.labels(), Q.argmax(dim=1))  # hard ids are the plan's row argmax


def test_only_rows_with_negligible_runners_up_are_frozen():
    """Truncation invariant: a row leaves the products only if every runner-up is below e^-THETA of
    its best entry (here e^-40 < 1e-16 must still count, e^-(THETA+5) must not)."""
    lam = 25.0
    S = torch.tensor([[0.0, -40 / lam], [0.0, -(_THETA + 5) / lam], [0.0, 0.0]], dtype=torch.float64)
    for dtype in (torch.float32, torch.float64):
        solver = _ScalingSolver(S, dtype)
        solver.lam = lam
        solver._rebuild(torch.zeros(2, dtype=torch.float64))
        assert solver.active.tolist() == [0, 2]
        assert solver.n_frozen.tolist() == [1.0, 0.0]


def test_float32_fast_path_and_float64_path_agree():
    s = scores("sharp", n=3_000, seed=8)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # disables the float32 products
    try:
        t64 = _transport(s, lam=25.0, n_iter=2_000, tol=1e-3)
    finally:
        torch.set_float32_matmul_precision(previous)
    t32 = _transport(s, lam=25.0, n_iter=2_000, tol=1e-3)
    assert t64.solver.dtype == torch.float64 and t32.solver.dtype == torch.float32
    assert max(t64.row_error, t64.col_error, t32.row_error, t32.col_error) < 1e-3
    assert float((t32.labels() != t64.labels()).double().mean()) < 0.01


def test_labels_match_a_plain_log_domain_sinkhorn():
    """On a small problem, the accelerated solver agrees with textbook log-domain Sinkhorn-Knopp."""
    s = scores("biased", n=600, m=6, seed=4)
    log_k = 25.0 * torch.log_softmax(s, dim=1)
    f, g = torch.zeros(600, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    for _ in range(5_000):
        f = -np.log(600) - torch.logsumexp(log_k + g, dim=1)
        g = -np.log(6) - torch.logsumexp(log_k + f[:, None], dim=0)
    assert torch.equal(sinkhorn(s, tol=1e-7), (log_k + g).argmax(dim=1))


def test_invariant_to_adding_a_constant_to_a_row():
    s = scores("biased", seed=5)
    shift = 37.0 * torch.arange(N, dtype=torch.float64)[:, None] - 1e3
    assert torch.equal(sinkhorn(s), sinkhorn(s + shift))


def test_float32_input_with_lam_25_has_no_nan():
    s = scores("sharp", seed=6).float()
    assert not torch.isfinite(torch.exp(25.0 * s)).all()  # the naive (SwAV-style) kernel overflows
    t = _transport(s, lam=25.0, n_iter=1_000, tol=1e-3)
    assert torch.isfinite(t.plan()).all()
    labels = t.labels()
    assert torch.equal(labels, sinkhorn(s.double()))  # float32 -> float64 is exact
    assert max_count_deviation(labels, M) < 0.03


def test_numpy_input_and_lam():
    s = scores("biased", seed=7)
    labels = sinkhorn(s.numpy())
    assert isinstance(labels, torch.Tensor) and labels.device.type == "cpu"
    assert torch.equal(labels, sinkhorn(s))
    soft = sinkhorn(s, lam=1.0)  # a different lam gives a (slightly) different, still balanced answer
    assert max_count_deviation(soft, M) < 0.05


def test_ties_go_to_the_lowest_cluster_id():
    # Identical rows, identical columns: Q is uniform, every row ties, and cluster 0 wins.
    assert torch.equal(sinkhorn(torch.zeros(5, 3)), torch.zeros(5, dtype=torch.int64))


def test_single_row_and_fewer_rows_than_clusters():
    # One row must spread evenly over the clusters (Q's row is uniform up to tol): any id is valid.
    assert sinkhorn(torch.tensor([[0.0, 3.0, 1.0]])).tolist()[0] in (0, 1, 2)
    labels = sinkhorn(scores("random", n=4, m=10))
    assert labels.shape == (4,) and int(labels.max()) < 10


def test_warns_when_n_iter_runs_out():
    with pytest.warns(RuntimeWarning, match="n_iter=2"):
        labels = sinkhorn(scores("sharp", n=1_000), n_iter=2)
    assert labels.shape == (1_000,)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.zeros(5), ValueError, "2-D"),
        (torch.zeros(2, 3, 4), ValueError, "2-D"),
        (torch.zeros(5, 1), ValueError, "at least 2 clusters"),
        (torch.zeros(0, 3), ValueError, "no rows"),
        (torch.tensor([[0.0, float("nan")]]), ValueError, "NaN or infinite"),
        (torch.tensor([[0.0, float("inf")], [1.0, 2.0]]), ValueError, "NaN or infinite"),
        (torch.tensor([[0.0, -float("inf")], [1.0, 2.0]]), ValueError, "NaN or infinite"),
        (np.array([["a", "b"]]), TypeError, "real-valued"),
        ([[0.0, 1.0]], TypeError, "torch.Tensor or numpy.ndarray"),
    ],
)
def test_rejects_bad_scores(bad, error, match):
    with pytest.raises(error, match=match):
        sinkhorn(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"lam": 0.0}, "lam"), ({"lam": float("nan")}, "lam"), ({"n_iter": 0}, "n_iter"), ({"tol": 0.0}, "tol")],
)
def test_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sinkhorn(torch.zeros(3, 2), **kwargs)
