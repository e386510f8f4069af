"""Uncertainty selection's acquisition functions: prediction variance and top-b (properties, brute force)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.selection.uncertainty import prediction_variance, top_b

TARGETS = ("homo", "u0")


# --------------------------------------------------------------------------------------------------
# prediction_variance and top_b


def _disagreeing_preds(rng: np.random.Generator) -> np.ndarray:
    """[K=5, N=12, T=2] predictions that agree closely except at molecules 7 > 3 > 9."""
    preds = rng.normal(size=(1, 12, 2)) + 1e-3 * rng.normal(size=(5, 12, 2))
    for mol, spread in ((7, 3.0), (3, 2.0), (9, 1.0)):
        preds[:, mol, 0] += spread * np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    return preds


def test_top_b_picks_the_molecules_the_committee_disagrees_on():
    preds = _disagreeing_preds(np.random.default_rng(0))
    scores = prediction_variance(preds)
    everyone = np.ones(12, dtype=bool)
    picks = top_b(scores, everyone, 3)
    assert picks.dtype == np.int64
    assert picks.tolist() == [7, 3, 9]  # highest disagreement first
    np.testing.assert_array_equal(top_b(scores, everyone, 3), picks)  # deterministic


def test_top_b_never_picks_a_non_candidate():
    scores = prediction_variance(_disagreeing_preds(np.random.default_rng(1)))
    mask = np.ones(12, dtype=bool)
    mask[[7, 9]] = False  # already labelled
    picks = top_b(scores, mask, 3)
    assert picks[0] == 3 and not set(picks) & {7, 9}
    assert mask[picks].all()


def test_top_b_ties_go_to_the_lowest_index():
    mask = np.array([False, True, True, True, False, True])
    np.testing.assert_array_equal(top_b(np.zeros(6), mask, 3), [1, 2, 3])
    np.testing.assert_array_equal(top_b(np.array([0.0, 1, 2, 2, 2, 2]), mask, 2), [2, 3])


@pytest.mark.parametrize("seed", range(20))
def test_top_b_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    scores = rng.integers(0, 4, size=n).astype(float)  # few distinct values: many ties
    mask = rng.random(n) < 0.6
    b = int(rng.integers(0, mask.sum() + 1))
    expected = sorted(np.flatnonzero(mask), key=lambda i: (-scores[i], i))[:b]
    np.testing.assert_array_equal(top_b(scores, mask, b), np.asarray(expected, dtype=np.int64))


def test_top_b_rejects_bad_requests():
    mask = np.array([True, False, True])
    with pytest.raises(ValueError, match="number of candidates"):
        top_b(np.zeros(3), mask, 3)
    with pytest.raises(ValueError, match="number of candidates"):
        top_b(np.zeros(3), mask, -1)
    with pytest.raises(ValueError, match="boolean"):
        top_b(np.zeros(3), np.array([0, 2]), 1)
    with pytest.raises(ValueError, match="NaN"):
        top_b(np.array([0.0, 1.0, np.nan]), mask, 1)
    assert top_b(np.array([0.0, np.nan, 1.0]), mask, 2).tolist() == [2, 0]  # NaN off the candidates is fine
    assert top_b(np.zeros(3), mask, 0).size == 0


def test_prediction_variance_is_the_variance_over_members_summed_over_targets():
    preds = np.random.default_rng(2).normal(size=(4, 30, 3))
    np.testing.assert_allclose(prediction_variance(preds), np.var(preds, axis=0).sum(axis=1))
    scale = np.array([0.5, 2.0, 10.0])
    np.testing.assert_allclose(
        prediction_variance(preds, scale), np.var(preds / scale, axis=0).sum(axis=1), rtol=1e-12
    )


@pytest.mark.parametrize("seed", range(5))
def test_prediction_variance_does_not_depend_on_units(seed):
    """Rescaling a target together with its scale (eV -> meV), or shifting it, changes nothing."""
    rng = np.random.default_rng(seed)
    preds = rng.normal(size=(3, 25, 2))
    scale = rng.uniform(0.1, 2.0, size=2)
    factor = np.array([1000.0, 1.0])
    base = prediction_variance(preds, scale)
    np.testing.assert_allclose(prediction_variance(preds * factor, scale * factor), base, rtol=1e-10)
    np.testing.assert_allclose(prediction_variance(preds + rng.normal(size=2) * 100, scale), base, rtol=1e-8)


def test_prediction_variance_rejects_bad_input():
    preds = np.zeros((3, 4, 2))
    with pytest.raises(ValueError, match="K members, N molecules, T targets"):
        prediction_variance(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        prediction_variance(np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="shape"):
        prediction_variance(preds, scale=[1.0, 1.0, 1.0])
    for bad in ([1.0, 0.0], [1.0, np.nan], [1.0, -2.0]):
        with pytest.raises(ValueError, match="finite and positive"):
            prediction_variance(preds, scale=bad)
    nan = preds.copy()
    nan[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"molecules \[2\]"):
        prediction_variance(nan)
