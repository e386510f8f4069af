"""The kernel student (student_kind krr, pipeline.learn.kernel_student): its fit against the
definition, invariances a chemist expects, missing labels, and its checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config.training import KernelSettings
from pipeline.learn.checkpoint import load_checkpoint
from pipeline.learn.kernel_ridge import KernelRidge, local_kernels
from pipeline.learn.kernel_student import (
    atoms_of,
    elements_of,
    fit_kernel_student,
    load_kernel_student,
    save_kernel_student,
)

pytest.importorskip("qmllib")

TARGETS = ["homo", "u0"]
GRID = KernelSettings(sigmas=[2.0, 8.0], lambdas=[1e-8, 1e-4])


@pytest.fixture(scope="module")
def fitted(qm9_graphs):
    graphs, key = qm9_graphs(120)
    train, val, test = np.arange(0, 80), np.arange(80, 100), np.arange(100, 120)
    y = key[TARGETS].to_numpy(np.float64)
    student = fit_kernel_student(graphs, train, y[train], val, y[val], TARGETS, GRID)
    return graphs, y, (train, val, test), student


def test_each_target_is_the_krr_of_its_chosen_settings(fitted):
    """The student's prediction is KernelRidge's at the (sigma, lambda) with the lowest validation
    MAE: U0 after per-element references, HOMO after the mean; the grid is recorded per target."""
    graphs, y, (train, val, test), student = fitted
    elements = elements_of(graphs)
    a_train, a_test = atoms_of(graphs, train, elements), atoms_of(graphs, test, elements)
    pred = student.predict(graphs, test, chunk=7)  # several chunks
    for k, target in enumerate(TARGETS):
        grid = student.grid[target]
        assert len(grid) == 4
        best = min(grid, key=grid.get)
        sigma, lam = map(float, best.split(","))
        assert student.chosen()[target] == {"sigma": sigma, "lambda": lam}
        direct = KernelRidge(sigma, lam, extensive=target == "u0").fit(a_train, y[train, k])
        np.testing.assert_allclose(pred[:, k], direct.predict(a_test), rtol=1e-9, atol=1e-9)
    # it learnt something beyond what it starts from (the mean; per-element references for U0), on
    # the test molecules whose elements all occur in training (an element never seen has no reference)
    seen = np.array([set(a_test.z[a_test.owner == i]) <= set(a_train.z) for i in range(len(test))])
    start = [
        np.full(len(test), y[train, 0].mean()),
        a_test.counts(elements) @ np.linalg.lstsq(a_train.counts(elements), y[train, 1], rcond=None)[0],
    ]
    for k in range(2):
        assert (
            np.abs(pred[seen, k] - y[test][seen, k]).mean() < 0.9 * np.abs(start[k] - y[test, k])[seen].mean()
        )


def test_predictions_do_not_depend_on_orientation_or_atom_order(fitted):
    """A molecule rotated, moved and with its atoms listed in another order gets the same prediction
    (FCHL19 and the kernel are invariant)."""
    graphs, _, (_, _, test), student = fitted
    m = int(test[0])
    a, b = int(graphs.atom_ptr[m]), int(graphs.atom_ptr[m + 1])
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))[0]
    perm = torch.randperm(b - a, generator=torch.Generator().manual_seed(1))
    moved = graphs.subset([m])
    moved.z = moved.z[perm]
    moved.pos = (moved.pos[perm] @ rot.T + torch.tensor([3.0, -1.0, 2.0])).to(moved.pos.dtype)
    ours = student.predict(graphs, [m])  # the training vectors are kept from the fit
    np.testing.assert_allclose(student.predict(moved, [0]), ours, rtol=1e-4, atol=1e-4)


def test_missing_labels_leave_their_molecules_out_of_that_target_only(fitted):
    """A NaN label (the oracle failed on that target) drops the molecule from that target's fit, the
    same as fitting without it; the other target still uses every molecule."""
    graphs, y, (train, val, test), _ = fitted
    y_train = y[train].copy()
    y_train[[3, 41], 0] = np.nan
    one = KernelSettings(sigmas=[4.0], lambdas=[1e-6])
    with_nan = fit_kernel_student(graphs, train, y_train, val, y[val], TARGETS, one)
    kept = np.setdiff1d(np.arange(len(train)), [3, 41])
    without = fit_kernel_student(graphs, train[kept], y[train][kept], val, y[val], TARGETS, one)
    everything = fit_kernel_student(graphs, train, y[train], val, y[val], TARGETS, one)
    np.testing.assert_allclose(with_nan.predict(graphs, test)[:, 0], without.predict(graphs, test)[:, 0])
    np.testing.assert_allclose(with_nan.predict(graphs, test)[:, 1], everything.predict(graphs, test)[:, 1])
    y_train[:, 0] = np.nan
    with pytest.raises(ValueError, match="no training label of homo"):
        fit_kernel_student(graphs, train, y_train, val, y[val], TARGETS, one)


def test_the_checkpoint_predicts_the_same_and_refuses_other_configs(fitted, tmp_path):
    graphs, _, (_, _, test), student = fitted
    path = tmp_path / "student.pt"
    save_kernel_student(path, student, {"run": "a", "student_kind": "krr"}, round=2)
    again = load_kernel_student(path, {"run": "a", "student_kind": "krr"})
    np.testing.assert_array_equal(again.predict(graphs, test), student.predict(graphs, test))
    assert again.chosen() == student.chosen() and again.grid == student.grid
    with pytest.raises(ValueError, match=r"a checkpoint of run 'a' \(round 2\), read by run 'b'"):
        load_kernel_student(path, {"run": "b", "student_kind": "krr"})
    with pytest.raises(ValueError, match=r"the checkpoint of round 2 of run 'a', read as round 1's"):
        load_kernel_student(path, {"run": "a", "student_kind": "krr"}, round=1)
    with pytest.raises(ValueError, match=r"different config \(differs at student_kind\)"):
        load_kernel_student(path, {"run": "a", "student_kind": "other"}, round=2)
    with pytest.raises(ValueError, match="a kernel student .*not a network checkpoint"):
        load_checkpoint(path)


def test_the_kernel_it_predicts_with_is_symmetric_in_its_training_set(fitted):
    """Sanity of the pieces it is made of: the training kernel is symmetric and positive semi-definite
    (what the Cholesky solve relies on)."""
    graphs, _, (train, _, _), _ = fitted
    atoms = atoms_of(graphs, train, elements_of(graphs))
    k = local_kernels(atoms, atoms, [4.0])[0]
    np.testing.assert_allclose(k, k.T, atol=1e-9)
    assert np.linalg.eigvalsh(k).min() > -1e-8 * np.abs(k).max()


def test_teacher_features_are_its_standardised_embeddings_and_need_that_teacher(fitted, tmp_path):
    """krr.features teacher: the atoms' vectors are the teacher's node embeddings h, each feature
    standardised on the training atoms; the fit is KRR on exactly those vectors; the checkpoint
    predicts the same with that teacher and refuses to predict without it or with another."""
    from tiny import tiny_model

    from pipeline.learn.kernel_student import TeacherFeatures

    graphs, y, (train, val, test), _ = fitted
    teacher = tiny_model(0).eval()
    settings = KernelSettings(sigmas=[2.0, 8.0], lambdas=[1e-8, 1e-4], features="teacher")
    with pytest.raises(ValueError, match="needs the round's teacher"):
        fit_kernel_student(graphs, train, y[train], val, y[val], TARGETS, settings)
    student = fit_kernel_student(graphs, train, y[train], val, y[val], TARGETS, settings, teacher)
    assert student.features == "teacher"
    with torch.no_grad():
        h = teacher(graphs.batch(torch.as_tensor(train))).node.double().numpy()
    x = student.teacher(graphs, train).x
    np.testing.assert_allclose(x, (h - h.mean(0)) / h.std(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-9)
    pred = student.predict(graphs, test)
    encoder = TeacherFeatures(teacher, student.teacher.mean, student.teacher.scale)
    for k, target in enumerate(TARGETS):
        chosen = student.chosen()[target]
        direct = KernelRidge(chosen["sigma"], chosen["lambda"], extensive=target == "u0")
        direct.fit(encoder(graphs, train), y[train, k])
        np.testing.assert_allclose(pred[:, k], direct.predict(encoder(graphs, test)), rtol=1e-9, atol=1e-9)
    path = tmp_path / "student.pt"
    with pytest.raises(ValueError, match="records its teacher's checksum"):
        save_kernel_student(path, student, {"run": "a"}, round=0)
    save_kernel_student(path, student, {"run": "a"}, round=0, teacher_sha256="ab" * 32)
    with pytest.raises(ValueError, match="give the teacher it was fitted on"):
        load_kernel_student(path)
    with pytest.raises(ValueError, match="embeddings of another teacher"):
        load_kernel_student(path, teacher=teacher, teacher_sha256="cd" * 32)
    again = load_kernel_student(path, teacher=teacher, teacher_sha256="ab" * 32)
    np.testing.assert_allclose(again.predict(graphs, test), pred, rtol=1e-9, atol=1e-9)
    other = tiny_model(1).eval()  # other weights: other features, other predictions
    assert not np.allclose(load_kernel_student(path, teacher=other).predict(graphs, test), pred)


def test_posterior_picks_are_the_greedy_gaussian_process_variance_picks(fitted):
    """The greedy batch equals the brute force: at each step the candidate whose summed posterior
    variance (each target's GP: its kernel and sigma, noise lambda, given the training molecules and
    the picks so far; in units of the candidates' mean prior variance) is largest, recomputed from
    scratch with the full covariance matrices."""
    from scipy.linalg import solve

    from pipeline.learn.kernel_ridge import self_kernels

    graphs, _, (train, val, test), student = fitted
    candidates = np.concatenate([val, test])
    picks, scores = student.posterior_picks(graphs, candidates, budget=6)
    elements = elements_of(graphs)
    everything = atoms_of(graphs, np.concatenate([train, candidates]), elements)
    n_train = len(train)
    kernels = {t: local_kernels(everything, everything, [m.sigma])[0] for t, m in student.models.items()}
    for t, m in student.models.items():  # the self-kernel is the kernel matrix's diagonal
        np.testing.assert_allclose(self_kernels(everything, m.sigma), np.diag(kernels[t]), rtol=1e-10)
    chosen: list[int] = []
    for step in range(6):
        total = np.zeros(len(candidates))
        for t, m in student.models.items():
            k = kernels[t]
            observed = np.r_[np.arange(n_train), n_train + np.array(chosen, dtype=np.int64)]
            cand = n_train + np.arange(len(candidates))
            k_co = k[np.ix_(cand, observed)]
            cov = k[np.ix_(cand, cand)] - k_co @ solve(
                k[np.ix_(observed, observed)] + m.lam * np.eye(len(observed)), k_co.T
            )
            total += np.diag(cov) / np.diag(k[np.ix_(cand, cand)]).mean()
        total[chosen] = -np.inf
        assert picks[step] == int(np.argmax(total))
        np.testing.assert_allclose(scores[step], total.max(), rtol=1e-6, atol=1e-9)
        chosen.append(int(picks[step]))
    assert len(set(picks.tolist())) == 6 and (np.diff(scores) <= 1e-12).all()  # variances only fall
    with pytest.raises(ValueError, match="budget 41 must be between 1 and the 40 candidates"):
        student.posterior_picks(graphs, candidates, budget=41)
