"""The names the package and the workflow share, each with what it needs: the one place they live.

Molecule sources, selection strategies, oracles, teacher and student kinds, backbones and
initial-selection strategies are chosen by name in the config. This module says, for each name,
what the workflow must wire up (a strategy's inputs, an oracle's kind, targets, GPU and settings, a
source's implementation), and
the package's implementations are keyed by these same names (:mod:`pipeline.data.sources`,
:mod:`pipeline.selection.strategies`, :mod:`pipeline.label.oracle`, :mod:`pipeline.label.qc`,
:mod:`pipeline.stages.rounds`).
``workflow/rules/common.smk`` imports it, so it imports nothing heavy: no torch, so that label
jobs stay fast. The config schema's ``enum`` lists are checked against these
(``tests/config/test_registry.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BACKBONES",
    "INITIAL_STRATEGIES",
    "ORACLES",
    "SOURCES",
    "STRATEGIES",
    "STUDENTS",
    "TEACHERS",
    "OracleInfo",
    "InitialInfo",
    "BackboneInfo",
    "StrategyInfo",
    "StudentInfo",
    "TeacherInfo",
    "initial_info",
    "oracle_info",
    "strategy_info",
    "teacher_info",
]


def _function(path: str) -> Callable[..., Any]:
    """The function ``"module:name"`` (imported on first use, so this module stays light)."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class StrategyInfo:
    """A selection strategy: what the workflow wires up for it, and its picking function."""

    #: what the select stage must give it besides the round's labelled set: "embeddings" (the
    #: teacher's z_G of the pool), "student" (the round's student, for MC-dropout samples),
    #: "committee" (the round's teacher and student.json, to fine-tune K students from) or "kernel"
    #: (the round's kernel student, student_kind krr, whose Gaussian process it reads)
    needs: str
    description: str
    #: "module:function" of its picking function,
    #: ``pick(ctx: pipeline.selection.strategies.SelectionContext) -> (picks int64 [budget], score [budget])``
    pick: str
    #: whether its select job holds a GPU: it runs the network, or computes distances over the
    #: whole pool (k-center at 110,000 molecules); random picks need none
    gpu: bool = True
    #: whether it picks on a feature map of the pool, which the run's ``selection_features`` chooses
    #: (the teacher's embeddings, or the student's last-layer gradients); random and the
    #: uncertainty strategies do not
    features: bool = False

    def pick_function(self) -> Callable[..., Any]:
        return _function(self.pick)

    def on_student_gradients(self, selection_features: str) -> bool:
        """Whether it picks on the round's student's last-layer gradients (a run's
        ``selection_features``) instead of the embeddings: its select job then reads student.pt."""
        return self.features and selection_features == "student_gradients"


#: Strategy name -> what it needs and its picking function (pipeline.selection.strategies.get_strategy).
STRATEGIES: dict[str, StrategyInfo] = {
    "kcenter": StrategyInfo(
        "embeddings",
        "k-center greedy on the teacher's graph embeddings (ASGN)",
        "pipeline.selection.strategies:pick_kcenter",
        features=True,
    ),
    "random": StrategyInfo(
        "embeddings",
        "uniform over the unlabelled pool (seeded)",
        "pipeline.selection.strategies:pick_random",
        gpu=False,
    ),
    "qbc": StrategyInfo(
        "committee",
        "largest disagreement of K students (query by committee)",
        "pipeline.selection.strategies:pick_uncertain",
    ),
    "krr_variance": StrategyInfo(
        "kernel",
        "largest posterior variance of the kernel student's Gaussian process, greedy: each pick "
        "conditions the next (student_kind krr)",
        "pipeline.selection.strategies:pick_posterior_variance",
        gpu=False,
    ),
    "mc_dropout": StrategyInfo(
        "student",
        "largest MC-dropout variance of the student (BALD-style)",
        "pipeline.selection.strategies:pick_uncertain",
    ),
    # batch active learning for regression, bmdal-reg's methods (pipeline.selection.batch_al)
    "lcmd": StrategyInfo(
        "embeddings",
        "LCMD on the teacher's graph embeddings: largest cluster's farthest point (Holzmüller et al., 2023)",
        "pipeline.selection.batch_al:lcmd",
        features=True,
    ),
    "bait": StrategyInfo(
        "embeddings",
        "BAIT on the teacher's graph embeddings: largest cut in posterior variance (Ash et al., 2021)",
        "pipeline.selection.batch_al:bait",
        features=True,
    ),
    "kmeanspp": StrategyInfo(
        "embeddings",
        "k-means++ seeding on the teacher's graph embeddings (Arthur & Vassilvitskii, 2007)",
        "pipeline.selection.batch_al:kmeanspp",
        features=True,
    ),
}


