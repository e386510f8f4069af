"""The batch strategies (lcmd, bait, kmeanspp): valid picks, seeded, what each method implies, and
the pipeline's LCMD and k-means++ against their definitions and bmdal-reg."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.selection.batch_al import batch_select
from pipeline.selection.strategies import SelectionContext, get_strategy

METHODS = ["lcmd", "bait", "kmeanspp"]


def _case(seed: int, n: int = 80, d: int = 6, n_labelled: int = 8, n_out: int = 5):
    """Clustered embeddings (float32, as the embed stage writes them), labelled and left-out masks."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(scale=4.0, size=(4, d))[rng.integers(0, 4, n)] + rng.normal(size=(n, d)) + 30.0).astype(
        np.float32
    )
    labelled = np.zeros(n, bool)
    labelled[rng.choice(n, n_labelled, replace=False)] = True
    in_pool = np.ones(n, bool)
    in_pool[rng.choice(np.flatnonzero(~labelled), n_out, replace=False)] = False
    return X, labelled, in_pool


@pytest.mark.parametrize("n_labelled", [8, 0])
@pytest.mark.parametrize("method", METHODS)
def test_budget_distinct_candidates_same_picks_per_seed_and_global_rng_untouched(method, n_labelled):
    X, labelled, in_pool = _case(0, n_labelled=n_labelled)
    ctx = SelectionContext(X, labelled, 15, seed=11, in_pool=in_pool)
    # bmdal-reg's k-means++ draws its own first pick (none labelled) from NumPy's legacy generator
    legacy_numpy = np.random.get_state  # noqa: NPY002
    torch_state, numpy_state = torch.random.get_rng_state(), legacy_numpy()
    picks, score = get_strategy(method).pick(ctx)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(legacy_numpy(), numpy_state, strict=True))
    assert picks.dtype == np.int64 and len(picks) == 15 == len(set(picks.tolist()))
    assert in_pool[picks].all() and not labelled[picks].any()
    assert len(score) == 15 and np.isnan(score).all()  # the library gives no per-pick score
    torch.rand(3)  # a caller's draws in between change nothing
    again, _ = get_strategy(method).pick(ctx)
    np.testing.assert_array_equal(picks, again)


def test_kmeanspp_draws_from_the_seed_lcmd_and_bait_draw_nothing():
    X, labelled, _ = _case(1)
    per_seed = {
        m: {tuple(get_strategy(m).pick(SelectionContext(X, labelled, 10, seed=s))[0]) for s in range(4)}
        for m in METHODS
    }
    assert len(per_seed["kmeanspp"]) > 1
    assert len(per_seed["lcmd"]) == 1 and len(per_seed["bait"]) == 1


@pytest.mark.parametrize("method", METHODS)
def test_left_out_molecules_are_as_if_absent(method):
    X, labelled, in_pool = _case(2)
    picks, _ = get_strategy(method).pick(SelectionContext(X, labelled, 12, seed=3, in_pool=in_pool))
    kept = np.flatnonzero(in_pool)
    alone, _ = get_strategy(method).pick(SelectionContext(X[kept], labelled[kept], 12, seed=3))
    assert picks.tolist() == kept[alone].tolist()


@pytest.mark.parametrize("method", METHODS)
def test_budget_limits(method):
    X, labelled, in_pool = _case(3, n=20, n_labelled=5, n_out=3)  # 12 candidates
    everything, _ = get_strategy(method).pick(SelectionContext(X, labelled, 12, seed=0, in_pool=in_pool))
    assert sorted(everything.tolist()) == np.flatnonzero(in_pool & ~labelled).tolist()
    with pytest.raises(ValueError, match="budget 13 exceeds the 12 unlabelled molecules"):
        get_strategy(method).pick(SelectionContext(X, labelled, 13, seed=0, in_pool=in_pool))
    picks, score = get_strategy(method).pick(SelectionContext(X, labelled, 0, seed=0))
    assert picks.dtype == np.int64 and len(picks) == 0 == len(score)


def _groups(seed: int):
    """Two tight clusters A and B and a far group C (d=8), three molecules of A labelled."""
    rng = np.random.default_rng(seed)
    e = np.eye(8)
    centres = np.stack([5 * e[0], 5 * e[1], 20 * e[2]])
    group = rng.permutation(np.repeat([0, 1, 2], [20, 20, 5]))
    X = centres[group] + 0.05 * rng.normal(size=(len(group), 8))
    labelled = np.zeros(len(group), bool)
    labelled[np.flatnonzero(group == 0)[:3]] = True
    return X, group, labelled


@pytest.mark.parametrize("seed", range(4))
def test_picks_cover_the_unlabelled_groups(seed):
    """Budget 3, nothing labelled in B or C (both ~5 or more from every labelled molecule, A's own
    unlabelled ones within ~0.3):

    - LCMD: the largest cluster (sum of squared distances) holds the far molecules; its farthest is
      in B or C; the other group is then the largest cluster's far end: the first two picks are one
      of each.
    - k-means++: draws in proportion to squared distance, A's unlabelled molecules weigh < 1e-4 of
      B's and C's: one of B and C first, then the other (all but surely; the picks are seeded).
    - BAIT: a linear model with an intercept, known on A: B and C are the two unknown directions,
      and each of the first two picks explains one (A's molecules explain nothing new).
    """
    X, group, labelled = _groups(seed)
    for method in METHODS:
        picks, _ = get_strategy(method).pick(SelectionContext(X, labelled, 3, seed=seed))
        assert sorted(group[picks[:2]].tolist()) == [1, 2], method


