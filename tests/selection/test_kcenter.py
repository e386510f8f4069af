"""k-center greedy: exact against brute force, tie-breaking, input forms and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.selection.kcenter import k_center_greedy


def brute_force(X: np.ndarray, labelled: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """O(N^2) farthest-first from the full distance matrix; np.argmax takes the first maximum."""
    X = np.asarray(X, dtype=np.float64)
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1))
    dmin = D[:, labelled].min(axis=1) if labelled.any() else np.full(len(X), np.inf)
    dmin[labelled] = -np.inf
    picks, dist = [], []
    for _ in range(budget):
        i = int(np.argmax(dmin))
        picks.append(i)
        dist.append(dmin[i])
        dmin = np.minimum(dmin, D[i])
        dmin[i] = -np.inf
    return np.array(picks, dtype=np.int64), np.array(dist)


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(20, 250)), int(rng.integers(1, 24))
    centres = rng.normal(scale=10.0, size=(5, d))
    X = centres[rng.integers(0, 5, n)] + rng.normal(size=(n, d)) + rng.uniform(-100, 100)
    if seed % 3 == 0:
        X = np.round(X)  # many exact ties in distance
    n_lab = int(rng.integers(0, n // 2)) if seed % 4 else 0
    labelled = np.zeros(n, dtype=bool)
    labelled[rng.choice(n, n_lab, replace=False)] = True
    budget = int(rng.integers(1, n - n_lab + 1))
    return X, labelled, budget


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("update", ["lazy", "dense"])
def test_exact_against_brute_force(seed, update):
    X, labelled, budget = random_case(seed)
    expected, expected_dist = brute_force(X, labelled, budget)
    picks, dist = k_center_greedy(X, labelled, budget, update=update, return_distances=True)
    assert picks.dtype == np.int64
    np.testing.assert_array_equal(picks, expected)
    np.testing.assert_allclose(dist, expected_dist, rtol=1e-12)
    # The mask and the index array name the same labelled set.
    np.testing.assert_array_equal(
        k_center_greedy(X, np.flatnonzero(labelled), budget, update=update), expected
    )


def test_exact_where_float32_cannot_tell_centres_apart():
    """Labelled points 1e-6 apart on a large offset: the float32 screen ties them, the float64 recheck
    must still find every pool point's true nearest one."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=(40, 8)) * 3 + 1e3
    near = base + rng.normal(size=base.shape) * 1e-6
    pool = base[rng.integers(0, 40, 300)] + rng.normal(size=(300, 8)) * 1e-3
    X = np.concatenate([base, near, pool])
    labelled = np.zeros(len(X), dtype=bool)
    labelled[:80] = True
    np.testing.assert_array_equal(k_center_greedy(X, labelled, 50), brute_force(X, labelled, 50)[0])


def test_exact_with_float32_matmul_precision_relaxed():
    X, labelled, budget = random_case(5)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # may allow bf16 products: screening goes float64
    try:
        picks = k_center_greedy(X, labelled, budget)
    finally:
        torch.set_float32_matmul_precision(previous)
    np.testing.assert_array_equal(picks, brute_force(X, labelled, budget)[0])


@pytest.mark.parametrize("update", ["lazy", "dense"])
def test_ties_go_to_the_lowest_index(update):
    # 1-D points; 1, 2 and 4 are duplicates at distance 10 from the labelled point 0.
    X = np.array([[0.0], [10.0], [10.0], [5.0], [10.0]])
    assert k_center_greedy(X, [0], 4, update=update).tolist() == [1, 3, 2, 4]
    # Nothing labelled: all points are infinitely far, so index 0 comes first.
    picks, dist = k_center_greedy(X, [], 3, update=update, return_distances=True)
    assert picks.tolist() == [0, 1, 3] and dist.tolist() == [np.inf, 10.0, 5.0]


def test_picks_are_distinct_unlabelled_and_their_distances_never_grow():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(500, 16)).astype(np.float32)
    labelled = rng.choice(500, 60, replace=False)
    picks, dist = k_center_greedy(X, labelled, 440, return_distances=True)
    assert len(set(picks.tolist())) == 440
    assert not set(picks.tolist()) & set(labelled.tolist())
    assert np.all(np.diff(dist) <= 0)  # farthest-first: each pick is no farther than the last
    assert sorted(picks.tolist() + labelled.tolist()) == list(range(500))


