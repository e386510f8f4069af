"""Kernel ridge regression on FCHL19 (pipeline.learn.kernel_ridge): the kernel against qmllib's own
routine, the fit against its definition, the references, the choice on validation."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.learn.kernel_ridge import AtomSet, KernelRidge, fchl19, local_kernels, select

qmllib = pytest.importorskip("qmllib")


@pytest.fixture(scope="module")
def molecules(qm9_graphs):
    """20 QM9 molecules as FCHL19 atom sets, their raw arrays and answer key."""
    graphs, key = qm9_graphs(20)
    z, pos, ptr = graphs.z.numpy(), graphs.pos.numpy().astype(np.float64), graphs.atom_ptr.numpy()
    elements = sorted(set(z.tolist()))
    return fchl19(z, pos, ptr, elements), (z, pos, ptr, elements), key


def test_the_kernel_is_qmllibs_local_kernel(molecules):
    """Per-element matrix products give qmllib's get_local_kernel (its scalar Fortran loop), for a
    square and a rectangular block and several sigmas at once."""
    from qmllib.kernels import get_local_kernel
    from qmllib.representations import generate_fchl19

    atoms, (z, pos, ptr, elements), _ = molecules
    most = int(np.diff(ptr).max())
    reps = np.array(
        [
            generate_fchl19(z[a:b], pos[a:b], elements=elements, pad=most)
            for a, b in zip(ptr[:-1], ptr[1:], strict=True)
        ]
    )
    charges = [z[a:b] for a, b in zip(ptr[:-1], ptr[1:], strict=True)]
    ours = local_kernels(atoms.take(range(12)), atoms.take(range(12, 20)), [1.5, 4.0])
    for k, sigma in enumerate([1.5, 4.0]):
        theirs = get_local_kernel(reps[:12], reps[12:], charges[:12], charges[12:], sigma)  # [n2, n1]
        np.testing.assert_allclose(ours[k], theirs.T, rtol=1e-10, atol=1e-10)
    square = local_kernels(atoms, atoms, [2.0])[0]
    np.testing.assert_allclose(
        square, get_local_kernel(reps, reps, charges, charges, 2.0), rtol=1e-10, atol=1e-10
    )
    np.testing.assert_allclose(square, square.T, atol=1e-10)
    with pytest.raises(ValueError, match="sigmas must be positive"):
        local_kernels(atoms, atoms, [0.0])


def test_take_keeps_the_molecules_asked_for_in_that_order(molecules):
    atoms, _, _ = molecules
    full = local_kernels(atoms, atoms, [3.0])[0]
    order = [7, 2, 19, 0]
    part = atoms.take(order)
    assert part.n_molecules == 4 and np.all(np.diff(part.owner) >= 0)
    np.testing.assert_allclose(local_kernels(part, atoms, [3.0])[0], full[order], rtol=1e-12)
    np.testing.assert_array_equal(part.counts([1, 6, 7, 8]), atoms.counts([1, 6, 7, 8])[order])


def test_the_fit_is_kernel_ridge_regression(molecules):
    """alpha = (K + lam I)^-1 (y - mean); a prediction is K_* alpha + mean; a tiny lambda interpolates."""
    atoms, _, key = molecules
    train, test = atoms.take(range(15)), atoms.take(range(15, 20))
    y = key["homo"].to_numpy()
    model = KernelRidge(sigma=2.0, lam=1e-3).fit(train, y[:15])
    k = local_kernels(train, train, [2.0])[0]
    alpha = np.linalg.solve(k + 1e-3 * np.eye(15), y[:15] - y[:15].mean())
    np.testing.assert_allclose(model.alpha, alpha, rtol=1e-8)
    k_test = local_kernels(test, train, [2.0])[0]
    np.testing.assert_allclose(model.predict(test), k_test @ alpha + y[:15].mean(), rtol=1e-10)
    exact = KernelRidge(sigma=2.0, lam=1e-10).fit(train, y[:15])
    np.testing.assert_allclose(exact.predict(train), y[:15], atol=1e-5)
    with pytest.raises(ValueError, match="finite label"):
        KernelRidge(2.0, 1e-6).fit(train, np.r_[y[:14], np.nan])
    with pytest.raises(ValueError, match="fit the model first"):
        KernelRidge(2.0, 1e-6).predict(test)


def test_extensive_targets_subtract_per_element_references(molecules):
    """A target that is exactly a sum of per-element values is the references alone: the kernel's
    residual is zero and unseen molecules are predicted exactly."""
    atoms, _, _ = molecules
    elements = [1, 6, 7, 8, 9]
    values = np.array([-0.5, -38.0, -54.6, -75.1, -99.7])
    y = atoms.counts(elements) @ values
    model = KernelRidge(sigma=2.0, lam=1e-8, extensive=True).fit(atoms.take(range(14)), y[:14])
    np.testing.assert_allclose(model.predict(atoms.take(range(14, 20))), y[14:], rtol=1e-9)
    assert np.allclose(model.alpha, 0.0, atol=1e-6)


def test_select_chooses_the_lowest_validation_error_of_the_grid(molecules):
    atoms, _, key = molecules
    y = key["u0"].to_numpy()
    train, val = atoms.take(range(12)), atoms.take(range(12, 20))
    sigmas, lambdas = [1.0, 3.0, 9.0], [1e-8, 1e-4]
    model, scores = select(train, y[:12], val, y[12:], sigmas, lambdas, extensive=True)
    brute = {
        (s, lam): float(np.mean(np.abs(KernelRidge(s, lam, True).fit(train, y[:12]).predict(val) - y[12:])))
        for s in sigmas
        for lam in lambdas
    }
    assert scores.keys() == brute.keys()
    np.testing.assert_allclose([scores[k] for k in brute], list(brute.values()), rtol=1e-8)
    assert (model.sigma, model.lam) == min(brute, key=brute.get)


def test_an_element_the_representation_lacks_is_refused():
    z, pos = np.array([6, 1, 1, 1, 1]), np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(ValueError, match=r"atomic numbers \[6\] are not among"):
        fchl19(z, pos, np.array([0, 5]), elements=[1, 8])
    assert isinstance(fchl19(z, pos, np.array([0, 5])), AtomSet)
