"""Training: the ASGN teacher, the Mean Teacher baseline and the student (inference, checkpoints and
the device utilities are :mod:`pipeline.learn.inference`, :mod:`~pipeline.learn.checkpoint` and
:mod:`~pipeline.learn.runtime`).

* Teacher (semi-supervised): every pool molecule, labelled or not, is in its epochs. Loss
  L_t = w_p·L_p + w_r·L_r + w_c·L_c (:func:`pipeline.learn.losses.teacher_loss`); L_p is the mean
  squared error over the true labels of the labelled molecules plus ``weights.pseudo`` times that
  over the previous student's pseudo-labels of the others (and ``weights.helpers`` times that over
  the helping properties): :func:`pipeline.learn.losses.grouped_property_loss`. L_r masks the
  atoms whose types it reconstructs; L_p and L_c read a clean pass unless ``shared_pass``. Cluster
  ids for L_c come from Sinkhorn over the cluster scores of all training molecules, recomputed every
  ``cluster_every`` epochs. The teacher of round r warm-starts from round r-1's (unless
  ``warm_start`` is off); round 0's pre-trains for ``pretrain_epochs``.
* Student: a copy of the teacher's weights, fine-tuned on the labelled molecules only (L_p), early
  stopped on validation MAE, best epoch restored.

Batches are gathered from a packed :class:`~pipeline.data.graphs.GraphSet` on the training device; the
loops hold no per-molecule Python. The three loops differ in their per-batch loss only: one epoch
skeleton (``_train_epoch``) shuffles, steps and averages the logged terms for all of them, and stops
the training (:class:`TrainingDiverged`) at the first epoch whose loss is not finite. Every random
choice draws from generators seeded by the config.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.config.training import LossWeights, TrainConfig
from pipeline.data.graphs import GraphBatch, GraphSet
from pipeline.learn.clustering import sinkhorn
from pipeline.learn.inference import infer, mae
from pipeline.learn.losses import consistency_loss, grouped_property_loss, property_loss, teacher_loss
from pipeline.learn.runtime import autocast, batches, evaluating
from pipeline.learn.scaling import fit_scaler, targets_tensor
from pipeline.model.asgn import ASGNModel

log = logging.getLogger(__name__)


def _row_lookup(n: int, index: torch.Tensor) -> torch.Tensor:
    """[n] map from a GraphSet position to its row in ``index`` (-1 where absent)."""
    row_of = torch.full((n,), -1, dtype=torch.long, device=index.device)
    row_of[index] = torch.arange(len(index), device=index.device)
    return row_of


BatchLoss = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class TrainingDiverged(RuntimeError):
    """A training loop's loss became NaN or infinite: the weights are ruined, so every epoch after it
    (and the checkpoint, the errors, the pseudo-labels made from it) would be NaN too. The message
    names the loop, the epoch and the settings to look at; the stages add the round."""


#: Settings that make a loop diverge, as config keys (``train.*``, ``losses.*``): the message of
#: :class:`TrainingDiverged` names them with their values. The learning rate comes first in each.
_DIVERGENCE_SETTINGS = {
    "teacher": (
        "train.lr", "losses.property", "losses.reconstruction", "losses.clustering", "losses.pseudo",
        "losses.helpers",
    ),
    "mean teacher": ("train.lr", "train.consistency", "train.noise", "losses.helpers"),
    "student": ("train.lr",),
}  # fmt: skip


def _setting(cfg: TrainConfig, key: str) -> Any:
    """The value of config key ``key`` (``train.lr``, ``losses.pseudo``) in ``cfg``."""
    section, name = key.split(".")
    return getattr(cfg.weights if section == "losses" else cfg, name)


def _train_epoch(
    optimiser: torch.optim.Optimizer,
    index: torch.Tensor,
    batch_loss: BatchLoss,
    cfg: TrainConfig,
    generator: torch.Generator,
    after_step: Callable[[], None] | None = None,
    terms: Sequence[str] = (),
    *,
    name: str,
    epoch: int,
) -> dict[str, float]:
    """Epoch ``epoch`` of loop ``name`` (a key of :data:`_DIVERGENCE_SETTINGS`) over ``index`` in
    batches of ``cfg.batch_size``, shuffled by ``generator``.

    For each batch ``idx`` (positions in the GraphSet), ``batch_loss(idx)`` runs under autocast and
    returns the loss and its detached terms; then backward, an optimiser step and ``after_step()``.
    Returns each term averaged over the batches; ``terms`` are in it (as 0) even without batches.

    Raises:
        TrainingDiverged: a term's average is NaN or infinite. Checked once per epoch, on the
            averages the epoch computes anyway, so the loop waits for no device per batch.
    """
    sums: dict[str, Any] = dict.fromkeys(terms, 0.0)
    n_batches = 0
    for idx in batches(index, cfg.batch_size, generator):
        with autocast(index.device, cfg.amp):
            loss, values = batch_loss(idx)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if after_step is not None:
            after_step()
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        n_batches += 1
    means = {k: float(v) / max(n_batches, 1) for k, v in sums.items()}
    if not all(math.isfinite(v) for v in means.values()):
        settings = ", ".join(f"{key} {_setting(cfg, key):g}" for key in _DIVERGENCE_SETTINGS[name])
        raise TrainingDiverged(
            f"{name} epoch {epoch}: the loss is not finite ({_fmt(means)}): training diverged "
            f"with {settings}; a lower train.lr is the usual remedy"
        )
    return means


def _end_epoch(
    history: list[dict[str, float]], name: str, epoch: int, record: dict[str, Any], start: float
) -> None:
    """Add the epoch's seconds since ``start`` to ``record``, append it to ``history`` and log it."""
    record["seconds"] = time.perf_counter() - start
    history.append(record)
    log.info("%s epoch %d: %s", name, epoch, _fmt(record))


