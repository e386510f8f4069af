"""Teacher, student, inference and checkpoints on a small real QM9 subset."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
from tiny import tiny_model

from pipeline.config.training import LossWeights, TrainConfig
from pipeline.learn.checkpoint import load_checkpoint, save_checkpoint
from pipeline.learn.inference import infer, mae
from pipeline.learn.losses import grouped_property_loss
from pipeline.learn.train import TeacherData, _pool_targets, train_student, train_teacher, transfer

TARGETS = ("homo", "u0")


@pytest.fixture(scope="module")
def qm9(qm9_graphs):
    graphs, answers = qm9_graphs(120)
    return graphs, answers[list(TARGETS)].to_numpy()


_model = tiny_model


def _split(n):
    perm = np.random.default_rng(0).permutation(n)
    return perm[:30], perm[30:90], perm[90:]


@pytest.mark.parametrize("pseudo_weight", [1.0, 0.3, 0.0])
def test_pseudo_labels_do_not_dilute_the_true_labels(qm9, pseudo_weight):
    """L_p over an epoch is the mean over the true labels plus w times the mean over the
    pseudo-labels, whatever their numbers: 30 true labels weigh the same beside 20 or 60
    pseudo-labels, and w = 0 leaves exactly the true labels' mean."""
    graphs, y = qm9
    lab, unl, _ = _split(len(graphs))
    pred = torch.tensor(y, dtype=torch.float32) + torch.randn(
        len(graphs), 2, generator=torch.Generator().manual_seed(0)
    )
    pseudo = y + np.random.default_rng(1).normal(size=y.shape)
    scale = torch.tensor([0.5, 2.0])

    def epoch_loss(unl_part):
        data = TeacherData(lab, y[lab], unl_part, pseudo[unl_part])
        index, target, weight, _ = _pool_targets(data, 2, len(graphs), torch.device("cpu"), pseudo_weight)
        assert data.property_groups(pseudo_weight, 1.0)["labels"] == {"weight": 1.0, "labels": 60}
        return float(grouped_property_loss(pred[index], target, scale, weight))

    def mean_sq(rows, values):
        return float((((pred[rows] - torch.as_tensor(values, dtype=torch.float32)) / scale) ** 2).mean())

    true = mean_sq(lab, y[lab])
    for part in (unl[:20], unl):
        expected = true + pseudo_weight * mean_sq(part, pseudo[part])
        assert epoch_loss(part) == pytest.approx(expected, rel=1e-5)
    if pseudo_weight == 0:
        data = TeacherData(lab, y[lab], unl, pseudo[unl])
        assert "pseudo_labels" not in data.property_groups(0.0, 1.0)


def test_every_teacher_loss_term_decreases(qm9):
    graphs, y = qm9
    lab, unl, _ = _split(len(graphs))
    cfg = TrainConfig(teacher_epochs=8, cluster_every=2, batch_size=16, lr=3e-3)
    history = train_teacher(_model(), graphs, TeacherData(lab, y[lab], unl), cfg)
    for term in ("property", "atom_type", "distance", "clustering"):
        first, last = history[0][term], history[-1][term]
        assert last < first, f"{term}: {first:.4f} -> {last:.4f}"


def test_teacher_is_deterministic_on_cpu(qm9):
    graphs, y = qm9
    lab, unl, _ = _split(len(graphs))
    cfg = TrainConfig(teacher_epochs=2, cluster_every=1, batch_size=16)
    a, b = _model(), _model()
    train_teacher(a, graphs, TeacherData(lab, y[lab], unl, y_pseudo=y[unl] + 0.1), cfg)
    train_teacher(b, graphs, TeacherData(lab, y[lab], unl, y_pseudo=y[unl] + 0.1), cfg)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_pseudo_labels_reach_the_teacher(qm9):
    """With pseudo-labels the property loss covers unlabelled molecules too, so training differs."""
    graphs, y = qm9
    lab, unl, _ = _split(len(graphs))
    cfg = TrainConfig(teacher_epochs=1, batch_size=16, weights=LossWeights(reconstruction=0, clustering=0))
    plain, pseudo = _model(), _model()
    train_teacher(plain, graphs, TeacherData(lab, y[lab], unl), cfg)
    train_teacher(pseudo, graphs, TeacherData(lab, y[lab], unl, y_pseudo=y[unl]), cfg)
    assert not torch.equal(
        plain.representation.interactions[0].lin1.weight, pseudo.representation.interactions[0].lin1.weight
    )


