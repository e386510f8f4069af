# Config validation, the environment jobs run in, and the input functions of every rule.
#
# One path grammar (shared/DESIGN.md):
#   results/data/{dataset}/graphs/shard-{shard}.parquet    featurised graphs, no labels
#   results/data/{dataset}/parts/shard-{shard}.*           per-shard answer key, rejects, summary
#   results/data/{dataset}/answer_key.parquet              labels: only featurise_merge writes it
#   results/data/{dataset}/{rejects.parquet,manifest.json}
#   results/runs/{run}/split.parquet
# {shard} is the shard number in 5 digits (00000, 00001, ...).

import os
import re
import shlex
import sys
from pathlib import Path

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


# Schema defaults are filled in here, so the rest of the workflow can index every key. An invalid
# config stops the workflow before any job starts, with one line naming the offending key.
try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as err:
    invalid = err.__context__  # the jsonschema error that Snakemake wraps
    if not isinstance(invalid, jsonschema.ValidationError):
        raise
    where = ".".join(str(key) for key in invalid.absolute_path) or "top level"
    raise WorkflowError(
        f"invalid config at {where}: {invalid.message} "
        "(every key is described in workflow/schemas/config.schema.yaml)"
    ) from None

DATASETS = config["datasets"]
RUNS = config["runs"]

for _run, _settings in RUNS.items():
    if _settings["dataset"] not in DATASETS:
        raise WorkflowError(
            f"invalid config at runs.{_run}.dataset: '{_settings['dataset']}' is not declared "
            f"under 'datasets' (declared: {', '.join(DATASETS)})"
        )

# Jobs call the `pipeline` command. With --sdm conda it comes from envs/pipeline.yaml, which
# installs this repository from ${ASGN_PIPELINE_ROOT} (conda creates environments from a copy of
# the file under .snakemake/conda/, so a path relative to the file would point there).
os.environ.setdefault("ASGN_PIPELINE_ROOT", str(Path(workflow.basedir).parent))
# Without conda, `pipeline` is whatever is on PATH, falling back to the one installed beside the
# Python that runs Snakemake (.venv/bin/pipeline when started as .venv/bin/snakemake unactivated).
os.environ.update(
    PATH=os.pathsep.join(filter(None, [os.environ.get("PATH"), str(Path(sys.executable).parent)]))
)


wildcard_constraints:
    dataset="|".join(re.escape(name) for name in DATASETS),
    run="|".join(re.escape(name) for name in RUNS),
    shard=r"\d{5}",


def get_final_output():
    """Targets of the workflow: every dataset's manifest and every run's split."""
    return expand("results/data/{dataset}/manifest.json", dataset=DATASETS) + expand(
        "results/runs/{run}/split.parquet", run=RUNS
    )


def get_shards(dataset):
    """Shard numbers of a dataset, as they appear in file names (00000, 00001, ...)."""
    return [f"{k:05d}" for k in range(DATASETS[dataset]["shards"])]


def get_dataset_dir(wildcards):
    """Folder of the dataset a dataset-level job works on (`--out` of pipeline featurise)."""
    return f"results/data/{wildcards.dataset}"


def get_num_shards(wildcards):
    return DATASETS[wildcards.dataset]["shards"]


def get_molecule_files(wildcards):
    """The dataset's input files or folders (none for packaged QM9): editing one featurises again."""
    return DATASETS[wildcards.dataset]["inputs"]


def get_featurise_args(wildcards):
    """`pipeline featurise` options that define the dataset's content (shell-quoted)."""
    dataset = DATASETS[wildcards.dataset]
    args = ["--source", dataset["source"], "--cutoff", dataset["cutoff"], "--seed", dataset["seed"]]
    args += ["--num-shards", dataset["shards"]]
    if dataset["limit"] is not None:
        args += ["--limit", dataset["limit"]]
    if dataset["inputs"]:
        args += ["--input", *dataset["inputs"]]
    return shlex.join(str(arg) for arg in args)


def get_featurise_parts(wildcards):
    """Every shard's parts, which featurise_merge joins (the only rule that reads answer-key parts)."""
    parts = {
        "summaries": "results/data/{dataset}/parts/shard-{shard}.json",
        "answer_keys": "results/data/{dataset}/parts/shard-{shard}.answer_key.parquet",
        "rejects": "results/data/{dataset}/parts/shard-{shard}.rejects.parquet",
    }
    shards = get_shards(wildcards.dataset)
    return {name: expand(path, dataset=wildcards.dataset, shard=shards) for name, path in parts.items()}


def get_run_dataset_dir(wildcards):
    """Folder of the dataset a run uses (`--data` of pipeline split)."""
    return f"results/data/{RUNS[wildcards.run]['dataset']}"


def get_split_input(wildcards):
    """The graph shards of the run's dataset (ids only, never labels) and its manifest.

    The manifest is written once every shard has been merged and checked, so a split is only made
    of a complete dataset.
    """
    dataset = RUNS[wildcards.run]["dataset"]
    return {
        "graphs": expand(
            "results/data/{dataset}/graphs/shard-{shard}.parquet",
            dataset=dataset,
            shard=get_shards(dataset),
        ),
        "manifest": f"results/data/{dataset}/manifest.json",
    }


def get_split_args(wildcards):
    """`pipeline split` sizes and seed of the run (shell-quoted)."""
    split = RUNS[wildcards.run]["split"]
    args = ["--val", split["val"], "--test", split["test"], "--seed", split["seed"]]
    if split["pool"] is not None:
        args += ["--pool", split["pool"]]
    return shlex.join(str(arg) for arg in args)