@dataclass(frozen=True)
class OracleInfo:
    """An oracle: who labels the picked (and the val/test) molecules."""

    #: "lookup" (the answer key), "compute" (chunked quantum-chemistry jobs) or "external" (a file)
    kind: str
    description: str
    #: canonical targets it can label (None: whatever the dataset's answer key or the lab has)
    targets: tuple[str, ...] | None = None
    #: compute: every column its calculation writes (the targets, plus ``energy`` in eV: the total
    #: energy at the stored geometry, which is not QM9's u0)
    columns: tuple[str, ...] = ()
    #: compute: "module:function" of its single point, function(z, pos, **settings) -> dict of columns
    single_point: str | None = None
    #: compute: the settings key that sets its thread count (the job's threads fill it in)
    threads_setting: str | None = None
    #: compute: settings under which a job holds a GPU (key, value), e.g. ("device", "gpu")
    gpu_setting: tuple[str, Any] | None = None

    def job_settings(self, settings: Mapping[str, Any], threads: int) -> dict[str, Any]:
        """The settings a label job passes to the single point: the config's, with the job's threads."""
        out = dict(settings)
        if self.threads_setting is not None:
            out.setdefault(self.threads_setting, threads)
        return out

    def gpus(self, settings: Mapping[str, Any]) -> int:
        """GPUs one label job of this oracle holds under these settings (0 or 1)."""
        if self.gpu_setting is None:
            return 0
        key, value = self.gpu_setting
        return int(settings.get(key) == value)

    def single_point_function(self) -> Callable[..., dict[str, Any]]:
        """The single-point function (imported on first use: pyscf and tblite are heavy)."""
        if self.single_point is None:
            raise ValueError(f"the {self.kind} oracle computes nothing itself")
        return _function(self.single_point)


_QC_TARGETS = ("homo", "lumo", "gap", "mu")

#: Oracle name -> what it is and what its jobs need.
ORACLES: dict[str, OracleInfo] = {
    "answer_key": OracleInfo("lookup", "look the labels up in the dataset's answer key"),
    "pyscf": OracleInfo(
        "compute",
        "DFT single point with PySCF",
        targets=_QC_TARGETS,
        columns=(*_QC_TARGETS, "energy"),
        single_point="pipeline.label.qc:pyscf_single_point",
        threads_setting="threads",
        gpu_setting=("device", "gpu"),
    ),
    "xtb": OracleInfo(
        "compute",
        "GFN2-xTB single point with tblite",
        targets=_QC_TARGETS,
        columns=(*_QC_TARGETS, "energy"),
        single_point="pipeline.label.qc:xtb_single_point",
    ),
    # pretrained potentials (pipeline.label.ani): a total energy of H, C, N, O molecules, no target;
    # cheap methods for helpers and delta learning
    "ani1x": OracleInfo(
        "compute",
        "ANI-1x neural-network potential (torchani; wB97x/6-31G(d) energies; H, C, N, O)",
        targets=(),
        columns=("energy",),
        single_point="pipeline.label.ani:ani1x_single_point",
    ),
    "ani1ccx": OracleInfo(
        "compute",
        "ANI-1ccx neural-network potential (torchani; CCSD(T)*/CBS energies; H, C, N, O)",
        targets=(),
        columns=("energy",),
        single_point="pipeline.label.ani:ani1ccx_single_point",
    ),
    "external": OracleInfo("external", "labels computed or measured elsewhere, read from a file"),
}

#: The oracles that compute (label_chunk and helper_chunk jobs): QC engines and pretrained potentials.
COMPUTING_ORACLES: tuple[str, ...] = tuple(name for name, info in ORACLES.items() if info.kind == "compute")

