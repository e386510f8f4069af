"""Several predictions of one molecule, whose spread the uncertainty strategies score
(:mod:`pipeline.selection.uncertainty`):

* **MC dropout** (Gal & Ghahramani, ICML 2016): S forward passes of one model with dropout active,
  everything else in eval mode (:func:`mc_dropout_predictions`). Needs a model trained with
  ``model.dropout > 0`` (dropout sits in the property head).
* **Query by committee** (Seung et al., 1992): K students fine-tuned from the same teacher with
  different seeds (:func:`train_committee`), each predicting once (:func:`committee_predictions`).

Either gives predictions [K, n, T]. Both take an explicit seed and leave the global random state as
they found it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from pipeline.config.training import TrainConfig
from pipeline.data.graphs import GraphSet
from pipeline.learn.inference import infer
from pipeline.learn.runtime import autocast, batches, seeded_global_rng
from pipeline.learn.train import TrainingDiverged, train_student, transfer
from pipeline.model.asgn import ASGNModel

log = logging.getLogger(__name__)

#: Module types that are random in train mode and the identity in eval mode.
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _dropout_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, _DROPOUT) and m.p > 0}


@torch.no_grad()
def mc_dropout_predictions(
    model: ASGNModel,
    graphs: GraphSet,
    index: np.ndarray | Sequence[int],
    n_samples: int,
    seed: int,
    batch_size: int = 256,
    *,
    amp: bool = True,
) -> np.ndarray:
    """Monte-Carlo dropout predictions [S, n, T] (real units) of the molecules at ``index``.

    Every dropout layer is in train mode (a fresh mask per sample), every other module in eval mode.
    The masks come from the global generators seeded with ``seed`` inside a fork, so the same seed
    (and batch size) gives the same samples and the caller's random state is untouched. Each module's
    train/eval flag is restored afterwards.

    When all dropout sits in the property head (as :class:`~pipeline.model.asgn.ModelConfig` builds it),
    the backbone runs once per batch and only the head is sampled S times; the samples are the same as
    S full forward passes would give.

    Args:
        model: an :class:`~pipeline.model.asgn.ASGNModel` built with ``dropout > 0``, on ``graphs.device``.
        graphs: the packed molecules.
        index: [n] positions in ``graphs``.
        n_samples: S >= 1 stochastic forward passes.
        seed: seed of the dropout masks.
        batch_size: molecules per batch.
        amp: bfloat16 autocast for the backbone on CUDA (as :func:`pipeline.learn.train.infer`).

    Returns:
        float32 [S, n, T].
    """
    if getattr(model.config, "dropout", 0.0) == 0:
        raise ValueError(
            "MC-dropout needs a model with dropout, but this one has config.dropout = 0: set model.dropout "
            "(e.g. 0.1) in the config and retrain, or choose another strategy"
        )
    dropouts = _dropout_modules(model)
    if not dropouts:
        raise ValueError("the model's config has dropout > 0 but the model has no dropout layer with p > 0")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    head_only = all(name.startswith("property_head.") for name in dropouts)
    device = graphs.device
    idx_all = torch.as_tensor(np.asarray(index), dtype=torch.long, device=device)
    out = np.empty((n_samples, len(idx_all), len(model.config.targets)), dtype=np.float32)
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        for m in dropouts.values():
            m.train()
        with seeded_global_rng(seed, device):
            start = 0
            for idx in batches(idx_all, batch_size):
                batch = graphs.batch(idx)
                if head_only:
                    with autocast(device, amp):
                        h = model.embed(batch.z, batch)
                    samples = [model.readout(h, batch)[1] for _ in range(n_samples)]
                else:  # dropout in the backbone too: full forward passes
                    with autocast(device, amp):
                        samples = [model(batch).pred for _ in range(n_samples)]
                out[:, start : start + len(idx)] = torch.stack(samples).float().cpu().numpy()
                start += len(idx)
    finally:
        for m, training in modes.items():
            m.training = training
    return out


def committee_predictions(
    models: Sequence[ASGNModel],
    graphs: GraphSet,
    index: np.ndarray | Sequence[int],
    batch_size: int = 256,
    *,
    amp: bool = True,
) -> np.ndarray:
    """Each committee member's eval-mode predictions [K, n, T] (real units, float32) at ``index``."""
    if len(models) == 0:
        raise ValueError("the committee has no members")
    targets = {tuple(m.config.targets) for m in models}
    if len(targets) > 1:
        raise ValueError(f"committee members predict different targets: {sorted(targets)}")
    return np.stack([infer(m, graphs, index, batch_size, amp)[0] for m in models])