def _lcmd_reference(X: np.ndarray, labelled: np.ndarray, budget: int) -> list[int]:
    """LCMD by its definition (Holzmüller et al., Algorithm LCMD, TP mode), from the differences:
    every candidate's distance to every centre, the nearest the first of equally near ones."""
    X = X - X.mean(axis=0)
    pool = np.flatnonzero(~labelled)
    centres = list(np.flatnonzero(labelled))
    picks: list[int] = []
    if not centres:  # the largest norm first
        picks.append(int(pool[np.argmax((X[pool] ** 2).sum(axis=1))]))
        centres.append(picks[0])
    D = ((X[pool, None, :] - X[None, centres, :]) ** 2).sum(axis=-1)  # [pool, centres]
    while len(picks) < budget:
        cluster, dist = D.argmin(axis=1), D.min(axis=1)
        largest = np.argmax(np.bincount(cluster, weights=dist, minlength=len(centres)))
        score = np.where(cluster == largest, dist, -np.inf)
        score[np.isin(pool, picks)] = -np.inf
        picks.append(int(pool[np.argmax(score)]))
        D = np.concatenate([D, ((X[pool] - X[picks[-1]]) ** 2).sum(axis=1)[:, None]], axis=1)
    return picks


@pytest.mark.parametrize("n_labelled", [10, 0])
def test_lcmd_is_the_definition(n_labelled):
    X, labelled, _ = _case(4, n=120, n_labelled=n_labelled)
    picks = batch_select(X, labelled, 25, "lcmd", seed=0)
    assert picks.tolist() == _lcmd_reference(X.astype(np.float64), labelled, 25)


def test_lcmd_screening_is_exact_with_many_clusters_and_duplicates():
    """1,500 molecules in 12 groups, every tenth one twice (exact ties: the first centre keeps a
    duplicate, a duplicate of a centre weighs nothing): the screened picks are the definition's."""
    X, labelled, _ = _case(5, n=1_500, d=10, n_labelled=60)
    X[1::10] = X[::10][: len(X[1::10])]
    picks = batch_select(X, labelled, 150, "lcmd", seed=0)
    assert picks.tolist() == _lcmd_reference(X.astype(np.float64), labelled, 150)


@pytest.mark.parametrize("backend", ["pipeline", "bmdal-reg"])
def test_lcmd_gives_a_molecule_equally_near_two_centres_to_the_first(backend):
    """Labelled at 0 and 10; 5 is as near to both. In the first's cluster, that cluster is the
    largest (25 + 42.25 against 42.25) and its farthest member, -6.5, the pick; in the second's,
    16.5 would be. (Every value is exact in binary, the mean 5 included.)"""
    X = np.array([[0.0], [10.0], [5.0], [-6.5], [16.5]])
    picks = batch_select(X, [0, 1], 1, "lcmd", seed=0, backend=backend)
    assert picks.tolist() == [3] == _lcmd_reference(X, np.array([1, 1, 0, 0, 0], bool), 1)


@pytest.mark.parametrize("n_labelled", [30, 0])
def test_lcmd_picks_as_bmdal_reg(n_labelled):
    """The pipeline's LCMD and bmdal-reg's make the same picks (distinct molecules: no ties)."""
    X, labelled, _ = _case(6, n=2_000, d=12, n_labelled=n_labelled)
    ours = batch_select(X, labelled, 120, "lcmd", seed=0)
    np.testing.assert_array_equal(ours, batch_select(X, labelled, 120, "lcmd", seed=0, backend="bmdal-reg"))


def test_kmeanspp_draws_in_proportion_to_squared_distance():
    """One molecule labelled at 0; candidates at distance 1, 2, 0 (its duplicate) and 3: the first
    pick is each with probability 1/14, 4/14, 0, 9/14, over seeds."""
    X = np.array([[0.0], [1.0], [-2.0], [0.0], [3.0]])
    labelled = np.array([True, False, False, False, False])
    first = [int(batch_select(X, labelled, 1, "kmeanspp", seed=s)[0]) for s in range(1_400)]
    counts = np.bincount(first, minlength=5)
    expected = 1_400 * np.array([0, 1, 4, 0, 9]) / 14
    assert counts[0] == 0 and counts[3] == 0
    # within 4 binomial standard deviations of the expected counts
    sd = np.sqrt(expected * (1 - expected / 1_400))
    assert (np.abs(counts - expected) <= 4 * sd + 1e-9).all(), counts


def test_kmeanspp_with_only_duplicates_left_fills_up_at_random(caplog):
    X = np.array([[0.0], [1.0], [0.0], [0.0], [1.0]])  # after one pick at 1, every candidate is a centre
    labelled = np.array([True, False, False, False, False])
    with caplog.at_level("WARNING", logger="pipeline.selection.batch_al"):
        picks = batch_select(X, labelled, 4, "kmeanspp", seed=0)
    assert sorted(picks.tolist()) == [1, 2, 3, 4] and picks[0] in (1, 4)
    assert "every candidate is a centre's duplicate" in caplog.text


@pytest.mark.parametrize("n", [300, 3_000])
def test_bait_with_implicit_updates_picks_as_bmdal_reg(n):
    """The pipeline's BAIT (the library's, the feature matrix's updates kept as one [d, d] factor)
    makes the library's picks: fewer picks than features (exact but for rounding) and many more."""
    X, labelled, _ = _case(7, n=n, d=12, n_labelled=n // 10)
    budget = 8 if n == 300 else 150
    ours = batch_select(X, labelled, budget, "bait", seed=0)
    np.testing.assert_array_equal(
        ours, batch_select(X, labelled, budget, "bait", seed=0, backend="bmdal-reg")
    )


def test_backend_is_checked():
    with pytest.raises(ValueError, match="backend must be 'pipeline' or 'bmdal-reg', got 'fast'"):
        batch_select(np.zeros((4, 2)), [0], 1, "lcmd", seed=0, backend="fast")
