# Config validation, the environment jobs run in, and the input functions of every rule. What each
# job is given (inputs, options, oracle resources) and the path grammar are pipeline.plan.jobs's: these
# functions only pass it the job's wildcards (and `input`/`threads` where Snakemake gives them).

import os
import re
import shlex
import sys
from pathlib import Path

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The workflow imports the package's light modules (names, config resolution, the plan; stdlib
# only), from this checkout, whichever Python runs Snakemake.
sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))
from pipeline.plan import ROUND_0_COPIED, Plan
from pipeline.config.settings import repeated_keys_error, resolve


def _validate(config):
    """Fill in schema defaults, so the rest of the workflow can index every key. An invalid config
    stops the workflow before any job starts, with one line naming the offending key."""
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


# A key stated twice in a config file is an error (YAML would keep the last one silently).
_twice = repeated_keys_error(workflow.configfiles)
if _twice:
    raise WorkflowError(_twice)

# Validated (defaults filled in), benchmarks (base + per-method overrides x seeds) expanded into
# runs, checked across keys, and every run's settings (run.json) resolved: pipeline.config.settings.
try:
    RESOLVED = resolve(config, _validate)
except ValueError as err:
    raise WorkflowError(str(err)) from None
PLAN = Plan(RESOLVED)

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
    dataset="|".join(re.escape(name) for name in RESOLVED.datasets),
    run="|".join(re.escape(name) for name in RESOLVED.runs),
    benchmark="|".join(re.escape(name) for name in RESOLVED.benchmarks) or "(?!)",
    shard=r"\d{5}",
    round=r"\d{2}",
    chunk=r"\d{3}",


# Input and param functions: one per rule field, each delegating to PLAN (pipeline.plan.jobs.Plan, whose
# methods say what they return). Options are shell-quoted here. A param function that takes `input`
# or `threads` is one Snakemake does not record for its params rerun trigger; one of the wildcards
# alone (get_labels_checksum) is.


def get_final_output():
    return PLAN.final_output()


# featurise_shard, featurise_merge
def get_molecule_files(wildcards):
    return PLAN.molecule_files(wildcards.dataset)


def get_featurise_args(wildcards):
    return shlex.join(PLAN.featurise_args(wildcards.dataset))


def get_featurise_parts(wildcards):
    return PLAN.featurise_parts(wildcards.dataset)


# split, run_config, and the molecules of every stage that reads them
def get_dataset_graphs(wildcards):
    return PLAN.dataset_graphs(wildcards.run)


def get_run_dataset_dir(wildcards):
    return PLAN.data_dir(wildcards.run)


def get_split_args(wildcards):
    return shlex.join(PLAN.split_args(wildcards.run))


def get_run_config_json(wildcards):
    return PLAN.run_config_json(wildcards.run)


def get_initial_gpu(wildcards):
    return PLAN.initial_gpus(wildcards.run)


# label, label_holdout, label_chunk, holdout_chunk
def get_label_request(wildcards):
    return PLAN.label_request(wildcards.run, wildcards.round)


def get_label_input(wildcards):
    return PLAN.label_input(wildcards.run, wildcards.round)


def get_label_args(wildcards, input):
    return shlex.join(PLAN.label_args(wildcards.run, wildcards.round, input))


def get_holdout_input(wildcards):
    return PLAN.holdout_input(wildcards.run)


def get_holdout_args(wildcards, input):
    return shlex.join(PLAN.holdout_args(wildcards.run, input))


def get_labels_checksum(wildcards):
    return shlex.join(PLAN.labels_checksum(wildcards.run, wildcards.get("round")))


def get_label_chunk_args(wildcards, threads):
    return shlex.join(PLAN.label_chunk_args(wildcards.run, wildcards.chunk, threads))


def get_oracle_threads(wildcards):
    return PLAN.oracle_job(wildcards.run)["threads"]


def get_oracle_mem_mb(wildcards):
    return PLAN.oracle_job(wildcards.run)["mem_mb"]


def get_oracle_runtime(wildcards):
    return PLAN.oracle_job(wildcards.run)["runtime"]


def get_oracle_gpu(wildcards):
    return PLAN.oracle_job(wildcards.run)["gpu"]


# helper_chunk, helpers
def get_helper_chunk_dataset(wildcards):
    return PLAN.dataset_files(wildcards.dataset)


def get_helper_chunk_args(wildcards):
    return shlex.join(PLAN.helper_chunk_args(wildcards.dataset, wildcards.source, wildcards.chunk))


def get_helper_input(wildcards):
    return PLAN.helper_input(wildcards.run)


def get_helper_args(wildcards, input):
    return shlex.join(PLAN.helper_args(input))


# teacher, select
def get_teacher_input(wildcards):
    return PLAN.teacher_input(wildcards.run, wildcards.round)


def get_teacher_args(wildcards, input):
    return shlex.join(PLAN.teacher_args(input))


def get_select_input(wildcards):
    return PLAN.select_input(wildcards.run, wildcards.round)


def get_select_args(wildcards, input):
    return shlex.join(PLAN.select_args(wildcards.run, input))


def get_select_gpu(wildcards):
    return PLAN.select_gpus(wildcards.run)


# share_round_0
def get_share_input(wildcards):
    return PLAN.share_input(wildcards.run)


def get_share_args(wildcards):
    return shlex.join(PLAN.share_args(wildcards.run))


# learning_curve, learning_curve_all, round_table, benchmark_table
def get_learning_curve_input(wildcards):
    return PLAN.students(wildcards.run)


def get_all_students(wildcards):
    return PLAN.all_students()


def get_learning_curve_args(wildcards, input):
    return shlex.join(PLAN.learning_curve_args(wildcards.get("run")))


def get_round_table_input(wildcards):
    return PLAN.round_table_input(wildcards.run)


def get_benchmark_input(wildcards):
    return PLAN.benchmark_input(wildcards.benchmark)


def get_benchmark_args(wildcards, input):
    return shlex.join(PLAN.benchmark_args(wildcards.benchmark, input))
