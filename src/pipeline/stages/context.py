"""What every per-round stage starts from: the run's settings, the round's seeds, and the device,
split and graphs, loaded on first use (:class:`RoundContext`).

:func:`derive_seed` is the one place a round's seeds come from (``initial``, ``teacher``,
``student``, ``select``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.config.settings import RunConfig
from pipeline.config.training import TrainConfig
from pipeline.data.graphs import GraphSet, load_graphs
from pipeline.data.split import read_split
from pipeline.learn.checkpoint import load_checkpoint
from pipeline.learn.runtime import resolve_device
from pipeline.model.asgn import ASGNModel


def derive_seed(run_seed: int, round: int, purpose: str) -> int:
    """The seed of round ``round``'s draws for ``purpose``, derived from the run's seed.

    ``purpose`` (``word(e)`` is the first 32-bit word of ``np.random.SeedSequence(e)``, mod 2**31):

    - ``initial``: round 0's random picks, or the untrained teacher k-center embeds with:
      ``run_seed`` itself (``round`` must be 0);
    - ``teacher``: the teacher's initialisation and batch order:
      ``word([run_seed, round])``;
    - ``student``: the student's batch order: the teacher's + 1;
    - ``select``: the strategy's draws (random picks, dropout masks, the committee's seed):
      ``word([run_seed, round, 1])``.
    """
    if purpose == "initial":
        if round != 0:
            raise ValueError(f"the initial picks are round 0's, not round {round}'s")
        return run_seed
    if purpose in ("teacher", "student"):
        return _word([run_seed, round]) + (purpose == "student")
    if purpose == "select":
        return _word([run_seed, round, 1])
    raise ValueError(f"unknown seed purpose {purpose!r}; choose one of initial, teacher, student, select")


def _word(entropy: list[int]) -> int:
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % 2**31)


@dataclass
class RoundContext:
    """What every stage of round ``round`` starts from: the run's settings, device, split and graphs.

    The device, the split and the graphs are resolved and loaded on first use, so a stage that needs
    none of them (random initial picks, selection from the embeddings alone) loads nothing.
    """

    cfg: RunConfig
    round: int = 0
    data: Path | None = None  # featurised dataset folder
    split_path: Path | None = None

    @classmethod
    def read(
        cls, run_json: Path, round: int = 0, data: Path | None = None, split_path: Path | None = None
    ) -> RoundContext:
        """The context of round ``round`` of the run whose settings are ``run_json``."""
        return cls(RunConfig.read(run_json), round, data, split_path)

    @cached_property
    def device(self) -> torch.device:
        return resolve_device(self.cfg.device)

    @cached_property
    def train(self) -> TrainConfig:
        """The run's training settings."""
        return self.cfg.train

    @cached_property
    def split(self) -> pd.DataFrame:
        if self.split_path is None:
            raise ValueError("this stage needs the run's split (--split-path)")
        return read_split(self.split_path)

    @cached_property
    def _graph_parts(self) -> tuple[GraphSet, dict[str, np.ndarray]]:
        if self.data is None:
            raise ValueError("this stage needs the featurised dataset (--data)")
        parts = {s: split_ids(self.split, s) for s in ("pool", "val", "test")}
        graphs = load_graphs(self.data, mol_ids=np.concatenate(list(parts.values())))
        bounds = np.cumsum([0] + [len(v) for v in parts.values()])
        where = {s: np.arange(bounds[k], bounds[k + 1]) for k, s in enumerate(parts)}
        return graphs.to(self.device), where

    @property
    def graphs(self) -> GraphSet:
        """The pool, val and test molecules' graphs, in that order, on the device."""
        return self._graph_parts[0]

    @property
    def where(self) -> dict[str, np.ndarray]:
        """Positions of each part (``pool``, ``val``, ``test``) in :attr:`graphs`."""
        return self._graph_parts[1]

    def pool_parts(self, labelled_ids) -> tuple[np.ndarray, np.ndarray]:
        """Positions in :attr:`graphs` of the labelled and of the unlabelled pool molecules, in pool order."""
        pool = self.where["pool"]
        is_lab = np.isin(self.graphs.mol_id[pool], np.asarray(labelled_ids).astype(str))
        return pool[is_lab], pool[~is_lab]

    def baseline(self, path: Path | None) -> np.ndarray:
        """[N, T] what each target is learnt relative to, for every molecule of :attr:`graphs`: the
        cheap method's value for the run's delta targets (``path``, baseline.parquet; NaN where the
        method failed), 0 for the other targets. Learners fit labels minus it and predict it plus
        what they learnt."""
        cfg, delta = self.cfg, self.cfg.delta_targets
        out = np.zeros((len(self.graphs), len(cfg.targets)))
        if not delta:
            if path is not None:
                raise ValueError(
                    f"--baseline {path}: the run {cfg.run} learns no target relative to a cheap method"
                )
            return out
        if path is None:
            raise ValueError(
                f"the run {cfg.run} learns {sorted(delta)} relative to {cfg.delta['source']}: "
                "give --baseline (its baseline.parquet)"
            )
        columns = [k for k, target in enumerate(cfg.targets) if target in delta]
        out[:, columns] = molecule_rows(path, self.graphs.mol_id, [cfg.targets[k] for k in columns])
        return out

    def seed(self, purpose: str) -> int:
        """This round's seed for ``purpose`` (:func:`derive_seed`)."""
        return derive_seed(self.cfg.seed, self.round, purpose)

    def load(self, checkpoint: Path, round: int | None = None) -> ASGNModel:
        """The model of ``checkpoint`` on the device; refused if made for another run or under another
        run config, or (``round`` given) in another round."""
        model, _ = load_checkpoint(checkpoint, self.cfg.as_dict(), self.device, round)
        return model

    def new_model(self, seed: int) -> ASGNModel:
        """A freshly initialised model; the initialisation is seeded without touching global RNG state."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ASGNModel(self.cfg.architecture(self.graphs.cutoff, dist_range(self.graphs)))
        return model.to(self.device)


def molecule_rows(path: Path, mol_ids: np.ndarray, columns: list[str]) -> np.ndarray:
    """[n, C] the ``columns`` of molecules ``mol_ids`` (in that order) from a run's per-molecule
    Parquet file (helpers.parquet, baseline.parquet: mol_id and a float column per property). A
    missing column or molecule is an error naming the file: it was made for another run or split."""
    table = pd.read_parquet(path)
    absent = sorted(set(columns) - set(table.columns))
    if absent:
        raise ValueError(
            f"{path}: no column {absent} (it has {list(table.columns)}); delete it to make it again"
        )
    table = table.set_index(table.mol_id.astype(str))
    ids = np.asarray(mol_ids).astype(str)
    unknown = np.setdiff1d(ids, table.index.to_numpy())
    if len(unknown):
        raise ValueError(
            f"{path}: {len(unknown)} molecules of the run have no row (e.g. {unknown[:3].tolist()}); "
            "it was made for another split: delete it to make it again"
        )
    return table.loc[ids, columns].to_numpy(np.float64)


def split_ids(split: pd.DataFrame, which: str) -> np.ndarray:
    return split.mol_id[split.split == which].to_numpy()


def dist_range(graphs: GraphSet) -> tuple[float, float]:
    """The span of the pair distances stored in ``graphs``, rounded outward to 0.1 Å (QM9 subsets of
    3,000 and 24,000 molecules: 0.9 to 10.8 and 11.7 Å): where the reconstruction's distance bins go."""
    if not graphs.dist.numel():
        return 0.0, graphs.cutoff
    lo, hi = float(graphs.dist.min()), float(graphs.dist.max())
    return math.floor(lo * 10) / 10, math.ceil(hi * 10) / 10
