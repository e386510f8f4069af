"""The path grammar of the results folder: where every file of a dataset, a run and a round lives,
each spelled once, here. The workflow's rules name their outputs with these patterns (``PATHS.teacher``
is ``results/runs/{run}/round_{round}/teacher.pt``), and :class:`~pipeline.plan.jobs.Plan` fills in
their wildcards for the inputs of the jobs that read them (:meth:`Paths.of`).

Relative to the working directory:

- ``results/data/{dataset}/graphs/shard-{shard}.parquet``: featurised graphs, no labels
- ``results/data/{dataset}/parts/shard-{shard}.*``: per-shard answer key, rejects, summary
- ``results/data/{dataset}/answer_key.parquet``: labels; only featurise_merge writes it
- ``results/data/{dataset}/rejects.parquet``, ``manifest.json``
- ``results/data/{dataset}/helpers/{source}/chunk-{chunk}.parquet``: helping properties (xtb) of
  every molecule of the dataset, for runs with ``helpers`` or ``delta`` (and ``.failures.parquet``)
- ``results/runs/{run}/...`` (:data:`RUN_DIR`): split, run.json, initial picks, val/test labels,
  learning curve, round table
- ``results/runs/{run}/round_{round}/...`` (:data:`ROUND_DIR`): one active-learning round
- ``results/benchmark/{benchmark}/...``: a benchmark's tables and figure
- ``logs/{rule}/...``: every job's log; ``logs/timings/{rule}/...``: Snakemake's ``benchmark:``
  timing of the jobs that take long (kept apart from ``benchmarks/``, the speed scripts)

``{shard}`` is the shard number in 5 digits (``00000``), ``{round}`` the round in 2 (``00``),
``{chunk}`` a label chunk in 3 (``000``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

#: A dataset's folder.
DATA_DIR = "results/data/{dataset}"
#: A run's folder.
RUN_DIR = "results/runs/{run}"
#: A round's folder ({round} in 2 digits).
ROUND_DIR = f"{RUN_DIR}/round_{{round}}"
#: A benchmark's folder.
BENCHMARK_DIR = "results/benchmark/{benchmark}"
#: Where Snakemake's per-job timings (a rule's ``benchmark:``) go.
TIMINGS_DIR = "logs/timings"


@dataclass(frozen=True)
class Paths:
    """Every file the workflow makes, as a pattern with its wildcards."""

    # a dataset's
    graph_shard: str = f"{DATA_DIR}/graphs/shard-{{shard}}.parquet"
    answer_key_part: str = f"{DATA_DIR}/parts/shard-{{shard}}.answer_key.parquet"
    rejects_part: str = f"{DATA_DIR}/parts/shard-{{shard}}.rejects.parquet"
    shard_summary: str = f"{DATA_DIR}/parts/shard-{{shard}}.json"
    answer_key: str = f"{DATA_DIR}/answer_key.parquet"
    rejects: str = f"{DATA_DIR}/rejects.parquet"
    manifest: str = f"{DATA_DIR}/manifest.json"
    helper_chunk: str = f"{DATA_DIR}/helpers/{{source}}/chunk-{{chunk}}.parquet"
    helper_chunk_failures: str = f"{DATA_DIR}/helpers/{{source}}/chunk-{{chunk}}.failures.parquet"
    # a run's
    run_json: str = f"{RUN_DIR}/run.json"
    split: str = f"{RUN_DIR}/split.parquet"
    initial: str = f"{RUN_DIR}/initial.parquet"
    holdout_labels: str = f"{RUN_DIR}/holdout_labels.parquet"
    holdout_failures: str = f"{RUN_DIR}/holdout_failures.parquet"
    holdout_chunk: str = f"{RUN_DIR}/holdout_parts/chunk-{{chunk}}.parquet"
    holdout_chunk_failures: str = f"{RUN_DIR}/holdout_parts/chunk-{{chunk}}.failures.parquet"
    helpers: str = f"{RUN_DIR}/helpers.parquet"
    baseline: str = f"{RUN_DIR}/baseline.parquet"  # delta: the cheap method's value of each target
    holdout_labels_file: str = f"{RUN_DIR}/holdout_labels.csv"  # external oracle: filled in by a person
    holdout_request_xyz: str = f"{RUN_DIR}/holdout_to_label.xyz"
    holdout_request_csv: str = f"{RUN_DIR}/holdout_to_label.csv"
    learning_curve_csv: str = f"{RUN_DIR}/learning_curve.csv"
    learning_curve_png: str = f"{RUN_DIR}/learning_curve.png"
    round_table: str = f"{RUN_DIR}/rounds.csv"
    # a round's
    labelled: str = f"{ROUND_DIR}/labelled.parquet"
    label_failures: str = f"{ROUND_DIR}/label_failures.parquet"
    label_chunk: str = f"{ROUND_DIR}/label_parts/chunk-{{chunk}}.parquet"
    label_chunk_failures: str = f"{ROUND_DIR}/label_parts/chunk-{{chunk}}.failures.parquet"
    labels_file: str = f"{ROUND_DIR}/labels.csv"  # external oracle: filled in by a person
    request_xyz: str = f"{ROUND_DIR}/to_label.xyz"
    request_csv: str = f"{ROUND_DIR}/to_label.csv"
    teacher: str = f"{ROUND_DIR}/teacher.pt"
    teacher_json: str = f"{ROUND_DIR}/teacher.json"
    embeddings: str = f"{ROUND_DIR}/embeddings.parquet"
    student: str = f"{ROUND_DIR}/student.pt"
    student_json: str = f"{ROUND_DIR}/student.json"
    predictions: str = f"{ROUND_DIR}/predictions.parquet"  # the student's, per val/test molecule
    pseudo_labels: str = f"{ROUND_DIR}/pseudo_labels.parquet"
    selected: str = f"{ROUND_DIR}/selected.parquet"
    embedding_map: str = f"{ROUND_DIR}/embedding_map.png"
    # every run's
    learning_curve_all_csv: str = "results/learning_curve.csv"
    learning_curve_all_png: str = "results/learning_curve.png"
    # a benchmark's
    benchmark_table: str = f"{BENCHMARK_DIR}/table.csv"
    benchmark_markdown: str = f"{BENCHMARK_DIR}/table.md"
    benchmark_paired: str = f"{BENCHMARK_DIR}/paired.csv"
    benchmark_efficiency: str = f"{BENCHMARK_DIR}/efficiency.csv"
    benchmark_figure: str = f"{BENCHMARK_DIR}/figure.png"

    def of(self, name: str, **wildcards: object) -> str:
        """File ``name`` with its wildcards filled in (``of("teacher", run="a", round="01")``)."""
        return getattr(self, name).format(**wildcards)


#: The grammar, for the workflow and the plan.
PATHS = Paths()
#: The files of a round that every run makes, in stage order (the workflow's targets).
ROUND_OUTPUTS = (
    "labelled",
    "label_failures",
    "teacher",
    "teacher_json",
    "embeddings",
    "student",
    "student_json",
    "predictions",
    "pseudo_labels",
    "selected",
)
#: Their file names in a round's folder.
ROUND_FILES = tuple(getattr(PATHS, name).rsplit("/", 1)[1] for name in ROUND_OUTPUTS)
#: Round 0's artefacts that a run sharing another's round 0 copies (settings.round_0_sources):
#: all but the selection, which is the run's own strategy's; and their file names.
ROUND_0_SHARED = tuple(name for name in ROUND_OUTPUTS if name != "selected")
ROUND_0_COPIED = tuple(getattr(PATHS, name).rsplit("/", 1)[1] for name in ROUND_0_SHARED)
#: What benchmark_table writes for each benchmark.
BENCHMARK_OUTPUTS = tuple(f.name for f in fields(Paths) if f.name.startswith("benchmark_"))
#: Their file names in the benchmark's folder.
BENCHMARK_FILES = tuple(getattr(PATHS, name).rsplit("/", 1)[1] for name in BENCHMARK_OUTPUTS)