#: datasets.*.source: molecule source name -> "module:class" of its implementation
#: (:func:`pipeline.data.sources.get_source` imports it on first use, so QM9 does not pay for RDKit).
SOURCES: dict[str, str] = {
    "qm9": "pipeline.data.sources.qm9:QM9Source",
    "files": "pipeline.data.sources.files:FilesSource",
    "smiles": "pipeline.data.sources.smiles:SmilesSource",
}


@dataclass(frozen=True)
class TeacherInfo:
    """A way for the teacher to learn from the unlabelled pool (``train.semi``)."""

    description: str
    #: "module:function" of its training loop, ``train(model, graphs, data, cfg, generator,
    #: epochs) -> history`` (:func:`pipeline.learn.train.train_teacher` is the model)
    train: str

    def train_function(self) -> Callable[..., Any]:
        return _function(self.train)


#: train.semi -> its training loop (pipeline.stages.rounds.teacher calls it).
TEACHERS: dict[str, TeacherInfo] = {
    "asgn": TeacherInfo(
        "reconstruction, clustering and pseudo-label losses", "pipeline.learn.train:train_teacher"
    ),
    "mean_teacher": TeacherInfo(
        "consistency to an EMA of the weights, the baseline", "pipeline.learn.train:train_mean_teacher"
    ),
}


@dataclass(frozen=True)
class StudentInfo:
    """A kind of student (``student_kind``): what predicts each round and pseudo-labels the pool."""

    description: str
    #: whether its student and pseudo-label jobs hold a GPU (the network does; the kernel runs on the CPU)
    gpu: bool


#: student_kind -> what it is (pipeline.stages.rounds.student and pseudo_label dispatch on the name).
STUDENTS: dict[str, StudentInfo] = {
    "network": StudentInfo("the teacher's weights fine-tuned on the labels (ASGN's student)", gpu=True),
    "krr": StudentInfo(
        "kernel ridge regression on FCHL19, sigma and lambda chosen on validation (the small-N standard)",
        gpu=False,
    ),
}


@dataclass(frozen=True)
class BackboneInfo:
    """A representation the network can be built on (``model.backbone``)."""

    description: str
    #: "module:Class" of the representation, built as ``Class.from_config(model_config)`` by
    #: :class:`pipeline.model.asgn.ASGNModel`; its ``forward(z, edge_index, dist, pos)`` gives the
    #: scalar node features h [a, H] the heads read
    module: str

    def load(self) -> type:
        return _function(self.module)


BACKBONES: dict[str, BackboneInfo] = {
    "schnet": BackboneInfo(
        "SchNet (Schütt et al. 2017), the paper's: continuous filters over the pair distances",
        "pipeline.model.schnet:SchNet",
    ),
    "visnet": BackboneInfo(
        "ViSNet (Wang et al. 2024, PyG's layers): scalar and vector features, attention over "
        "neighbours within model.visnet.cutoff",
        "pipeline.model.visnet:ViSNet",
    ),
}


@dataclass(frozen=True)
class InitialInfo:
    """A way to pick round 0's labelled set."""

    description: str
    #: whether its initial job holds a GPU (it embeds the pool with an untrained teacher)
    gpu: bool


#: initial.strategy: how round 0's labelled set is picked.
INITIAL_STRATEGIES: dict[str, InitialInfo] = {
    "random": InitialInfo("seeded uniform picks from the pool", gpu=False),
    "kcenter": InitialInfo("k-center greedy on an untrained teacher's embeddings", gpu=True),
}


def _lookup(registry: Mapping[str, Any], name: str, what: str) -> Any:
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(registry)}") from None


def strategy_info(name: str) -> StrategyInfo:
    """The strategy registered under ``name``; the error lists the valid names."""
    return _lookup(STRATEGIES, name, "strategy")


def oracle_info(name: str) -> OracleInfo:
    """The oracle registered under ``name``; the error lists the valid names."""
    return _lookup(ORACLES, name, "oracle")


def teacher_info(name: str) -> TeacherInfo:
    """The teacher kind registered under ``name`` (train.semi); the error lists the valid names."""
    return _lookup(TEACHERS, name, "train.semi")


def initial_info(name: str) -> InitialInfo:
    """The initial strategy registered under ``name``; the error lists the valid names."""
    return _lookup(INITIAL_STRATEGIES, name, "initial_strategy")