def _member_seed(seed: int, member: int) -> int:
    """Independent 63-bit seed of committee member ``member`` (NumPy SeedSequence([seed, member]))."""
    state = np.random.SeedSequence([seed, member]).generate_state(1, dtype=np.uint64)[0]
    return int(state) >> 1


def train_committee(
    teacher: ASGNModel,
    graphs: GraphSet,
    labelled: np.ndarray,
    y_labelled: np.ndarray,
    val: np.ndarray,
    y_val: np.ndarray,
    cfg: TrainConfig,
    k: int,
    seed: int,
    bootstrap: bool = False,
) -> list[ASGNModel]:
    """QBC's committee: ``k`` students, each the teacher's weights fine-tuned by
    :func:`pipeline.learn.train.train_student` (early stopping on ``val``, best epoch restored).

    Member m draws its shuffling order and dropout masks from the seed
    ``SeedSequence([seed, m])``, so members differ from each other and the committee is the same for
    the same seed. The teacher is not modified, nor is the global random state.

    Args:
        teacher: the round's teacher (any device; members are trained on ``graphs.device``).
        graphs: the packed molecules.
        labelled, y_labelled: [L] positions in ``graphs`` and their labels [L, T] (real units, NaN =
            missing).
        val, y_val: the same for the validation molecules; empty: no early stopping, each member
            trains ``cfg.student_max_epochs`` epochs.
        cfg: training settings (``student_max_epochs``, ``patience``, ``lr``, ...).
        k: committee size, >= 2 for a disagreement to exist (1 is allowed but gives none).
        seed: committee seed.
        bootstrap: train each member on its own resample (with replacement, seeded) of the labelled
            molecules (query by bagging). Without it members differ only by batch order, which is no
            diversity at all when the labelled set fits in one batch.

    Returns:
        The k trained members, in member order.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k (committee size) must be a positive integer, got {k!r}")
    members = []
    for m in range(k):
        member_seed = _member_seed(seed, m)
        with seeded_global_rng(member_seed, graphs.device):
            # builds (randomly initialised) then loads: draws from the RNG; the targets are the
            # first outputs (a teacher's helping properties follow them and are dropped)
            student = transfer(teacher, teacher.config.targets[: np.shape(y_labelled)[1]])
            rows = np.arange(len(labelled))
            if bootstrap:
                rows = np.random.default_rng(member_seed).choice(
                    len(labelled), size=len(labelled), replace=True
                )
            try:
                history = train_student(
                    student,
                    graphs,
                    np.asarray(labelled)[rows],
                    np.asarray(y_labelled)[rows],
                    val,
                    y_val,
                    cfg,
                    generator=torch.Generator().manual_seed(member_seed),
                )
            except TrainingDiverged as err:
                raise TrainingDiverged(f"committee member {m + 1}/{k}, {err}") from None
        scored = [r for r in history if "val_score" in r]  # none when trained without validation
        best = min(scored, key=lambda r: r["val_score"]) if scored else {}
        log.info(
            "committee member %d/%d: %d epochs, best val score %.4g",
            m + 1,
            k,
            len(history),
            best.get("val_score", float("nan")),
        )
        members.append(student)
    return members
