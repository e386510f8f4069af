"""The path grammar of the results folder: where every file of a dataset, a run and a round lives.

Relative to the working directory:

- ``results/data/{dataset}/graphs/shard-{shard}.parquet``: featurised graphs, no labels
- ``results/data/{dataset}/parts/shard-{shard}.*``: per-shard answer key, rejects, summary
- ``results/data/{dataset}/answer_key.parquet``: labels; only featurise_merge writes it
- ``results/data/{dataset}/rejects.parquet``, ``manifest.json``
- ``results/data/{dataset}/helpers/{source}/chunk-{chunk}.parquet``: helping properties (xtb) of
  every molecule of the dataset, for runs with ``helpers`` (and ``.failures.parquet``)
- ``results/runs/{run}/...`` (:data:`RUN_DIR`): split, run.json, initial picks, val/test labels
- ``results/runs/{run}/round_{round}/...`` (:data:`ROUND_DIR`): one active-learning round

``{shard}`` is the shard number in 5 digits (``00000``), ``{round}`` the round in 2 (``00``),
``{chunk}`` a label chunk in 3 (``000``).
"""

from __future__ import annotations

#: A dataset's folder.
DATA_DIR = "results/data/{dataset}"

#: A run's folder.
RUN_DIR = "results/runs/{run}"

#: A round's folder ({round} in 2 digits).
ROUND_DIR = f"{RUN_DIR}/round_{{round}}"

#: Every per-round artefact , in a round's folder.
ROUND_FILES = (
    "labelled.parquet",
    "label_failures.parquet",
    "teacher.pt",
    "teacher.json",
    "embeddings.parquet",
    "student.pt",
    "student.json",
    "pseudo_labels.parquet",
    "selected.parquet",
)

#: Round 0's artefacts that a run sharing another's round 0 copies (settings.round_0_sources):
#: all but the selection, which is the run's own strategy's.
ROUND_0_COPIED = tuple(name for name in ROUND_FILES if name != "selected.parquet")

#: What benchmark_table writes for each benchmark, in results/benchmark/{benchmark}/.
BENCHMARK_FILES = ("table.csv", "table.md", "paired.csv", "efficiency.csv", "figure.png")
