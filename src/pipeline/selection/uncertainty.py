"""Uncertainty-based batch selection: MC-dropout and query-by-committee disagreement.

The paper's uncertainty baselines (Hao et al., KDD 2020) pick the pool molecules on which the model is
least sure, measured by the spread of several predictions of the same molecule:

* **MC dropout** (Gal & Ghahramani, ICML 2016; BALD-style for regression): S forward passes of one
  model with dropout active, everything else in eval mode (:func:`mc_dropout_predictions`). Needs a
  model trained with ``model.dropout > 0`` (dropout sits in the property head).
* **Query by committee** (Seung et al., 1992): K students fine-tuned from the same teacher with
  different seeds (:func:`train_committee`), each predicting once (:func:`committee_predictions`).

Either gives predictions ``preds`` [K, n, T]; the acquisition score of molecule i is the variance over
the K predictions, each target in units of its scale s_t, summed over targets,

    u_i = sum_t Var_k(preds[k, i, t] / s_t),

(:func:`prediction_variance`) and the batch is the b highest scores among the candidates, ties to the
lowest index (:func:`top_b`). Both are pure NumPy functions; the two prediction functions take an
explicit seed and leave the global random state as they found it.

How they fit together, as the ``mc_dropout`` and ``qbc`` strategies of
:mod:`pipeline.selection.strategies` use them (graphs, positions and labels as in
:func:`pipeline.stages.rounds.student`; ``pool`` the sorted positions of the unlabelled pool molecules, ``b`` the batch size)::

    student, _ = load_checkpoint(round_dir / "student.pt", cfg.as_dict(), device)
    # MC dropout:
    preds = mc_dropout_predictions(student, graphs, pool, n_samples=20, seed=seed)
    # or QBC from the teacher's checkpoint (the qbc strategy: no validation set, bootstrap=True):
    committee = train_committee(
        teacher, graphs, lab_idx, y_lab, lab_idx[:0], y_lab[:0], train_cfg, k=4, seed=seed, bootstrap=True
    )
    preds = committee_predictions(committee, graphs, pool)
    scores = prediction_variance(preds, scale=np.nanstd(y_lab, axis=0))
    order = top_b(scores, np.ones(len(pool), dtype=bool), b)
    picks, pick_scores = pool[order], scores[order]   # positions in graphs, and the per-pick score

``pool`` sorted ascending keeps "ties to the lowest index" true for the molecules' positions too. The
labelled std is the natural scale; for extensive targets fitted with per-element references
(``atomref``) the std of the residuals (what :func:`pipeline.learn.scaling.fit_scaler` returns) is the fairer
unit, as the model's errors are on that scale. With a single target the scale does not change the picks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from pipeline.data.graphs import GraphSet
from pipeline.learn.train import (
    TrainConfig,
    autocast,
    batches,
    infer,
    seeded_global_rng,
    train_student,
    transfer,
)
from pipeline.model.asgn import ASGNModel

log = logging.getLogger(__name__)

__all__ = [
    "committee_predictions",
    "mc_dropout_predictions",
    "prediction_variance",
    "top_b",
    "train_committee",
]

#: Module types that are random in train mode and the identity in eval mode.
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


# --------------------------------------------------------------------------------------------------
# Acquisition functions (pure NumPy)


def prediction_variance(preds: np.ndarray, scale: np.ndarray | Sequence[float] | None = None) -> np.ndarray:
    """Disagreement of K predictions per molecule: u_i = sum_t Var_k(preds[k, i, t] / scale[t]).

    Args:
        preds: [K, N, T] predictions of N molecules by K committee members or MC-dropout samples
            (K >= 2), finite.
        scale: [T] positive per-target scale (e.g. the labelled std), so that targets in different
            units weigh the same; default 1 for every target.

    Returns:
        [N] float64 scores: the population variance over K (``np.var``, ddof 0) of the scaled
        predictions, summed over targets. Invariant to shifting a target and to scaling a target
        together with its scale.
    """
    p = np.asarray(preds)
    if p.ndim != 3:
        raise ValueError(
            f"preds must be [K members, N molecules, T targets], got shape {p.shape} "
            "(for a single target use preds[..., None])"
        )
    if not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)):
        raise TypeError(f"preds must be real-valued, got dtype {p.dtype}")
    K, _, T = p.shape
    if K < 2:
        raise ValueError(f"need at least 2 predictions per molecule to measure disagreement, got K={K}")
    p = p.astype(np.float64)
    finite = np.isfinite(p).all(axis=(0, 2))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"preds contain NaN or infinite values for molecules {bad[:5].tolist()} (of {bad.size})"
        )
    if scale is None:
        s = np.ones(T)
    else:
        s = np.asarray(scale, dtype=np.float64)
        if s.shape != (T,):
            raise ValueError(f"scale must have shape ({T},) to match preds' {T} targets, got {s.shape}")
        if not (np.isfinite(s).all() and (s > 0).all()):
            raise ValueError(
                f"scale must be finite and positive for every target, got {s.tolist()} "
                "(a target with fewer than two labels has no std: give it scale 1)"
            )
    return np.var(p / s, axis=0).sum(axis=-1)


def top_b(scores: np.ndarray, candidates_mask: np.ndarray, b: int) -> np.ndarray:
    """The ``b`` candidates with the highest scores, highest first; ties go to the lowest index.

    Args:
        scores: [N] real scores (NaN not allowed among the candidates).
        candidates_mask: [N] bool, True for the molecules that may be picked (e.g. the unlabelled pool).
        b: number of picks, 0 <= b <= number of candidates.

    Returns:
        int64 [b] indices into ``scores``, in descending score order.
    """
    s = np.asarray(scores)
    mask = np.asarray(candidates_mask)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D [N], got shape {s.shape}")
    if mask.dtype != np.bool_ or mask.shape != s.shape:
        raise ValueError(
            f"candidates_mask must be a boolean array of shape {s.shape} like scores, "
            f"got dtype {mask.dtype} shape {mask.shape}"
        )
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
        raise TypeError(f"b must be an integer, got {b!r}")
    candidates = np.flatnonzero(mask)
    if not 0 <= b <= candidates.size:
        raise ValueError(f"b must be in [0, {candidates.size}] (the number of candidates), got {b}")
    cand_scores = s[candidates].astype(np.float64)
    if np.isnan(cand_scores).any():
        bad = candidates[np.isnan(cand_scores)]
        raise ValueError(f"scores are NaN for candidates {bad[:5].tolist()} (of {bad.size})")
    # stable sort of the negated scores: descending, equal scores keep ascending index order
    order = np.argsort(-cand_scores, kind="stable")[:b]
    return candidates[order].astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Predictions


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
                        h = model.embed(batch.z, batch.edge_index, batch.dist)
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


# --------------------------------------------------------------------------------------------------
# Committee


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
