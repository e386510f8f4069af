"""MC-dropout samples and committees of students on real QM9 (pipeline.learn.uncertainty), and the
uncertainty strategies picking from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import tiny_model
from torch import nn

from pipeline.config.training import TrainConfig
from pipeline.learn.inference import infer
from pipeline.learn.runtime import batches
from pipeline.learn.uncertainty import committee_predictions, mc_dropout_predictions, train_committee
from pipeline.model.asgn import ASGNModel
from pipeline.selection.uncertainty import prediction_variance

TARGETS = ("homo", "u0")


# --------------------------------------------------------------------------------------------------
# MC dropout and committees on a tiny real model


@pytest.fixture(scope="module")
def qm9(qm9_graphs):
    graphs, answers = qm9_graphs(20)
    return graphs, answers[list(TARGETS)].to_numpy()


def _model(dropout=0.3, seed=0) -> ASGNModel:
    model = tiny_model(seed, n_interactions=1, rbf_count=40, dropout=dropout)
    with torch.no_grad():  # non-trivial target scaling, so the readout is exercised
        model.property_head.scale.copy_(torch.tensor([0.3, 2.0]))
        model.property_head.shift.copy_(torch.tensor([-6.0, -10.0]))
    return model


def test_mc_dropout_samples_vary_and_are_reproducible(qm9):
    graphs, _ = qm9
    model = _model()
    index = np.arange(len(graphs))
    rng_before = torch.get_rng_state()
    a = mc_dropout_predictions(model, graphs, index, n_samples=6, seed=1, batch_size=8)
    assert torch.equal(torch.get_rng_state(), rng_before)  # global random state untouched
    assert a.shape == (6, len(graphs), len(TARGETS)) and a.dtype == np.float32
    assert np.isfinite(a).all()
    assert (prediction_variance(a) > 0).all()  # dropout is active: every molecule's samples differ
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(999)  # whatever the caller's random state, the seed decides
        again = mc_dropout_predictions(model, graphs, index, 6, seed=1, batch_size=8)
    np.testing.assert_array_equal(again, a)
    assert not np.array_equal(mc_dropout_predictions(model, graphs, index, 6, seed=2, batch_size=8), a)


@pytest.mark.parametrize("training", [True, False])
def test_mc_dropout_leaves_the_model_as_it_was(qm9, training):
    graphs, _ = qm9
    model = _model()
    index = np.arange(len(graphs))
    before, _ = infer(model, graphs, index)
    model.train(training)
    model.atom_type_head.train(not training)  # mixed modes survive too
    modes = {name: m.training for name, m in model.named_modules()}
    mc_dropout_predictions(model, graphs, index, n_samples=3, seed=0)
    assert {name: m.training for name, m in model.named_modules()} == modes
    after, _ = infer(model, graphs, index)
    np.testing.assert_array_equal(after, before)


def _full_forward_reference(model, graphs, index, n_samples, seed, batch_size):
    """MC dropout the slow, obvious way: S full forward passes per batch, dropout layers in train mode."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.train()
    out = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for idx in batches(torch.as_tensor(index), batch_size):
            batch = graphs.batch(idx)
            out.append(torch.stack([model(batch).pred for _ in range(n_samples)]))
    model.eval()
    return torch.cat(out, dim=1).numpy()


def test_mc_dropout_head_shortcut_equals_full_forward_passes(qm9):
    """Sampling only the property head on cached embeddings gives exactly the full model's samples."""
    graphs, _ = qm9
    model = _model()
    index = np.arange(3, len(graphs))
    fast = mc_dropout_predictions(model, graphs, index, n_samples=4, seed=5, batch_size=7)
    np.testing.assert_array_equal(fast, _full_forward_reference(model, graphs, index, 4, 5, 7))


def test_mc_dropout_in_the_backbone_samples_the_backbone(qm9):
    graphs, _ = qm9
    model = _model(dropout=0.1)
    model.representation.interactions[0].lin = nn.Sequential(
        nn.Dropout(0.5), model.representation.interactions[0].lin
    )
    index = np.arange(len(graphs))
    got = mc_dropout_predictions(model, graphs, index, n_samples=3, seed=3, batch_size=16)
    np.testing.assert_array_equal(got, _full_forward_reference(model, graphs, index, 3, 3, 16))