def test_transfer_copies_exactly_and_student_restores_best_epoch(qm9):
    graphs, y = qm9
    lab, _, val = _split(len(graphs))
    teacher = _model()
    student = transfer(teacher)
    for (name, p), q in zip(teacher.state_dict().items(), student.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
        assert p.data_ptr() != q.data_ptr()  # a copy, not shared storage
    cfg = TrainConfig(student_max_epochs=12, patience=3, batch_size=8)
    history = train_student(student, graphs, lab, y[lab], val, y[val], cfg)
    best = min(history, key=lambda r: r["val_score"])
    pred, _ = infer(student, graphs, val)
    for t, target in enumerate(TARGETS):
        assert mae(pred, y[val])[t] == pytest.approx(best[f"val_mae_{target}"], rel=1e-5)
    assert len(history) <= 12 and not torch.equal(
        teacher.property_head.mlp[0].weight, student.property_head.mlp[0].weight
    )


def test_infer_shapes_and_missing_labels(qm9):
    graphs, y = qm9
    model = _model()
    pred, emb = infer(model, graphs, np.arange(10), batch_size=3)
    assert pred.shape == (10, 2) and emb.shape == (10, 16)
    assert infer(model, graphs, np.arange(0))[0].shape == (0, 2)
    labels = y[:10].copy()
    labels[:5, 0] = np.nan
    assert mae(pred, labels)[0] == pytest.approx(np.abs(pred[5:, 0] - y[5:10, 0]).mean())


def test_missing_labels_do_not_break_training(qm9):
    graphs, y = qm9
    lab, unl, _ = _split(len(graphs))
    y_lab = y[lab].copy()
    y_lab[::2, 1] = np.nan  # half the molecules have no u0
    history = train_teacher(_model(), graphs, TeacherData(lab, y_lab, unl), TrainConfig(teacher_epochs=1))
    assert np.isfinite(history[0]["total"])


def test_unseen_element_is_warned_about(qm9, caplog):
    graphs, y = qm9
    has_f = np.array(
        [bool((graphs.z[graphs.atom_ptr[i] : graphs.atom_ptr[i + 1]] == 9).any()) for i in range(len(graphs))]
    )
    if not has_f.any():
        pytest.skip("no fluorine in this subset")
    lab = np.flatnonzero(~has_f)[:20]
    with caplog.at_level(logging.WARNING):
        train_teacher(
            _model(), graphs, TeacherData(lab, y[lab], np.flatnonzero(has_f)), TrainConfig(teacher_epochs=0)
        )
    assert "atomic numbers [9] occur in no labelled molecule" in caplog.text


def test_checkpoint_round_trip_and_config_mismatch(tmp_path, qm9):
    graphs, _ = qm9
    model = _model()
    model.property_head.scale.fill_(3.0)
    config = {"model": {"hidden": 16}, "train": {"lr": 1e-3}}
    gen = torch.Generator().manual_seed(5)
    save_checkpoint(tmp_path / "teacher.pt", model, config, round=2, generator=gen)
    assert isinstance(torch.load(tmp_path / "teacher.pt", weights_only=True), dict)
    loaded, meta = load_checkpoint(tmp_path / "teacher.pt", config)
    assert meta["round"] == 2 and torch.equal(meta["rng"]["generator"], gen.get_state())
    torch.testing.assert_close(infer(loaded, graphs, np.arange(5))[0], infer(model, graphs, np.arange(5))[0])
    with pytest.raises(ValueError, match=r"different config \(differs at train\.lr\)"):
        load_checkpoint(tmp_path / "teacher.pt", {"model": {"hidden": 16}, "train": {"lr": 5e-4}})
    # a key the checkpoint's config lacks is named, even if the new value is None (an older run.json)
    with pytest.raises(ValueError, match=r"different config \(differs at method\)"):
        load_checkpoint(tmp_path / "teacher.pt", {**config, "method": None})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_student_without_validation_trains_fixed_epochs_and_keeps_final_weights(qm9):
    graphs, y = qm9
    lab, _, _ = _split(len(graphs))
    model = _model()
    history = train_student(
        model, graphs, lab, y[lab], np.arange(0), y[:0], TrainConfig(student_max_epochs=3)
    )
    assert [r["epoch"] for r in history] == [0, 1, 2] and "val_score" not in history[0]


def test_distance_noise_is_the_same_for_both_directions_of_a_pair(qm9):
    from pipeline.learn.train import _noisy

    graphs, _ = qm9
    batch = graphs.batch(np.arange(6))
    noisy = _noisy(batch, 0.1, torch.Generator().manual_seed(0))
    delta = noisy.dist - batch.dist
    key = {(int(i), int(j)): float(d) for i, j, d in zip(*batch.edge_index, delta, strict=True)}
    assert all(abs(d - key[(j, i)]) < 1e-6 for (i, j), d in key.items())
    assert 0.05 < float(delta.std()) < 0.2 and torch.all(noisy.dist >= 0)


def test_mean_teacher_trains_and_ends_on_the_ema_weights(qm9):
    from pipeline.learn.train import train_mean_teacher

    graphs, y = qm9
    lab, unl, _ = _split(len(graphs))
    model = _model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(teacher_epochs=2, batch_size=16, semi="mean_teacher", ema_decay=0.9)
    history = train_mean_teacher(model, graphs, TeacherData(lab, y[lab], unl), cfg)
    assert len(history) == 2 and all(np.isfinite(r["consistency"]) and r["consistency"] > 0 for r in history)
    assert not torch.equal(
        start["representation.interactions.0.lin1.weight"],
        model.state_dict()["representation.interactions.0.lin1.weight"],
    )
    again = _model()
    train_mean_teacher(again, graphs, TeacherData(lab, y[lab], unl), cfg)
    assert torch.equal(
        model.representation.interactions[0].lin1.weight, again.representation.interactions[0].lin1.weight
    )  # seeded
    frozen = _model()
    initial = {k: v.clone() for k, v in frozen.state_dict().items()}
    train_mean_teacher(
        frozen, graphs, TeacherData(lab, y[lab], unl), TrainConfig(teacher_epochs=1, ema_decay=1.0)
    )
    # decay 1: the EMA never moves, so the result is the starting network (scaling buffers refitted)
    assert torch.equal(
        frozen.representation.interactions[0].lin1.weight,
        initial["representation.interactions.0.lin1.weight"],
    )


def test_pseudo_weight_zero_keeps_pseudo_labels_out_of_the_teacher(qm9):
    """losses.pseudo = 0: the teacher's L_p sees only the true labels, whatever the pseudo-labels say."""
    graphs, y = qm9
    lab, unl, _ = _split(len(graphs))
    cfg = TrainConfig(teacher_epochs=1, batch_size=16, weights=LossWeights(pseudo=0.0))
    none, wild = _model(), _model()
    train_teacher(none, graphs, TeacherData(lab, y[lab], unl), cfg)
    train_teacher(wild, graphs, TeacherData(lab, y[lab], unl, y_pseudo=y[unl] + 5.0), cfg)
    for (name, p), q in zip(none.state_dict().items(), wild.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    weighted = _model()
    cfg.weights.pseudo = 0.1
    train_teacher(weighted, graphs, TeacherData(lab, y[lab], unl, y_pseudo=y[unl] + 5.0), cfg)
    assert not torch.equal(
        none.representation.interactions[0].lin1.weight, weighted.representation.interactions[0].lin1.weight
    )


def test_a_supervised_teacher_visits_only_the_labelled_molecules(qm9):
    """No reconstruction, clustering or pseudo-labels: the unlabelled pool has nothing to teach, so
    it is not iterated over (same weights with or without it, and a tenth of the batches)."""
    graphs, y = qm9
    lab, unl, _ = _split(len(graphs))
    cfg = TrainConfig(teacher_epochs=2, batch_size=8, weights=LossWeights(reconstruction=0, clustering=0))
    with_pool, alone = _model(), _model()
    train_teacher(with_pool, graphs, TeacherData(lab, y[lab], unl), cfg)
    train_teacher(alone, graphs, TeacherData(lab, y[lab], unl[:0]), cfg)
    for (name, p), q in zip(with_pool.state_dict().items(), alone.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_plateau_schedule_lowers_the_student_learning_rate(qm9):
    graphs, y = qm9
    lab, _, val = _split(len(graphs))
    kw = dict(student_max_epochs=6, patience=10, batch_size=8, lr=0.05)
    constant = train_student(_model(), graphs, lab, y[lab], val, y[val], TrainConfig(**kw))
    assert {r["lr"] for r in constant} == {0.05}
    plateau = train_student(
        _model(), graphs, lab, y[lab], val, y[val],
        TrainConfig(**kw, lr_schedule="plateau", lr_patience=0, lr_factor=0.5, min_lr=0.01),
    )  # fmt: skip
    lrs = [r["lr"] for r in plateau]
    assert lrs[0] == 0.05 and min(lrs) < 0.05 and min(lrs) >= 0.01 and lrs == sorted(lrs, reverse=True)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainConfig(lr_schedule="cosine")


def test_round_zero_pretrains_for_its_own_epochs():
    cfg = TrainConfig(teacher_epochs=4, pretrain_epochs=12)
    assert cfg.epochs(0) == 12 and cfg.epochs(1) == 4 and TrainConfig(teacher_epochs=4).epochs(0) == 4


def test_teacher_learns_helping_properties_on_every_pool_molecule(qm9):
    """Helpers are extra outputs learnt on every pool molecule (weight losses.helpers): the teacher
    predicts a helper of the unlabelled molecules far better with weight 1 than with 0, while the
    target is learnt from the labels alone; rows of the unlabelled molecules carry no target."""
    graphs, y = qm9
    lab, unl, _ = _split(len(graphs))
    # a helper the network has to learn (no per-element reference gives it): the fraction of H atoms
    z = np.split(graphs.z.numpy(), graphs.atom_ptr[1:-1].numpy())
    aux = np.array([[np.mean(atoms == 1)] for atoms in z])
    data = TeacherData(lab, y[lab, 1:], unl, None, aux[lab], aux[unl])  # u0 is the target
    _, target, weight, _ = _pool_targets(data, 2, len(graphs), torch.device("cpu"), 1.0, helper_weight=0.5)
    assert torch.isnan(target[len(lab) :, 0]).all() and not torch.isnan(target[:, 1]).any()
    rows = len(lab) + len(unl)  # each group's weight times the rows per label of the group
    assert (weight[:, 1] == 0.5 * rows / rows).all() and (weight[: len(lab), 0] == rows / len(lab)).all()

    errors = {}
    for w in (1.0, 0.0):
        model = _model(targets=("u0", "aux"))
        weights = LossWeights(helpers=w, reconstruction=0.0, clustering=0.0)
        cfg = TrainConfig(teacher_epochs=15, batch_size=16, lr=3e-3, weights=weights)
        train_teacher(model, graphs, data, cfg, torch.Generator().manual_seed(0))
        pred, _ = infer(model, graphs, unl)
        errors[w] = float(mae(pred[:, 1:], aux[unl])[0])
    assert errors[1.0] < 0.5 * errors[0.0], errors

    # the student keeps the target's outputs only, predicting them exactly as the teacher does
    student = transfer(model, ["u0"])
    assert student.config.targets == ("u0",) and student.property_head.atomref.shape[1] == 1
    torch.testing.assert_close(infer(student, graphs, unl)[0], infer(model, graphs, unl)[0][:, :1])
    with pytest.raises(ValueError, match=r"no output for \['gap'\]"):
        transfer(model, ["gap"])


@pytest.mark.parametrize(
    ("loop", "settings"),
    [
        ("teacher", "losses.property 1, losses.reconstruction 1, losses.clustering 1"),
        ("mean teacher", "train.consistency 1"),
        ("student", "train.lr inf"),
    ],
)
def test_a_diverging_training_stops_at_its_first_non_finite_loss_naming_loop_epoch_and_settings(
    qm9, loop, settings
):
    """lr = inf ruins the weights at the first step: the epoch's loss is NaN, and the loop stops
    there instead of training on (and writing a checkpoint, a NaN test MAE) for every epoch left."""
    from pipeline.learn.train import TrainingDiverged, train_mean_teacher

    graphs, y = qm9
    lab, unl, val = _split(len(graphs))
    cfg = TrainConfig(lr=float("inf"), teacher_epochs=3, student_max_epochs=3, batch_size=16)
    train = {
        "teacher": lambda m: train_teacher(m, graphs, TeacherData(lab, y[lab], unl), cfg),
        "mean teacher": lambda m: train_mean_teacher(
            m, graphs, TeacherData(lab, y[lab], unl), dataclasses.replace(cfg, semi="mean_teacher")
        ),
        "student": lambda m: train_student(m, graphs, lab, y[lab], val, y[val], cfg),
    }[loop]
    with pytest.raises(TrainingDiverged, match=rf"^{loop} epoch 0: the loss is not finite \(") as err:
        train(_model())
    message = str(err.value)
    assert "training diverged" in message and "train.lr inf" in message and settings in message, message
    assert isinstance(err.value, RuntimeError)  # the CLI prints it as one line, without a traceback