@dataclass
class TeacherData:
    """What the teacher of one round learns from (positions in the GraphSet, labels in real units)."""

    labelled: np.ndarray  # [L] positions of labelled molecules
    y_labelled: np.ndarray  # [L, T] their true labels (NaN = missing)
    unlabelled: np.ndarray  # [U] positions of the other pool molecules
    y_pseudo: np.ndarray | None = None  # [U, T] the previous student's pseudo-labels, or None (round 0)
    # [L, H] and [U, H] helping properties of the labelled and the unlabelled molecules (NaN where
    # the helper's oracle failed), or None: the model's outputs after its T targets
    helpers_labelled: np.ndarray | None = None
    helpers_unlabelled: np.ndarray | None = None

    @property
    def n_helpers(self) -> int:
        return 0 if self.helpers_labelled is None else int(np.shape(self.helpers_labelled)[1])

    def visits_pool(self, weights: LossWeights) -> bool:
        """Whether the ASGN teacher's epochs visit the unlabelled molecules: not when nothing there
        is learnt (no reconstruction, clustering, pseudo-labels or helpers: the supervised baselines)."""
        return bool(
            weights.reconstruction
            or weights.clustering
            or (weights.pseudo and self.y_pseudo is not None)
            or (weights.helpers and self.n_helpers)
        )

    def property_groups(
        self, pseudo_weight: float, helper_weight: float, unlabelled: bool = True
    ) -> dict[str, dict[str, float]]:
        """The groups of L_p (:func:`pipeline.learn.losses.grouped_property_loss`) an epoch holds:
        ``labels`` (the true labels), ``pseudo_labels`` (when given and weighted above 0) and
        ``helpers``, each with its weight and how many labels it has (NaN ones do not count; the
        unlabelled molecules' only if the epoch visits them). What teacher.json records."""
        n_unl = len(self.unlabelled) if unlabelled else 0
        groups = {"labels": {"weight": 1.0, "labels": int(np.isfinite(self.y_labelled).sum())}}
        if pseudo_weight > 0 and self.y_pseudo is not None:
            count = int(np.isfinite(np.asarray(self.y_pseudo)[:n_unl]).sum())
            groups["pseudo_labels"] = {"weight": float(pseudo_weight), "labels": count}
        if self.n_helpers and helper_weight > 0:
            count = int(np.isfinite(self.helpers_labelled).sum())
            count += int(np.isfinite(np.asarray(self.helpers_unlabelled)[:n_unl]).sum())
            groups["helpers"] = {"weight": float(helper_weight), "labels": count}
        return groups

    def scaling_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The molecules and values the output scaling is fitted on: the labelled molecules' labels,
        and with helpers every pool molecule's helpers beside them ([N, T + H], NaN for the
        unlabelled molecules' targets), so a helper's scale comes from the whole pool, not from
        the few labelled molecules (with ~12 of them an atomref fit of an energy leaves almost no
        spread, and dividing by it blew the helper's loss up by 10^4)."""
        if self.helpers_labelled is None:
            return self.labelled, self.y_labelled
        n_unl = len(self.unlabelled)
        targets = np.concatenate([self.y_labelled, np.full((n_unl, self.y_labelled.shape[1]), np.nan)])
        helpers = np.concatenate([self.helpers_labelled, self.helpers_unlabelled])
        return np.concatenate([self.labelled, self.unlabelled]), np.concatenate([targets, helpers], axis=1)


def _epoch_rows(kind: str, data: TeacherData, weights: LossWeights) -> dict[str, Any]:
    """What an epoch of teacher kind ``kind`` (``train.semi``) learns L_p from: the pseudo-labels'
    and helpers' weights and whether it visits the unlabelled molecules."""
    if kind == "mean_teacher":  # consistency on every pool molecule, no pseudo-labels
        return {"pseudo_weight": 0.0, "helper_weight": weights.helpers, "unlabelled": True}
    return {
        "pseudo_weight": weights.pseudo,
        "helper_weight": weights.helpers,
        "unlabelled": data.visits_pool(weights),
    }


def teacher_property_groups(
    kind: str, data: TeacherData, weights: LossWeights
) -> dict[str, dict[str, float]]:
    """The groups of L_p a teacher of kind ``kind`` learns from, with their weights and label counts
    (:meth:`TeacherData.property_groups`): what teacher.json records."""
    return data.property_groups(**_epoch_rows(kind, data, weights))


def _pool_targets(
    data: TeacherData,
    n_outputs: int,
    n_graphs: int,
    device: torch.device,
    pseudo_weight: float,
    unlabelled: bool = True,
    helper_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The molecules an epoch visits (labelled first; then the unlabelled ones if ``unlabelled``),
    each one's target row (labels; pseudo-labels if given and ``pseudo_weight`` > 0, else NaN; then
    the helping properties, on every row), the weight of each entry in L_p ([N, T + H]: its group's
    weight times the epoch's rows per label of the group:
    :func:`~pipeline.learn.losses.grouped_property_loss`), and the map from a GraphSet position to its row."""
    n_helpers = data.n_helpers
    n_targets = n_outputs - n_helpers
    parts = [data.labelled, data.unlabelled] if unlabelled else [data.labelled]
    index = torch.as_tensor(np.concatenate(parts), dtype=torch.long, device=device)
    rows = [targets_tensor(data.y_labelled, n_targets)]
    n_unl = len(data.unlabelled) if unlabelled else 0
    groups = data.property_groups(pseudo_weight, helper_weight, unlabelled)
    if "pseudo_labels" in groups:
        rows.append(targets_tensor(data.y_pseudo, n_targets)[:n_unl])
    else:
        rows.append(torch.full((n_unl, n_targets), float("nan")))
    target = torch.cat(rows)
    if n_helpers:
        helpers = [targets_tensor(data.helpers_labelled, n_helpers)]
        helpers.append(targets_tensor(data.helpers_unlabelled, n_helpers)[:n_unl])
        target = torch.cat([target, torch.cat(helpers)], dim=1)
    weight = torch.zeros(len(index), n_outputs)
    blocks = {
        "labels": (slice(0, len(data.labelled)), slice(0, n_targets)),
        "pseudo_labels": (slice(len(data.labelled), None), slice(0, n_targets)),
        "helpers": (slice(None), slice(n_targets, None)),
    }
    for name, group in groups.items():
        if group["labels"]:
            weight[blocks[name]] = group["weight"] * len(index) / group["labels"]
    return index, target.to(device), weight.to(device), _row_lookup(n_graphs, index)


def train_teacher(
    model: ASGNModel,
    graphs: GraphSet,
    data: TeacherData,
    cfg: TrainConfig,
    generator: torch.Generator | None = None,
    epochs: int | None = None,
) -> list[dict[str, float]]:
    """Train the teacher in place on labelled and unlabelled molecules; returns per-epoch loss terms.

    ``generator`` (default: seeded with 0) drives shuffling and pair sampling; its state
    afterwards belongs in the checkpoint. ``epochs`` defaults to ``cfg.teacher_epochs``. A teacher
    with nothing to learn from the unlabelled molecules (no reconstruction, no clustering, no
    pseudo-labels: the supervised baselines) visits only the labelled ones.
    """
    device = graphs.device
    n_outputs = len(model.config.targets)
    model.to(device).train()
    std = fit_scaler(model, graphs, *data.scaling_rows(), cfg.atomref).to(device)
    w = cfg.weights
    index, target, row_weight, row_of = _pool_targets(
        data, n_outputs, len(graphs), device, **_epoch_rows("asgn", data, w)
    )
    has_target = bool((~torch.isnan(target)).any())

    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    cluster_ids = None

    def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rows = row_of[idx]
        return teacher_loss(
            model,
            graphs.batch(idx),
            target[rows] if has_target else None,
            cluster_ids[rows] if cluster_ids is not None else None,  # this epoch's assignment
            w,
            std,
            target_weight=row_weight[rows],
            alpha=cfg.alpha,
            shared_pass=cfg.shared_pass,
            generator=gen,
        )

    history: list[dict[str, float]] = []
    for epoch in range(cfg.teacher_epochs if epochs is None else epochs):
        start = time.perf_counter()
        if w.clustering and epoch % cfg.cluster_every == 0:
            cluster_ids = assign_clusters(model, graphs, index, cfg)
        record = _train_epoch(optimiser, index, batch_loss, cfg, gen, name="teacher", epoch=epoch)
        record["epoch"] = epoch
        _end_epoch(history, "teacher", epoch, record, start)
    return history


def _noisy(batch: GraphBatch, sigma: float, generator: torch.Generator) -> GraphBatch:
    """The batch with Gaussian noise on every distance (the same for (i, j) and (j, i)); the
    coordinates, from which an equivariant backbone takes the bond directions, are unchanged."""
    src, dst = batch.edge_index
    lo, hi = torch.minimum(src, dst), torch.maximum(src, dst)
    pair = lo * batch.z.numel() + hi  # one key per unordered pair
    uniq, inverse = torch.unique(pair, return_inverse=True)
    eps = torch.randn(len(uniq), generator=generator).to(batch.dist.device) * sigma
    return dataclasses.replace(batch, dist=(batch.dist + eps[inverse]).clamp(min=0.0))


def train_mean_teacher(
    model: ASGNModel,
    graphs: GraphSet,
    data: TeacherData,
    cfg: TrainConfig,
    generator: torch.Generator | None = None,
    epochs: int | None = None,
) -> list[dict[str, float]]:
    """Mean Teacher (Tarvainen & Valpola 2017), the semi-supervised baseline, in place of ASGN's teacher.

    The network learns L_p on the labelled molecules plus ``cfg.consistency`` times
    :func:`pipeline.learn.losses.consistency_loss` between its predictions and those of an exponential
    moving average of its weights, on every pool molecule, each under its own Gaussian noise on the
    distances. At the end the EMA weights, the better predictor, are loaded into ``model``.
    """
    device = graphs.device
    n_outputs = len(model.config.targets)
    model.to(device).train()
    std = fit_scaler(model, graphs, *data.scaling_rows(), cfg.atomref).to(device)
    ema = transfer(model)
    ema.train()
    for p in ema.parameters():
        p.requires_grad_(False)
    index, target, weight, row_of = _pool_targets(
        data, n_outputs, len(graphs), device, **_epoch_rows("mean_teacher", data, cfg.weights)
    )
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = graphs.batch(idx)
        pred = model(_noisy(batch, cfg.noise, gen)).pred
        with torch.no_grad():
            ema_pred = ema(_noisy(batch, cfg.noise, gen)).pred
        rows = row_of[idx]
        lp = grouped_property_loss(pred, target[rows], std, weight[rows])
        lc = consistency_loss(pred, ema_pred, std)
        return lp + cfg.consistency * lc, {"property": lp.detach(), "consistency": lc.detach()}

    @torch.no_grad()
    def update_ema() -> None:  # ema <- decay * ema + (1 - decay) * model
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1.0 - cfg.ema_decay)

    history: list[dict[str, float]] = []
    for epoch in range(cfg.teacher_epochs if epochs is None else epochs):
        start = time.perf_counter()
        record = _train_epoch(
            optimiser, index, batch_loss, cfg, gen, update_ema, terms=("property", "consistency"),
            name="mean teacher", epoch=epoch,
        )  # fmt: skip
        record["total"] = record["property"] + cfg.consistency * record["consistency"]
        record["epoch"] = epoch
        _end_epoch(history, "mean teacher", epoch, record, start)
    model.load_state_dict(ema.state_dict())
    return history


@torch.no_grad()
def assign_clusters(
    model: ASGNModel, graphs: GraphSet, index: torch.Tensor, cfg: TrainConfig
) -> torch.Tensor:
    """Hard cluster ids [len(index)] from Sinkhorn over the cluster scores of all those molecules."""
    scores = []
    with evaluating(model):
        for idx in batches(index, cfg.eval_batch_size):
            with autocast(graphs.device, cfg.amp):
                scores.append(model.cluster_logits(model(graphs.batch(idx)).graph).float())
    return sinkhorn(torch.cat(scores), lam=cfg.sinkhorn_lam)


def train_student(
    model: ASGNModel,
    graphs: GraphSet,
    labelled: np.ndarray,
    y_labelled: np.ndarray,
    val: np.ndarray,
    y_val: np.ndarray,
    cfg: TrainConfig,
    generator: torch.Generator | None = None,
) -> list[dict[str, float]]:
    """Fine-tune ``model`` (the teacher's copy) on labelled molecules with early stopping on val MAE.

    With ``cfg.lr_schedule == "plateau"`` the learning rate is multiplied by ``cfg.lr_factor`` after
    ``cfg.lr_patience`` epochs without a better validation score (not below ``cfg.min_lr``); each
    epoch's record has its ``lr``. The model ends with the weights of its best validation epoch.
    Validation MAE is averaged over targets after dividing by each target's std, so targets in
    different units weigh the same.
    With no validation molecules (``len(val) == 0``) it trains ``cfg.student_max_epochs`` epochs and
    keeps the final weights.
    """
    device = graphs.device
    n_targets = len(model.config.targets)
    model.to(device).train()
    std = fit_scaler(model, graphs, labelled, y_labelled, cfg.atomref).to(device)
    index = torch.as_tensor(np.asarray(labelled), dtype=torch.long, device=device)
    row_of = _row_lookup(len(graphs), index)
    target = targets_tensor(y_labelled, n_targets).to(device)
    y_val = np.asarray(y_val, dtype=np.float32)
    std_np = std.cpu().numpy()

    gen = generator if generator is not None else torch.Generator().manual_seed(1)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = None
    if cfg.lr_schedule == "plateau" and len(val):
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr
        )

    def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = property_loss(model(graphs.batch(idx)).pred, target[row_of[idx]], std)
        return loss, {"loss": loss.detach()}

    best, best_state, best_epoch = math.inf, copy.deepcopy(model.state_dict()), -1
    history: list[dict[str, float]] = []
    for epoch in range(cfg.student_max_epochs):
        start = time.perf_counter()
        losses = _train_epoch(
            optimiser, index, batch_loss, cfg, gen, terms=("loss",), name="student", epoch=epoch
        )
        record = {"epoch": epoch, **losses}
        if len(val) == 0:  # no validation: fixed number of epochs, final weights
            _end_epoch(history, "student", epoch, record, start)
            continue
        pred, _ = infer(model, graphs, val, cfg.eval_batch_size, cfg.amp)
        val_mae = mae(pred, y_val)
        score = float(np.nanmean(val_mae / std_np))
        record["val_score"] = score
        record["lr"] = optimiser.param_groups[0]["lr"]
        record.update({f"val_mae_{t}": float(v) for t, v in zip(model.config.targets, val_mae, strict=True)})
        if scheduler is not None:
            scheduler.step(score)
        _end_epoch(history, "student", epoch, record, start)
        if score < best:
            best, best_epoch, best_state = score, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= cfg.patience:
            log.info(
                "student: no better validation MAE for %d epochs, best epoch %d", cfg.patience, best_epoch
            )
            break
    if len(val):
        model.load_state_dict(best_state)
    return history


def transfer(teacher: ASGNModel, targets: Sequence[str] | None = None) -> ASGNModel:
    """The student's starting point: an exact copy of the teacher's weights and scaling, with only
    the outputs ``targets`` (default: all; a teacher with helping properties keeps its targets'
    rows of the property head's last layer and of the scaling buffers, so the copy predicts the
    targets exactly as the teacher does)."""
    cfg = teacher.config
    targets = tuple(cfg.targets if targets is None else targets)
    missing = sorted(set(targets) - set(cfg.targets))
    if missing:
        raise ValueError(f"the model has no output for {missing} (its outputs: {list(cfg.targets)})")
    keep = [cfg.targets.index(t) for t in targets]
    config = dataclasses.replace(cfg, targets=targets, readout={t: cfg.readout[t] for t in targets})
    state = teacher.state_dict()
    if keep != list(range(len(cfg.targets))):
        last = len(teacher.property_head.mlp) - 1  # its last layer: a row per output
        rows = torch.tensor(keep, device=state["property_head.scale"].device)
        for name in (f"mlp.{last}.weight", f"mlp.{last}.bias", "scale", "shift"):
            state[f"property_head.{name}"] = state[f"property_head.{name}"].index_select(0, rows)
        state["property_head.atomref"] = state["property_head.atomref"].index_select(1, rows)
    student = ASGNModel(config)
    student.load_state_dict(state)
    return student.to(next(teacher.parameters()).device)


def _fmt(record: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())
