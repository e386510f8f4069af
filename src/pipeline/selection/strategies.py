"""Selection strategies: what each name of :data:`pipeline.config.registry.STRATEGIES` picks.

A strategy picks from a :class:`SelectionContext`: ``pick(ctx)`` returns the picks (indices into the
pool, in pick order) and a per-pick score. Embedding strategies read the pool's feature map (the
teacher's z_G, or the student's last-layer gradients): k-center (:mod:`pipeline.selection.kcenter`),
random, and bmdal-reg's LCMD, BAIT and k-means++ (:mod:`pipeline.selection.batch_al`). Uncertainty
strategies (mc_dropout, qbc) pick the largest spread of several predictions, which the select stage
computes and hands over (:attr:`SelectionContext.samples`), so selection never trains a network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.config import registry
from pipeline.selection.kcenter import k_center_greedy

__all__ = ["SelectionContext", "Strategy", "get_strategy", "k_center_greedy"]


# --------------------------------------------------------------------------------------------------
# Strategies: their names and needs live in pipeline.config.registry. A strategy says what the select
# stage must give it (``needs``) and picks from a SelectionContext: `pick(ctx)` returns the picks
# (indices into the pool, in pick order) and a per-pick score. "embeddings" strategies read the
# teacher's z_G; "student" (MC-dropout samples of the round's student) and "committee" (K students
# fine-tuned from the round's teacher) strategies pick the largest prediction variance.


@dataclass(frozen=True)
class SelectionContext:
    """What a strategy picks from: the pool ([N] arrays in one order; picks index them) and, for
    uncertainty strategies, the predictions whose spread they score (:func:`pipeline.stages.rounds.select`
    builds it; selection never trains or runs a network itself).
    """

    embeddings: np.ndarray  # [N, d] the pool's graph embeddings under the round's teacher
    labelled: np.ndarray  # [N] bool: in the labelled set (never picked; k-center's first centres)
    budget: int  # molecules to pick
    seed: int
    device: str | torch.device | None = None  # k-center's; None: the embeddings' (the CPU)
    in_pool: np.ndarray | None = None  # [N] bool: False where the oracle failed (left out); None: all in
    # uncertainty strategies: rows [n] of the pool -> their predictions [K, n, T] (real units): the
    # student's MC-dropout samples (mc_dropout) or a committee's (qbc)
    samples: Callable[[np.ndarray], np.ndarray] | None = None
    y_labelled: np.ndarray | None = None  # [L, T] the labelled molecules' labels: the targets' scale
    # kernel strategies: (rows of the pool, budget) -> (positions into rows in pick order, scores):
    # the kernel student's greedy posterior-variance picks (KernelStudent.posterior_picks)
    variance_picks: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def pool(self) -> np.ndarray:
        """Indices of the molecules still in the pool (all but those left out)."""
        return np.arange(len(self.labelled)) if self.in_pool is None else np.flatnonzero(self.in_pool)


@dataclass(frozen=True)
class Strategy:
    needs: str  # "embeddings" | "student" | "committee" | "kernel"
    pick: Callable[[SelectionContext], tuple[np.ndarray, np.ndarray]]
    description: str


def pick_kcenter(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """Exact greedy k-center over the pool (left-out molecules are neither picked nor centres)."""
    rows = ctx.pool
    picks, dist = k_center_greedy(
        ctx.embeddings[rows], ctx.labelled[rows], ctx.budget, device=ctx.device, return_distances=True
    )
    return rows[picks], dist


def pick_random(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """Uniform picks (seeded) from the unlabelled pool; no score (NaN)."""
    rows = ctx.pool
    candidates = rows[~ctx.labelled[rows]]
    if ctx.budget > len(candidates):
        raise ValueError(f"budget {ctx.budget} exceeds the {len(candidates)} unlabelled molecules")
    picks = np.random.default_rng(ctx.seed).choice(candidates, size=ctx.budget, replace=False)
    return picks.astype(np.int64), np.full(ctx.budget, np.nan)


def pick_uncertain(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """The largest disagreement of the predictions ``ctx.samples`` gives for the unlabelled pool: the
    student's MC-dropout samples (mc_dropout) or a committee of students fine-tuned from the teacher,
    each on its own bootstrap resample of the labelled molecules (qbc)."""
    if ctx.samples is None or ctx.y_labelled is None:
        raise ValueError("an uncertainty strategy needs the pool's predictions (samples) and y_labelled")
    todo = np.flatnonzero(~ctx.labelled)
    return _most_uncertain(ctx, todo, ctx.samples(todo))


def pick_posterior_variance(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """The unlabelled pool molecules the kernel student's Gaussian process is least sure of, one at a
    time, each pick conditioning the next (``ctx.variance_picks``); scores: the summed variance at
    pick time, in units of the prior variance."""
    if ctx.variance_picks is None:
        raise ValueError("strategy krr_variance needs the kernel student's posterior (variance_picks)")
    rows = ctx.pool
    candidates = rows[~ctx.labelled[rows]]
    picks, scores = ctx.variance_picks(candidates, ctx.budget)
    return candidates[picks], scores


def _most_uncertain(
    ctx: SelectionContext, todo: np.ndarray, samples: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ``budget`` pool molecules of highest prediction variance (``samples`` [K, len(todo), T] of
    the unlabelled molecules ``todo``, each target in units of its labelled std), and their scores."""
    from pipeline.selection.uncertainty import prediction_variance, top_b

    scale = np.nanstd(ctx.y_labelled, axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    scores = np.full(len(ctx.labelled), np.nan)
    scores[todo] = prediction_variance(samples, scale)
    candidates = ~ctx.labelled if ctx.in_pool is None else ~ctx.labelled & ctx.in_pool
    picks = top_b(scores, candidates, ctx.budget)
    return picks, scores[picks]


def get_strategy(name: str) -> Strategy:
    """The selection strategy registered under ``name`` (:data:`pipeline.config.registry.STRATEGIES`, which
    names its picking function); the error lists the valid names."""
    info = registry.strategy_info(name)
    return Strategy(info.needs, info.pick_function(), info.description)
