"""The per-round stage commands, declared once: each stage's function, and each of its files and
options with its flag, type and help.

Both sides read these declarations: :mod:`pipeline.cli` builds the ``pipeline <stage>`` commands from
them (flags, types, help; the stage function gets each value as the keyword ``dest``), and
:meth:`pipeline.plan.jobs.Plan.stage_options` builds a rule's command line from them (each option's
value is the rule's input or output of the same name, or what :attr:`Option.value` names). A new
optional input of a stage is one :class:`Option` here, its path in the stage's input
(:meth:`~pipeline.plan.jobs.Plan.stage_input`), and the stage function's keyword.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

__all__ = ["STAGES", "Option", "Stage"]


@dataclass(frozen=True)
class Option:
    """One option of a per-round stage command; the stage function gets its value as keyword ``dest``.

    ``value``: where a rule's value comes from: None, the rule's input or output named ``dest``
    (absent: the option is left out); else the name of a :class:`~pipeline.plan.jobs.Plan` method
    ``(run, round, input) -> str | None`` (None: left out).
    """

    flag: str
    type: Callable[[str], object]
    help: str
    _: KW_ONLY
    required: bool
    metavar: str = "FILE"
    value: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


@dataclass(frozen=True)
class Stage:
    """A per-round stage command: its function in :mod:`pipeline.stages.rounds`, one-line help, options
    (in the order a rule passes them)."""

    function: str
    help: str
    options: tuple[Option, ...]


RUN_JSON = Option(
    "--run-json", Path, "the run's settings (run.json, from `pipeline run-config`)", required=True
)
DATA = Option(
    "--data",
    Path,
    "featurised dataset folder (graph shards and manifest.json)",
    required=True,
    metavar="DIR",
    value="stage_data",
)
SPLIT = Option("--split-path", Path, "the run's pool / val / test split (split.parquet)", required=True)
LABELLED = Option(
    "--labelled-path", Path, "L_r, the molecules labelled so far (round_XX/labelled.parquet)", required=True
)
ROUND = Option(
    "--round",
    int,
    "the active-learning round r (an integer, 0 first)",
    required=True,
    metavar="R",
    value="stage_round",
)
UNCERTAINTY = "uncertainty strategies (mc_dropout, qbc, krr_variance)"
BASELINE = Option(
    "--baseline",
    Path,
    "baseline.parquet: the cheap method's value of each delta target (runs with delta only)",
    required=False,
)

#: Per-round stages (pipeline.stages.rounds): command -> its function and options.
STAGES: dict[str, Stage] = {
    "initial": Stage(
        "initial",
        "round 0 picks: random or k-center on an untrained teacher",
        (
            RUN_JSON,
            DATA,
            SPLIT,
            Option("--out", Path, "picks to write (initial.parquet: mol_id, pick, distance)", required=True),
        ),
    ),
    "teacher": Stage(
        "teacher",
        "semi-supervised teacher of a round",
        (
            RUN_JSON,
            DATA,
            SPLIT,
            LABELLED,
            ROUND,
            Option(
                "--previous",
                Path,
                "teacher_{r-1}'s checkpoint to warm-start from (default: a fresh initialisation)",
                required=False,
            ),
            Option(
                "--pseudo",
                Path,
                "the previous round's pseudo_labels.parquet, learnt if the run's pseudo_labels is on",
                required=False,
            ),
            Option(
                "--helpers",
                Path,
                "helpers.parquet: every pool molecule's helping properties (runs with helpers only)",
                required=False,
            ),
            BASELINE,
            Option("--out", Path, "checkpoint to write (round_XX/teacher.pt)", required=True),
            Option(
                "--summary", Path, "summary to write (round_XX/teacher.json: losses, epochs)", required=True
            ),
        ),
    ),
    "embed": Stage(
        "embed",
        "graph embeddings of the pool under a teacher",
        (
            RUN_JSON,
            DATA,
            SPLIT,
            Option("--checkpoint", Path, "the round's teacher (round_XX/teacher.pt)", required=True),
            Option(
                "--out",
                Path,
                "embeddings to write (round_XX/embeddings.parquet: mol_id, embedding)",
                required=True,
            ),
        ),
    ),
    "student": Stage(
        "student",
        "the round's student (fine-tuned from the teacher, or krr); val and test MAE",
        (
            RUN_JSON,
            DATA,
            SPLIT,
            LABELLED,
            Option(
                "--holdout-path",
                Path,
                "labels of the val and test molecules (holdout_labels.parquet)",
                required=True,
            ),
            Option(
                "--teacher-path",
                Path,
                "the round's teacher, to fine-tune (round_XX/teacher.pt; student_kind network) or whose "
                "embeddings the kernel student compares (krr.features teacher)",
                required=False,
            ),
            ROUND,
            BASELINE,
            Option("--out", Path, "checkpoint to write (round_XX/student.pt)", required=True),
            Option(
                "--summary", Path, "summary to write (round_XX/student.json: val and test MAE)", required=True
            ),
            Option(
                "--predictions",
                Path,
                "each val and test molecule's prediction and label to write (round_XX/predictions.parquet)",
                required=True,
            ),
        ),
    ),
    "pseudo-label": Stage(
        "pseudo_label",
        "student predictions for the unlabelled pool",
        (
            RUN_JSON,
            DATA,
            SPLIT,
            LABELLED,
            Option("--checkpoint", Path, "the round's student (round_XX/student.pt)", required=True),
            BASELINE,
            Option(
                "--teacher-path",
                Path,
                "the round's teacher, whose embeddings a kernel student compares (krr.features teacher)",
                required=False,
            ),
            Option(
                "--out",
                Path,
                "predictions to write (round_XX/pseudo_labels.parquet: mol_id, a column per target)",
                required=True,
            ),
        ),
    ),
    "select": Stage(
        "select",
        "the next molecules to label",
        (
            RUN_JSON,
            Option(
                "--embeddings",
                Path,
                "the round's pool embeddings (round_XX/embeddings.parquet)",
                required=True,
            ),
            LABELLED,
            ROUND,
            Option(
                "--failures",
                Path,
                "molecules the oracle could not label, left out of the pool (label_failures.parquet)",
                required=False,
            ),
            Option(
                "--data",
                Path,
                f"{UNCERTAINTY}: featurised dataset folder",
                required=False,
                metavar="DIR",
                value="stage_data",
            ),
            Option("--split-path", Path, f"{UNCERTAINTY}: the run's split.parquet", required=False),
            Option(
                "--checkpoint",
                Path,
                f"{UNCERTAINTY}: round_XX/student.pt (mc_dropout, krr_variance) or round_XX/teacher.pt (qbc)",
                required=False,
            ),
            Option(
                "--teacher-path",
                Path,
                "krr_variance on krr.features teacher: the round's teacher, whose embeddings it compares",
                required=False,
            ),
            Option(
                "--student-summary",
                Path,
                "qbc: round_XX/student.json (the committee trains for as many epochs as the student)",
                required=False,
            ),
            BASELINE,
            Option("--out", Path, "picks to write, in pick order (round_XX/selected.parquet)", required=True),
        ),
    ),
    "share-round-0": Stage(
        "share_round_0",
        "round 0 copied from a run that did the same (a benchmark's share_round_0), after checks",
        (
            RUN_JSON,
            Option("--source-run-json", Path, "run.json of the run whose round 0 is copied", required=True),
            SPLIT,
            Option(
                "--source-split", Path, "that run's split.parquet (must equal --split-path)", required=True
            ),
            Option("--initial", Path, "the run's initial.parquet", required=True),
            Option(
                "--source-initial", Path, "that run's initial.parquet (must equal --initial)", required=True
            ),
            Option(
                "--source-round",
                Path,
                "that run's round_00 folder",
                required=True,
                metavar="DIR",
                value="source_round_0",
            ),
            Option(
                "--out-round",
                Path,
                "the run's round_00 folder to write",
                required=True,
                metavar="DIR",
                value="own_round_0",
            ),
        ),
    ),
}
