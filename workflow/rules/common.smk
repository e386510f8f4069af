# Config validation, the environment jobs run in, and the input functions of every rule.
#
# One path grammar (shared/DESIGN.md):
#   results/data/{dataset}/graphs/shard-{shard}.parquet    featurised graphs, no labels
#   results/data/{dataset}/parts/shard-{shard}.*           per-shard answer key, rejects, summary
#   results/data/{dataset}/answer_key.parquet              labels: only featurise_merge writes it
#   results/data/{dataset}/{rejects.parquet,manifest.json}
#   results/runs/{run}/split.parquet
# {shard} is the shard number in 5 digits (00000, 00001, ...).

import json
import os
import re
import shlex
import sys
from pathlib import Path

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The workflow imports the package's light modules (names and config resolution; stdlib only), from
# this checkout, whichever Python runs Snakemake.
sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))
from pipeline.digest import file_sha256
from pipeline.registry import INITIAL_STRATEGIES, ORACLES, STRATEGIES
from pipeline.settings import duplicate_keys, label_budget, resolve


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
for _configfile in dict.fromkeys(map(str, workflow.configfiles)):
    if os.path.exists(_configfile):
        _twice = duplicate_keys(Path(_configfile).read_text())
        if _twice:
            raise WorkflowError(
                f"invalid config {_configfile}: a key is given twice, and only the last would count: "
                + "; ".join(_twice)
            )

# Validated (defaults filled in), benchmarks (base + per-method overrides x seeds) expanded into
# runs, checked across keys, and every run's settings (run.json) resolved: pipeline.settings.
try:
    RESOLVED = resolve(config, _validate)
except ValueError as err:
    raise WorkflowError(str(err)) from None
DATASETS = RESOLVED.datasets
RUNS = RESOLVED.runs
BENCHMARKS = RESOLVED.benchmarks

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
    benchmark="|".join(re.escape(name) for name in BENCHMARKS) or "(?!)",
    shard=r"\d{5}",
    round=r"\d{2}",
    chunk=r"\d{3}",


def get_final_output():
    """Targets of the workflow: every run's per-round artefacts and learning curves."""
    return (
        expand("results/data/{dataset}/manifest.json", dataset=DATASETS)
        + get_round_outputs()
        + expand(f"{RUN_DIR}/learning_curve.{{ext}}", run=RUNS, ext=["csv", "png"])
        + expand(f"{RUN_DIR}/rounds.csv", run=RUNS)
        + ["results/learning_curve.csv", "results/learning_curve.png"]
        + [f"{ROUND_DIR.format(run=run, round=r)}/embedding_map.png" for run in RUNS for r in get_rounds(run)]
        + get_benchmark_outputs()
    )


def get_benchmark_outputs():
    """results/benchmark/{benchmark}/...: the comparison tables and figure of each benchmark."""
    names = ["table.csv", "table.md", "paired.csv", "efficiency.csv", "figure.png"]
    return expand("results/benchmark/{benchmark}/{name}", benchmark=BENCHMARKS, name=names)


def get_benchmark_input(wildcards):
    """Each member run's learning curve and run.json (which says its method and seed)."""
    runs = RESOLVED.members_of(wildcards.benchmark)
    return {
        "curves": expand(f"{RUN_DIR}/learning_curve.csv", run=runs),
        "run_jsons": expand(f"{RUN_DIR}/run.json", run=runs),
    }


def get_benchmark_args(wildcards, input):
    """`pipeline benchmark-table` options: the curves and run settings, the derived methods, the
    baseline and the budget (shell-quoted)."""
    settings = BENCHMARKS[wildcards.benchmark]
    args = [arg for path in input.curves for arg in ("--curve", path)]
    args += [arg for path in input.run_jsons for arg in ("--run-json", path)]
    for derived, source in settings["derived"].items():
        args += ["--derived", f"{derived}={source}"]
    args += ["--baseline", settings["baseline"]]
    if settings["budget"] is not None:
        args += ["--budget", str(settings["budget"])]
    return shlex.join(args)


def get_shards(dataset):
    """Shard numbers of a dataset, as they appear in file names (00000, 00001, ...)."""
    return [f"{k:05d}" for k in range(DATASETS[dataset]["shards"])]


def get_molecule_files(wildcards):
    """The dataset's input files or folders (none for packaged QM9): editing one featurises again."""
    return DATASETS[wildcards.dataset]["inputs"]


