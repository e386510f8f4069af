# Config validation, the environment jobs run in, and the few helpers through which rules ask
# pipeline.plan for what each job is given (inputs, options, oracle resources). The path grammar
# (PATHS) and the per-round stage commands are pipeline.plan's too: rules call PLAN with their
# wildcards (and `input`/`threads`/`output` where Snakemake gives them).

import os
import re
import shlex
import sys
from pathlib import Path

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# (the package's src/ is on sys.path: rules/config_files.smk)
from pipeline.plan import PATHS, ROUND_0_SHARED, Plan
from pipeline.config.registry import COMPUTING_ORACLES
from pipeline.config.settings import resolve


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


# Input and param functions of PLAN's methods, by the wildcards they take. A param function that
# takes `input` or `threads` is one Snakemake does not record for its params rerun trigger; one of
# the wildcards alone (the labels file's checksum) is.


def plan(method, *wildcards):
    """An input function: PLAN.<method> of the rule's ``wildcards`` (None where one is absent)."""
    return lambda w: getattr(PLAN, method)(*(w.get(name) for name in wildcards))


def plan_args(method, *wildcards):
    """A param function: PLAN.<method>'s options for the rule's ``wildcards``, shell-quoted."""
    return lambda w: shlex.join(getattr(PLAN, method)(*(w.get(name) for name in wildcards)))


def plan_args_of_input(method, *wildcards):
    """A param function: PLAN.<method>'s options for the ``wildcards`` and the rule's input, shell-quoted."""
    return lambda w, input: shlex.join(getattr(PLAN, method)(*(w.get(name) for name in wildcards), input))


def stage_input(command):
    """A per-round stage rule's inputs (Plan.stage_input, from pipeline.plan.commands)."""
    return lambda w: PLAN.stage_input(command, w.run, w.get("round"))


def stage_options(command):
    """A per-round stage rule's options, inputs and outputs as its command line (Plan.stage_options)."""
    return lambda w, input, output: shlex.join(
        PLAN.stage_options(command, w.run, w.get("round"), input, output)
    )


def oracle_job(key):
    """The oracle's job resource ``key`` (threads, mem_mb, runtime, gpu) of the rule's run."""
    return lambda w: PLAN.oracle_job(w.run)[key]