def test_mc_dropout_needs_dropout(qm9):
    graphs, _ = qm9
    with pytest.raises(ValueError, match="model.dropout"):
        mc_dropout_predictions(_model(dropout=0.0), graphs, np.arange(5), n_samples=4, seed=0)
    with pytest.raises(ValueError, match="n_samples"):
        mc_dropout_predictions(_model(), graphs, np.arange(5), n_samples=0, seed=0)


def _params(model: ASGNModel) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_committee_members_differ_and_are_reproducible(qm9):
    graphs, y = qm9
    perm = np.random.default_rng(0).permutation(len(graphs))
    lab, val, pool = perm[:8], perm[8:14], perm[14:]
    cfg = TrainConfig(student_max_epochs=2, batch_size=4, lr=3e-3)
    teacher = _model(dropout=0.2)  # dropout masks are drawn per member too, from its seed
    teacher_params = _params(teacher).clone()
    rng_before = torch.get_rng_state()

    committee = train_committee(teacher, graphs, lab, y[lab], val, y[val], cfg, k=3, seed=11)
    assert len(committee) == 3
    assert torch.equal(_params(teacher), teacher_params)  # the teacher is not trained
    assert torch.equal(torch.get_rng_state(), rng_before)
    members = [_params(m) for m in committee]
    for i, p in enumerate(members):
        assert not torch.equal(p, teacher_params), f"member {i} equals the teacher"
        for j in range(i):
            assert not torch.equal(p, members[j]), f"members {j} and {i} are identical"

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(999)  # whatever the caller's random state, the seed decides
        again = train_committee(teacher, graphs, lab, y[lab], val, y[val], cfg, k=3, seed=11)
    for i, (p, q) in enumerate(zip(members, map(_params, again), strict=True)):
        assert torch.equal(p, q), f"member {i} differs between two runs with the same seed"

    preds = committee_predictions(committee, graphs, pool)
    assert preds.shape == (3, len(pool), len(TARGETS))
    np.testing.assert_array_equal(preds[1], infer(committee[1], graphs, pool)[0])
    assert (prediction_variance(preds, scale=np.nanstd(y[lab], axis=0)) > 0).all()
    with pytest.raises(ValueError, match="no members"):
        committee_predictions([], graphs, pool)


# --------------------------------------------------------------------------------------------------
# The strategies (pipeline.selection.strategies) on a SelectionContext


@pytest.mark.parametrize("name", ["mc_dropout", "qbc"])
def test_uncertainty_strategies_pick_the_most_uncertain_pool_molecules(qm9, name):
    from pipeline.selection.strategies import SelectionContext, get_strategy

    graphs, y = qm9
    n = len(graphs)
    index = np.random.default_rng(2).permutation(n)  # the pool's order differs from the graphs'
    labelled = np.zeros(n, bool)
    labelled[:6] = True
    in_pool = np.ones(n, bool)
    in_pool[10] = False  # the oracle failed on it
    train = TrainConfig(student_max_epochs=1, batch_size=4, eval_batch_size=8)
    model = _model(dropout=0.3)
    lab = index[labelled]

    def samples(rows):  # what the select stage hands the strategy: the pool rows' predictions
        if name == "mc_dropout":
            return mc_dropout_predictions(model, graphs, index[rows], 4, seed=7, batch_size=8)
        committee = train_committee(
            model, graphs, lab, y[lab], lab[:0], y[:0], train, k=2, seed=7, bootstrap=True
        )
        return committee_predictions(committee, graphs, index[rows], 8)

    ctx = SelectionContext(
        np.zeros((n, 2)), labelled, 5, seed=7, in_pool=in_pool, samples=samples, y_labelled=y[lab]
    )
    picks, score = get_strategy(name).pick(ctx)
    again, _ = get_strategy(name).pick(ctx)
    np.testing.assert_array_equal(picks, again)
    todo = np.flatnonzero(~labelled)
    samples = samples(todo)
    variance = np.full(n, np.nan)
    variance[todo] = prediction_variance(samples, np.nanstd(y[lab], axis=0))
    candidates = np.flatnonzero(~labelled & in_pool)
    expected = candidates[np.argsort(-variance[candidates], kind="stable")[:5]]
    assert picks.tolist() == expected.tolist() and 10 not in picks
    np.testing.assert_array_equal(score, variance[picks])