def get_featurise_args(wildcards):
    """`pipeline featurise` options that define the dataset's content (shell-quoted)."""
    dataset = DATASETS[wildcards.dataset]
    args = ["--source", dataset["source"], "--cutoff", dataset["cutoff"], "--seed", dataset["seed"]]
    args += ["--num-shards", dataset["shards"], "--fragments", dataset["fragments"]]
    if dataset["limit"] is not None:
        args += ["--limit", dataset["limit"]]
    if dataset["inputs"]:
        args += ["--input", *dataset["inputs"]]
    return shlex.join(str(arg) for arg in args)


def get_featurise_parts(wildcards):
    """Every shard's parts, which featurise_merge joins (the only rule that reads answer-key parts),
    and its graph shard, whose checksum the manifest records."""
    parts = {
        "graphs": "results/data/{dataset}/graphs/shard-{shard}.parquet",
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
    """`pipeline split` sizes, seed, label budget and answer-key targets of the run (shell-quoted)."""
    run = RUNS[wildcards.run]
    split = run["split"]
    args = ["--val", split["val"], "--test", split["test"], "--seed", split["seed"]]
    if split["pool"] is not None:
        args += ["--pool", split["pool"]]
    # checked against the dataset before any training: the pool holds the labels, the answer key the targets
    args += ["--budget", label_budget(run)]
    if ORACLES[DATASETS[run["dataset"]]["oracle"]["name"]].kind == "lookup":
        args += ["--targets", *run["targets"]]
    return shlex.join(str(arg) for arg in args)


# ---------------------------------------------------------------------------------------------
# Active-learning rounds: results/runs/{run}/round_{round}/...  ({round} in 2 digits)

RUN_DIR = "results/runs/{run}"
ROUND_DIR = f"{RUN_DIR}/round_{{round}}"


def _run_dir(wildcards):
    """results/runs/{run} of the job's run."""
    return RUN_DIR.format(run=wildcards.run)


def _round_dir(wildcards, round=None):
    """results/runs/{run}/round_{round} of the job's run: its round, or the round given."""
    return ROUND_DIR.format(run=wildcards.run, round=wildcards.round if round is None else round)


def get_rounds(run):
    """Round numbers of a run, as they appear in folder names (00, 01, ...)."""
    return [f"{r:02d}" for r in range(RUNS[run]["rounds"])]


def get_run_config_json(wildcards):
    """The run's resolved settings, pipeline.settings.RunConfig, as run.json holds them."""
    return RESOLVED.settings[wildcards.run].to_json()


def get_dataset_graphs(wildcards):
    """Graph shards and manifest of the run's dataset (no labels)."""
    return get_split_input(wildcards)


def _previous(wildcards):
    return f"{int(wildcards.round) - 1:02d}"


# ---------------------------------------------------------------------------------------------
# Oracles (dataset's `oracle`): answer_key is a lookup in the label rules; pyscf and xtb run as
# label_chunk jobs (round_{round}/label_parts/chunk-{chunk}.parquet, holdout_parts/ for val/test)
# that the label rules merge; external writes a request and reads a labels file (pipeline.oracle),
# all three paths passed to the job (_external_files): round_{round}/to_label.xyz, to_label.csv and
# labels.csv; holdout_to_label.xyz, holdout_to_label.csv and holdout_labels.csv. Once the labels
# file exists it is an input of its label rule (a newer mtime reruns the job) and its SHA-256 a
# param (a changed content reruns it even when the mtime is older than the labels): editing it
# relabels that round and redoes everything that follows from it.


def get_oracle(wildcards):
    """The `oracle` settings of the run's dataset."""
    return DATASETS[RUNS[wildcards.run]["dataset"]]["oracle"]


def _oracle_kind(wildcards):
    return ORACLES[get_oracle(wildcards)["name"]].kind


def _chunk_names(wildcards):
    return [f"{c:03d}" for c in range(get_oracle(wildcards)["chunks"])]


def get_label_request(wildcards):
    """The molecules round {round} labels: the initial picks (round 0) or round r-1's selection."""
    if int(wildcards.round) == 0:
        return f"{_run_dir(wildcards)}/initial.parquet"
    return f"{_round_dir(wildcards, _previous(wildcards))}/selected.parquet"


def _external_files(wildcards):
    """The external oracle's files of a label job: the labels file it reads and the request (xyz,
    csv) it writes until that file exists. round_{round}/labels.csv, to_label.xyz, to_label.csv; for
    label_holdout (no {round}) holdout_labels.csv, holdout_to_label.xyz, holdout_to_label.csv."""
    if "round" in wildcards.keys():
        folder, prefix = _round_dir(wildcards), ""
    else:
        folder, prefix = _run_dir(wildcards), "holdout_"
    return {
        "labels": f"{folder}/{prefix}labels.csv",
        "xyz": f"{folder}/{prefix}to_label.xyz",
        "csv": f"{folder}/{prefix}to_label.csv",
    }


def _labels_file(wildcards):
    """The external oracle's labels file of a label job (see _external_files)."""
    return _external_files(wildcards)["labels"]


def _oracle_inputs(wildcards, parts, part_failures):
    """What the label rules read besides the request: run.json (the targets every label must have)
    and the answer key, the chunks, or the graphs and, once a person has filled it in, the labels
    file (external)."""
    inputs = {"run_json": f"{_run_dir(wildcards)}/run.json"}
    kind = _oracle_kind(wildcards)
    if kind == "lookup":
        inputs["answer_key"] = f"results/data/{RUNS[wildcards.run]['dataset']}/answer_key.parquet"
    elif kind == "compute":
        inputs["parts"] = expand(parts, chunk=_chunk_names(wildcards), allow_missing=True)
        inputs["part_failures"] = expand(part_failures, chunk=_chunk_names(wildcards), allow_missing=True)
    else:
        inputs.update(get_dataset_graphs(wildcards))
        if os.path.exists(_labels_file(wildcards)):
            inputs["labels"] = _labels_file(wildcards)
    return inputs


def _oracle_args(wildcards, input):
    oracle = get_oracle(wildcards)
    args = ["--oracle", oracle["name"], "--run-json", input.run_json]
    if oracle["ranges"]:
        args += ["--ranges", json.dumps(oracle["ranges"], sort_keys=True)]
    kind = _oracle_kind(wildcards)
    if kind == "lookup":
        args += ["--answer-key", input.answer_key]
    elif kind == "compute":
        args += ["--parts", *input.parts, "--part-failures", *input.part_failures]
    else:
        files = _external_files(wildcards)
        args += ["--data", get_run_dataset_dir(wildcards), "--labels-file", files["labels"]]
        args += ["--request-xyz", files["xyz"], "--request-csv", files["csv"]]
    return args


def get_labels_checksum(wildcards):
    """`--labels-sha256 X`: the checksum of the external oracle's labels file, once it exists ('' for
    other oracles or before). A function of the wildcards alone, so that Snakemake records it with
    the job (the params rerun trigger; functions of `input` are not recorded); the label stage
    refuses a file that no longer has it."""
    if _oracle_kind(wildcards) != "external" or not os.path.exists(_labels_file(wildcards)):
        return ""
    return shlex.join(["--labels-sha256", file_sha256(_labels_file(wildcards))])


def get_label_input(wildcards):
    """Round 0 labels the initial picks; round r > 0 adds the picks of round r-1 to L_{r-1}."""
    round_dir = _round_dir(wildcards)
    parts = f"{round_dir}/label_parts/chunk-{{chunk}}"
    inputs = {
        "selected": get_label_request(wildcards),
        **_oracle_inputs(wildcards, f"{parts}.parquet", f"{parts}.failures.parquet"),
    }
    if int(wildcards.round) > 0:
        previous = f"{_round_dir(wildcards, _previous(wildcards))}"
        inputs["previous"] = f"{previous}/labelled.parquet"
        inputs["previous_failures"] = f"{previous}/label_failures.parquet"
    return inputs


def get_label_args(wildcards, input):
    args = _oracle_args(wildcards, input)
    if int(wildcards.round) > 0:
        args += ["--previous", input.previous, "--previous-failures", input.previous_failures]
    return shlex.join(args)


def get_holdout_input(wildcards):
    run_dir = _run_dir(wildcards)
    parts = f"{run_dir}/holdout_parts/chunk-{{chunk}}"
    return {
        "split": f"{run_dir}/split.parquet",
        **_oracle_inputs(wildcards, f"{parts}.parquet", f"{parts}.failures.parquet"),
    }


def get_holdout_args(wildcards, input):
    return shlex.join(_oracle_args(wildcards, input))


def get_label_chunk_args(wildcards, threads):
    """`pipeline label-chunk` options: oracle, chunk of how many, settings as JSON (shell-quoted)."""
    oracle = get_oracle(wildcards)
    settings = ORACLES[oracle["name"]].job_settings(oracle["settings"], threads)
    args = ["--oracle", oracle["name"], "--chunk", int(wildcards.chunk), "--chunks", oracle["chunks"]]
    args += ["--settings", json.dumps(settings, sort_keys=True)]
    return shlex.join(str(arg) for arg in args)


def get_oracle_threads(wildcards):
    return get_oracle(wildcards)["threads"]


def get_oracle_mem_mb(wildcards):
    return get_oracle(wildcards)["mem_mb"]


def get_oracle_runtime(wildcards):
    return get_oracle(wildcards)["runtime"]


def get_oracle_gpu(wildcards):
    """GPUs a label chunk holds: pyscf on a GPU (settings.device: gpu) one, everything else none."""
    oracle = get_oracle(wildcards)
    return ORACLES[oracle["name"]].gpus(oracle["settings"])


def get_initial_gpu(wildcards):
    """GPUs the initial job holds: one where it embeds the pool (kcenter), none for random picks."""
    return int(INITIAL_STRATEGIES[RUNS[wildcards.run]["initial"]["strategy"]].gpu)


def get_select_gpu(wildcards):
    """GPUs a select job holds: one where the strategy runs the network or k-center, none for random."""
    return int(STRATEGIES[RUNS[wildcards.run]["strategy"]].gpu)


def get_teacher_input(wildcards):
    """L_r, and from round 1 on the previous teacher (warm start) and its student's pseudo-labels."""
    inputs = {
        **get_dataset_graphs(wildcards),
        "run_json": f"{_run_dir(wildcards)}/run.json",
        "split": f"{_run_dir(wildcards)}/split.parquet",
        "labelled": f"{_round_dir(wildcards)}/labelled.parquet",
    }
    if int(wildcards.round) > 0:
        previous = f"{_round_dir(wildcards, _previous(wildcards))}"
        if RUNS[wildcards.run]["train"]["warm_start"]:
            inputs["previous"] = f"{previous}/teacher.pt"
        if RUNS[wildcards.run]["pseudo_labels"]:
            inputs["pseudo"] = f"{previous}/pseudo_labels.parquet"
    return inputs


def get_teacher_args(wildcards, input):
    args = []
    if "previous" in input.keys():
        args += ["--previous", input.previous]
    if "pseudo" in input.keys():
        args += ["--pseudo", input.pseudo]
    return shlex.join(args)


def get_select_input(wildcards):
    """Embeddings, L_r and the molecules the oracle failed on (they leave the pool: a QC failure,
    a reason in a labels file, no value in the answer key); uncertainty strategies also read the
    graphs and a checkpoint."""
    round_dir = _round_dir(wildcards)
    inputs = {
        "run_json": f"{_run_dir(wildcards)}/run.json",
        "embeddings": f"{round_dir}/embeddings.parquet",
        "labelled": f"{round_dir}/labelled.parquet",
        "failures": f"{round_dir}/label_failures.parquet",
    }
    needs = STRATEGIES[RUNS[wildcards.run]["strategy"]].needs
    if needs != "embeddings":
        inputs.update(get_dataset_graphs(wildcards), split=f"{_run_dir(wildcards)}/split.parquet")
        inputs["checkpoint"] = f"{round_dir}/student.pt" if needs == "student" else f"{round_dir}/teacher.pt"
    if needs == "committee":
        inputs["student_summary"] = f"{round_dir}/student.json"
    return inputs


def get_select_args(wildcards, input):
    """Extra `pipeline select` options of uncertainty strategies."""
    args = ["--failures", input.failures] if "failures" in input.keys() else []
    if "checkpoint" not in input.keys():
        return shlex.join(args)
    args += [
        "--data",
        get_run_dataset_dir(wildcards),
        "--split-path",
        input.split,
        "--checkpoint",
        input.checkpoint,
    ]
    if "student_summary" in input.keys():
        args += ["--student-summary", input.student_summary]
    return shlex.join(args)


def _students(run):
    return expand(f"{ROUND_DIR}/student.json", run=run, round=get_rounds(run))


def get_learning_curve_input(wildcards):
    return _students(wildcards.run)


def get_all_students(wildcards):
    return [path for run in RUNS for path in _students(run)]


def get_learning_curve_args(wildcards, input):
    """`--student RUN=FILE` for each round of each run the curve shows (shell-quoted)."""
    runs = [wildcards.run] if "run" in wildcards.keys() else list(RUNS)
    return shlex.join(
        arg for run in runs for path in _students(run) for arg in ("--student", f"{run}={path}")
    )


def get_round_table_input(wildcards):
    round_dir = f"{ROUND_DIR}/{{name}}.json"
    rounds = get_rounds(wildcards.run)
    return {
        "teachers": expand(round_dir, run=wildcards.run, round=rounds, name="teacher"),
        "students": expand(round_dir, run=wildcards.run, round=rounds, name="student"),
    }


def get_round_outputs():
    """Every per-round artefact of every run (DESIGN.md's layout)."""
    files = [
        "labelled.parquet",
        "label_failures.parquet",
        "teacher.pt",
        "teacher.json",
        "embeddings.parquet",
        "student.pt",
        "student.json",
        "pseudo_labels.parquet",
        "selected.parquet",
    ]
    return [
        f"{ROUND_DIR.format(run=run, round=r)}/{name}"
        for run in RUNS
        for r in get_rounds(run)
        for name in files
    ]