def test_torch_input_matches_numpy():
    X, labelled, budget = random_case(2)
    expected = k_center_greedy(X, labelled, budget)
    np.testing.assert_array_equal(
        k_center_greedy(torch.from_numpy(X), torch.from_numpy(labelled), budget), expected
    )
    idx = torch.from_numpy(np.flatnonzero(labelled))
    np.testing.assert_array_equal(k_center_greedy(torch.from_numpy(X), idx, budget, device="cpu"), expected)
    X32 = X.astype(np.float32)  # float32 -> float64 is exact, so float32 input equals its upcast
    np.testing.assert_array_equal(
        k_center_greedy(X32, labelled, budget), k_center_greedy(X32.astype(float), labelled, budget)
    )


def test_zero_budget_and_whole_pool():
    X = np.random.default_rng(0).normal(size=(30, 3))
    assert k_center_greedy(X, [1, 2], 0).shape == (0,)
    assert sorted(k_center_greedy(X, [1, 2], 28).tolist()) == [i for i in range(30) if i not in (1, 2)]


@pytest.mark.parametrize(
    ("embeddings", "labelled", "budget", "error", "match"),
    [
        (np.zeros((5, 2)), [0, 1], 4, ValueError, "exceeds the 3 unlabelled"),
        (np.zeros(5), [], 1, ValueError, "2-D"),
        (np.zeros((5, 2, 1)), [], 1, ValueError, "2-D"),
        (np.array([[0.0, np.nan], [1.0, 1.0]]), [], 1, ValueError, "NaN or infinite"),
        (np.array([[0.0, np.inf], [1.0, 1.0]]), [], 1, ValueError, "NaN or infinite"),
        (np.zeros((5, 2)), np.zeros(4, dtype=bool), 1, ValueError, r"mask must have shape \(5,\)"),
        (np.zeros((5, 2)), [5], 1, ValueError, r"in \[0, 5\)"),
        (np.zeros((5, 2)), [-1], 1, ValueError, r"in \[0, 5\)"),
        (np.zeros((5, 2)), [0.5], 1, TypeError, "integers"),
        (np.zeros((5, 2)), [[0, 1]], 1, ValueError, "1-D index array"),
        (np.zeros((5, 2)), [], -1, ValueError, ">= 0"),
        (np.zeros((5, 2)), [], 1.5, TypeError, "integer"),
        ([[0.0, 1.0]], [], 1, TypeError, "numpy.ndarray or torch.Tensor"),
    ],
)
def test_rejects_bad_input(embeddings, labelled, budget, error, match):
    with pytest.raises(error, match=match):
        k_center_greedy(embeddings, labelled, budget)


def test_rejects_unknown_update():
    with pytest.raises(ValueError, match="update"):
        k_center_greedy(np.zeros((3, 2)), [], 1, update="fast")


@pytest.mark.parametrize("name", ["kcenter", "random", "lcmd", "bait", "kmeanspp"])
def test_embedding_strategies_pick_budget_distinct_unlabelled_deterministically(name):
    from pipeline.selection.strategies import SelectionContext, get_strategy

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 4))
    labelled = np.zeros(60, bool)
    labelled[rng.choice(60, 10, replace=False)] = True
    ctx = SelectionContext(emb, labelled, 12, seed=4)
    picks, score = get_strategy(name).pick(ctx)
    again, _ = get_strategy(name).pick(ctx)
    assert len(picks) == 12 == len(set(picks.tolist())) and not labelled[picks].any()
    assert picks.dtype == np.int64 and np.array_equal(picks, again) and len(score) == 12


@pytest.mark.parametrize("name", ["kcenter", "random", "lcmd", "bait", "kmeanspp"])
def test_molecules_left_out_of_the_pool_are_as_if_absent(name):
    """in_pool = False: the strategy picks as it would from the pool without those molecules."""
    from pipeline.selection.strategies import SelectionContext, get_strategy

    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 3))
    labelled = np.zeros(40, bool)
    labelled[:5] = True
    in_pool = np.ones(40, bool)
    in_pool[[7, 20, 33]] = False
    picks, score = get_strategy(name).pick(SelectionContext(emb, labelled, 10, seed=2, in_pool=in_pool))
    kept = np.flatnonzero(in_pool)
    alone, alone_score = get_strategy(name).pick(SelectionContext(emb[kept], labelled[kept], 10, seed=2))
    assert picks.tolist() == kept[alone].tolist() and in_pool[picks].all()
    np.testing.assert_array_equal(score, alone_score)
