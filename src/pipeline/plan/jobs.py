"""What the workflow plans, as plain functions of the resolved config: every job's input files, the
command-line options of its ``pipeline`` call and the resources of the oracle's jobs.

``workflow/rules/common.smk`` wraps a :class:`Plan` of its ``RESOLVED`` config in one-line input
and param functions (``def get_split_args(wildcards): return shlex.join(PLAN.split_args(...))``),
so what a job is given can be read, and tested, here without Snakemake: each method takes a run
name, a round (``"00"``, ``"01"``, ...) and the like, and returns paths, dicts of named paths (a
rule's ``unpack``-ed input) or the options as a list of strings (the workflow shell-quotes them).

Oracles (the dataset's ``oracle``, by ``ORACLES[name].kind``): ``lookup`` reads the answer key in
the label rules; ``compute`` (pyscf, xtb) runs label_chunk jobs (``round_{round}/label_parts/``,
``holdout_parts/`` for val/test) that the label rules merge; ``external`` writes a request and reads
a labels file, all three paths passed to the job (:meth:`Plan.external_files`). Once the labels file
exists it is an input of its label rule (a newer mtime reruns the job) and its SHA-256 a param (a
changed content reruns it even when the mtime is older than the labels): editing it relabels that
round and redoes everything that follows from it.

Imported by the workflow on every Snakemake invocation: it imports nothing heavy (stdlib and the
package's light modules only; ``tests/test_registry.py`` checks it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config.digest import file_sha256
from pipeline.config.registry import INITIAL_STRATEGIES, ORACLES, STRATEGIES
from pipeline.config.settings import Resolved, label_budget
from pipeline.plan.paths import BENCHMARK_FILES, DATA_DIR, ROUND_0_COPIED, ROUND_DIR, ROUND_FILES, RUN_DIR

__all__ = ["Plan"]


#: Input = a rule's named inputs: a dict in tests, Snakemake's ``input`` (a Namedlist, which has
#: ``keys()`` and ``input[name]`` too) in the workflow.
Input = Mapping[str, Any]


@dataclass(frozen=True)
class Plan:
    """The jobs of a resolved config: their inputs, options and resources.

    ``root`` is the working directory the jobs run in (Snakemake's ``--directory``; the current
    one by default): the only place this looks at files is the external oracle's labels file, which
    becomes an input, and whose checksum a param, once it exists there. Every path returned is
    relative to it.
    """

    resolved: Resolved
    root: Path = Path(".")

    # ------------------------------------------------------------------------- names and folders

    def shards(self, dataset: str) -> list[str]:
        """Shard numbers of a dataset, as they appear in file names (00000, 00001, ...)."""
        return [f"{k:05d}" for k in range(self.resolved.datasets[dataset]["shards"])]

    def rounds(self, run: str) -> list[str]:
        """Round numbers of a run, as they appear in folder names (00, 01, ...)."""
        return [f"{r:02d}" for r in range(self.resolved.runs[run]["rounds"])]

    def run_dir(self, run: str) -> str:
        """results/runs/{run}."""
        return RUN_DIR.format(run=run)

    def round_dir(self, run: str, round: str) -> str:
        """results/runs/{run}/round_{round}."""
        return ROUND_DIR.format(run=run, round=round)

    def data_dir(self, run: str) -> str:
        """Folder of the dataset a run uses (the `--data` of every stage that reads molecules)."""
        return DATA_DIR.format(dataset=self.resolved.runs[run]["dataset"])

    # ---------------------------------------------------------------------------------- targets

    def final_output(self) -> list[str]:
        """Targets of the workflow: every dataset's manifest, every run's per-round artefacts,
        learning curves, round table and embedding maps, the curve of all runs, the benchmarks."""
        runs = self.resolved.runs
        return (
            [f"{DATA_DIR.format(dataset=dataset)}/manifest.json" for dataset in self.resolved.datasets]
            + self.round_outputs()
            + [f"{self.run_dir(run)}/learning_curve.{ext}" for run in runs for ext in ("csv", "png")]
            + [f"{self.run_dir(run)}/rounds.csv" for run in runs]
            + ["results/learning_curve.csv", "results/learning_curve.png"]
            + [f"{self.round_dir(run, r)}/embedding_map.png" for run in runs for r in self.rounds(run)]
            + self.benchmark_outputs()
        )

    def round_outputs(self) -> list[str]:
        """Every per-round artefact (:data:`ROUND_FILES`) of every run."""
        return [
            f"{self.round_dir(run, r)}/{name}"
            for run in self.resolved.runs
            for r in self.rounds(run)
            for name in ROUND_FILES
        ]

    def benchmark_outputs(self) -> list[str]:
        """results/benchmark/{benchmark}/...: the comparison tables and figure of each benchmark."""
        return [
            f"results/benchmark/{benchmark}/{name}"
            for benchmark in self.resolved.benchmarks
            for name in BENCHMARK_FILES
        ]

    # -------------------------------------------------------------------------------- featurise

    def molecule_files(self, dataset: str) -> list[str]:
        """The dataset's input files or folders (none for packaged QM9): editing one featurises again."""
        return self.resolved.datasets[dataset]["inputs"]

    def featurise_args(self, dataset: str) -> list[str]:
        """`pipeline featurise` options that define the dataset's content."""
        settings = self.resolved.datasets[dataset]
        args = ["--source", settings["source"], "--cutoff", settings["cutoff"], "--seed", settings["seed"]]
        args += ["--num-shards", settings["shards"], "--fragments", settings["fragments"]]
        if settings["limit"] is not None:
            args += ["--limit", settings["limit"]]
        if settings["inputs"]:
            args += ["--input", *settings["inputs"]]
        return [str(arg) for arg in args]

    def featurise_parts(self, dataset: str) -> dict[str, list[str]]:
        """Every shard's parts, which featurise_merge joins (the only rule that reads answer-key
        parts), and its graph shard, whose checksum the manifest records."""
        folder = DATA_DIR.format(dataset=dataset)
        parts = {
            "graphs": f"{folder}/graphs/shard-{{shard}}.parquet",
            "summaries": f"{folder}/parts/shard-{{shard}}.json",
            "answer_keys": f"{folder}/parts/shard-{{shard}}.answer_key.parquet",
            "rejects": f"{folder}/parts/shard-{{shard}}.rejects.parquet",
        }
        shards = self.shards(dataset)
        return {name: [path.format(shard=shard) for shard in shards] for name, path in parts.items()}

    # ------------------------------------------------------------------------ split, run config

    def dataset_files(self, dataset: str) -> dict[str, Any]:
        """A dataset's graph shards and manifest (written once every shard is merged and checked)."""
        folder = DATA_DIR.format(dataset=dataset)
        return {
            "graphs": [f"{folder}/graphs/shard-{shard}.parquet" for shard in self.shards(dataset)],
            "manifest": f"{folder}/manifest.json",
        }

    def dataset_graphs(self, run: str) -> dict[str, Any]:
        """The graph shards of the run's dataset (ids only, never labels) and its manifest.

        The manifest is written once every shard has been merged and checked, so a stage only ever
        reads a complete dataset.
        """
        return self.dataset_files(self.resolved.runs[run]["dataset"])

    def split_args(self, run: str) -> list[str]:
        """`pipeline split` sizes, seed, label budget (--budget) and, for the lookup oracle, the
        targets (--targets) the answer key must hold: checked against the dataset before any
        training."""
        settings = self.resolved.runs[run]
        split = settings["split"]
        args = ["--val", split["val"], "--test", split["test"], "--seed", split["seed"]]
        if split["pool"] is not None:
            args += ["--pool", split["pool"]]
        args += ["--budget", label_budget(settings)]
        if self.oracle_kind(run) == "lookup":
            args += ["--targets", *settings["targets"]]
        return [str(arg) for arg in args]

    def run_config_json(self, run: str) -> str:
        """The run's resolved settings, pipeline.config.settings.RunConfig, as run.json holds them."""
        return self.resolved.settings[run].to_json()

    def initial_gpus(self, run: str) -> int:
        """GPUs the initial job holds: one where it embeds the pool (kcenter), none for random picks."""
        return int(INITIAL_STRATEGIES[self.resolved.runs[run]["initial"]["strategy"]].gpu)

    # ---------------------------------------------------------------------------------- oracles

    def oracle(self, run: str) -> dict[str, Any]:
        """The `oracle` settings of the run's dataset."""
        return self.resolved.datasets[self.resolved.runs[run]["dataset"]]["oracle"]

    def oracle_kind(self, run: str) -> str:
        """`lookup`, `compute` or `external`: how the run's oracle labels (registry.ORACLES)."""
        return ORACLES[self.oracle(run)["name"]].kind

    def chunks(self, run: str) -> list[str]:
        """The label chunks of a compute oracle, as they appear in file names (000, 001, ...)."""
        return [f"{c:03d}" for c in range(self.oracle(run)["chunks"])]

    def oracle_job(self, run: str) -> dict[str, int]:
        """What one label chunk job (label_chunk, holdout_chunk) of the run's oracle holds: threads,
        mem_mb, runtime (minutes) and gpu (1 for pyscf with settings.device: gpu, else 0)."""
        oracle = self.oracle(run)
        return {
            "threads": oracle["threads"],
            "mem_mb": oracle["mem_mb"],
            "runtime": oracle["runtime"],
            "gpu": ORACLES[oracle["name"]].gpus(oracle["settings"]),
        }

    def label_chunk_args(self, run: str, chunk: str, threads: int) -> list[str]:
        """`pipeline label-chunk` options: the oracle, which chunk of how many, and the single
        point's settings as JSON (the config's, with the job's threads where the oracle has a
        thread setting)."""
        oracle = self.oracle(run)
        settings = ORACLES[oracle["name"]].job_settings(oracle["settings"], threads)
        args = ["--oracle", oracle["name"], "--chunk", int(chunk), "--chunks", oracle["chunks"]]
        args += ["--settings", json.dumps(settings, sort_keys=True)]
        return [str(arg) for arg in args]

    def label_request(self, run: str, round: str) -> str:
        """The molecules round {round} labels: the initial picks (round 0) or round r-1's selection."""
        if int(round) == 0:
            return f"{self.run_dir(run)}/initial.parquet"
        return f"{self.round_dir(run, _previous(round))}/selected.parquet"

    def external_files(self, run: str, round: str | None = None) -> dict[str, str]:
        """The external oracle's files of a label job: the labels file it reads ("labels") and the
        request ("xyz", "csv") it writes until that file exists. round_{round}/labels.csv,
        to_label.xyz, to_label.csv; for label_holdout (round None) holdout_labels.csv,
        holdout_to_label.xyz, holdout_to_label.csv."""
        if round is not None:
            folder, prefix = self.round_dir(run, round), ""
        else:
            folder, prefix = self.run_dir(run), "holdout_"
        return {
            "labels": f"{folder}/{prefix}labels.csv",
            "xyz": f"{folder}/{prefix}to_label.xyz",
            "csv": f"{folder}/{prefix}to_label.csv",
        }

    def labels_file(self, run: str, round: str | None = None) -> str | None:
        """The external oracle's labels file of a label job once a person has filled it in (it
        exists under ``root``); None before, and for the other oracles."""
        if self.oracle_kind(run) != "external":
            return None
        labels = self.external_files(run, round)["labels"]
        return labels if (self.root / labels).exists() else None

    def labels_checksum(self, run: str, round: str | None = None) -> list[str]:
        """``["--labels-sha256", X]``: the checksum of the external oracle's labels file, once it
        exists (empty for other oracles or before). The workflow makes it a param of the label
        rules that depends on the wildcards alone, so that Snakemake records it with the job (the
        params rerun trigger); the label stage refuses a file that no longer has it."""
        labels = self.labels_file(run, round)
        if labels is None:
            return []
        return ["--labels-sha256", file_sha256(self.root / labels)]

    def _oracle_inputs(self, run: str, round: str | None, parts: str) -> dict[str, Any]:
        """What the label rules read besides the request: run.json (the targets every label must
        have) and the answer key (lookup), the chunks' labels and failures (compute, ``parts`` the
        chunk's path without its suffix), or the graphs and, once a person has filled it in, the
        labels file (external)."""
        inputs: dict[str, Any] = {"run_json": f"{self.run_dir(run)}/run.json"}
        kind = self.oracle_kind(run)
        if kind == "lookup":
            inputs["answer_key"] = f"{self.data_dir(run)}/answer_key.parquet"
        elif kind == "compute":
            chunks = self.chunks(run)
            inputs["parts"] = [f"{parts.format(chunk=c)}.parquet" for c in chunks]
            inputs["part_failures"] = [f"{parts.format(chunk=c)}.failures.parquet" for c in chunks]
        else:
            inputs.update(self.dataset_graphs(run))
            labels = self.labels_file(run, round)
            if labels is not None:
                inputs["labels"] = labels
        return inputs

    def _oracle_args(self, run: str, round: str | None, input: Input) -> list[str]:
        """The label rules' oracle options: its name, run.json, its ranges, and what it reads."""
        oracle = self.oracle(run)
        args = ["--oracle", oracle["name"], "--run-json", input["run_json"]]
        if oracle["ranges"]:
            args += ["--ranges", json.dumps(oracle["ranges"], sort_keys=True)]
        kind = self.oracle_kind(run)
        if kind == "lookup":
            args += ["--answer-key", input["answer_key"]]
        elif kind == "compute":
            args += ["--parts", *input["parts"], "--part-failures", *input["part_failures"]]
        else:
            files = self.external_files(run, round)
            args += ["--data", self.data_dir(run), "--labels-file", files["labels"]]
            args += ["--request-xyz", files["xyz"], "--request-csv", files["csv"]]
        return args

    def label_input(self, run: str, round: str) -> dict[str, Any]:
        """The label rule's inputs: the request (:meth:`label_request`), the oracle's inputs, and
        from round 1 on the previous round's labelled set and failures (L_r = L_{r-1} + the picks
        of round r-1)."""
        inputs = {
            "selected": self.label_request(run, round),
            **self._oracle_inputs(run, round, f"{self.round_dir(run, round)}/label_parts/chunk-{{chunk}}"),
        }
        if int(round) > 0:
            previous = self.round_dir(run, _previous(round))
            inputs["previous"] = f"{previous}/labelled.parquet"
            inputs["previous_failures"] = f"{previous}/label_failures.parquet"
        return inputs

    def label_args(self, run: str, round: str, input: Input) -> list[str]:
        """`pipeline label` options besides the request and outputs, from the rule's ``input``."""
        args = self._oracle_args(run, round, input)
        if int(round) > 0:
            args += ["--previous", input["previous"], "--previous-failures", input["previous_failures"]]
        return [str(arg) for arg in args]

    def holdout_input(self, run: str) -> dict[str, Any]:
        """The label_holdout rule's inputs: the split (whose val/test molecules it labels) and the
        oracle's inputs."""
        return {
            "split": f"{self.run_dir(run)}/split.parquet",
            **self._oracle_inputs(run, None, f"{self.run_dir(run)}/holdout_parts/chunk-{{chunk}}"),
        }

    def holdout_args(self, run: str, input: Input) -> list[str]:
        """`pipeline label-holdout` oracle options, from the rule's ``input``."""
        return [str(arg) for arg in self._oracle_args(run, None, input)]

    # ------------------------------------------------------------------------ helping properties

    def helpers(self, run: str) -> dict[str, Any] | None:
        """The run's helping properties (``source``, ``properties``), or None without any."""
        helpers = self.resolved.runs[run]["helpers"]
        return helpers if helpers.get("properties") else None

    def helper_chunk_files(self, dataset: str, source: str) -> dict[str, list[str]]:
        """The helper chunks of a dataset: ``labels`` and ``failures`` of each of its
        ``helper_chunks`` jobs (results/data/{dataset}/helpers/{source}/chunk-{chunk}.parquet)."""
        folder = f"{DATA_DIR.format(dataset=dataset)}/helpers/{source}"
        chunks = range(self.resolved.datasets[dataset]["helper_chunks"])
        return {
            "parts": [f"{folder}/chunk-{c:03d}.parquet" for c in chunks],
            "part_failures": [f"{folder}/chunk-{c:03d}.failures.parquet" for c in chunks],
        }

    def helper_chunk_args(self, dataset: str, source: str, chunk: str) -> list[str]:
        """`pipeline label-chunk` options of one helper chunk: the dataset, and the oracle's default
        single point on one thread over chunk ``chunk`` of every molecule of it (no --request)."""
        settings = ORACLES[source].job_settings({}, 1)
        args = ["--data", DATA_DIR.format(dataset=dataset), "--oracle", source, "--chunk", int(chunk)]
        args += ["--chunks", self.resolved.datasets[dataset]["helper_chunks"]]
        args += ["--settings", json.dumps(settings, sort_keys=True)]
        return [str(arg) for arg in args]

    def helper_input(self, run: str) -> dict[str, Any]:
        """What the helpers rule reads: run.json, the split (its pool) and the answer key (source
        dataset) or the dataset's helper chunks (source xtb)."""
        helpers = self.helpers(run)
        if helpers is None:
            raise ValueError(f"run {run!r} has no helping properties")
        inputs: dict[str, Any] = {
            "run_json": f"{self.run_dir(run)}/run.json",
            "split": f"{self.run_dir(run)}/split.parquet",
        }
        if helpers["source"] == "dataset":
            inputs["answer_key"] = f"{self.data_dir(run)}/answer_key.parquet"
        else:
            inputs.update(self.helper_chunk_files(self.resolved.runs[run]["dataset"], helpers["source"]))
        return inputs

    @staticmethod
    def helper_args(input: Input) -> list[str]:
        """`pipeline helpers` --answer-key or --parts/--part-failures, from the rule's ``input``."""
        if "answer_key" in input.keys():
            return ["--answer-key", str(input["answer_key"])]
        return ["--parts", *map(str, input["parts"]), "--part-failures", *map(str, input["part_failures"])]

    # ---------------------------------------------------------------------------- round stages

    def teacher_input(self, run: str, round: str) -> dict[str, Any]:
        """The graphs, run.json, split and L_r, and from round 1 on the previous teacher (when
        train.warm_start) and its student's pseudo-labels (when pseudo_labels)."""
        settings = self.resolved.runs[run]
        inputs = {
            **self.dataset_graphs(run),
            "run_json": f"{self.run_dir(run)}/run.json",
            "split": f"{self.run_dir(run)}/split.parquet",
            "labelled": f"{self.round_dir(run, round)}/labelled.parquet",
        }
        if int(round) > 0:
            previous = self.round_dir(run, _previous(round))
            if settings["train"]["warm_start"]:
                inputs["previous"] = f"{previous}/teacher.pt"
            if settings["pseudo_labels"]:
                inputs["pseudo"] = f"{previous}/pseudo_labels.parquet"
        if self.helpers(run) is not None:
            inputs["helpers"] = f"{self.run_dir(run)}/helpers.parquet"
        return inputs

    @staticmethod
    def teacher_args(input: Input) -> list[str]:
        """`pipeline teacher` --previous, --pseudo and --helpers, where the rule's ``input`` has them."""
        args = []
        for name in ("previous", "pseudo", "helpers"):
            if name in input.keys():
                args += [f"--{name}", input[name]]
        return [str(arg) for arg in args]

    def select_input(self, run: str, round: str) -> dict[str, Any]:
        """Embeddings, L_r and the molecules the oracle failed on (they leave the pool: a QC
        failure, a reason in a labels file, no value in the answer key); strategies that need more
        than embeddings (registry ``StrategyInfo.needs``) also read the graphs, the split and a
        checkpoint: the student (mc_dropout, and a feature strategy with ``selection_features:
        student_gradients``), or the teacher and student.json (qbc)."""
        round_dir = self.round_dir(run, round)
        inputs = {
            "run_json": f"{self.run_dir(run)}/run.json",
            "embeddings": f"{round_dir}/embeddings.parquet",
            "labelled": f"{round_dir}/labelled.parquet",
            "failures": f"{round_dir}/label_failures.parquet",
        }
        settings = self.resolved.runs[run]
        strategy = STRATEGIES[settings["strategy"]]
        needs = "student" if strategy.on_student_gradients(settings["selection_features"]) else strategy.needs
        if needs != "embeddings":
            inputs.update(self.dataset_graphs(run), split=f"{self.run_dir(run)}/split.parquet")
            inputs["checkpoint"] = (
                f"{round_dir}/student.pt" if needs == "student" else f"{round_dir}/teacher.pt"
            )
        if needs == "committee":
            inputs["student_summary"] = f"{round_dir}/student.json"
        return inputs

    def select_args(self, run: str, input: Input) -> list[str]:
        """`pipeline select` --failures, and for uncertainty strategies --data, --split-path,
        --checkpoint (and --student-summary for qbc), from the rule's ``input``."""
        args = ["--failures", input["failures"]] if "failures" in input.keys() else []
        if "checkpoint" in input.keys():
            args += ["--data", self.data_dir(run), "--split-path", input["split"]]
            args += ["--checkpoint", input["checkpoint"]]
            if "student_summary" in input.keys():
                args += ["--student-summary", input["student_summary"]]
        return [str(arg) for arg in args]

    def round_0_source(self, run: str) -> str | None:
        """The run whose round 0 this run copies (a benchmark's ``share_round_0``), or None."""
        return self.resolved.round_0_from.get(run)

    def sharing_runs(self) -> str:
        """A regex of the runs that copy their round 0 (the share_round_0 rule's run wildcard)."""
        return "|".join(map(re.escape, self.resolved.round_0_from)) or "(?!)"

    def share_input(self, run: str) -> dict[str, Any]:
        """What share_round_0 reads: the source run's round-0 artefacts (:data:`ROUND_0_COPIED`),
        and both runs' run.json, split and initial picks, which it compares."""
        source = self.round_0_source(run)
        if source is None:
            raise ValueError(f"run {run!r} does not share another run's round 0")
        mine, theirs = self.run_dir(run), self.run_dir(source)
        return {
            "copied": [f"{self.round_dir(source, '00')}/{name}" for name in ROUND_0_COPIED],
            "run_json": f"{mine}/run.json",
            "source_run_json": f"{theirs}/run.json",
            "split": f"{mine}/split.parquet",
            "source_split": f"{theirs}/split.parquet",
            "initial": f"{mine}/initial.parquet",
            "source_initial": f"{theirs}/initial.parquet",
        }

    def share_args(self, run: str) -> list[str]:
        """`pipeline share-round-0` --source-round and --out-round: the two runs' round_00 folders."""
        return [
            "--source-round",
            self.round_dir(self.round_0_source(run), "00"),
            "--out-round",
            self.round_dir(run, "00"),
        ]

    def select_gpus(self, run: str) -> int:
        """GPUs a select job holds: one where the strategy runs the network or k-center, none for
        random."""
        return int(STRATEGIES[self.resolved.runs[run]["strategy"]].gpu)

    # ---------------------------------------------------------------------------------- reports

    def students(self, run: str) -> list[str]:
        """Every round's student.json of a run: the points of its learning curve."""
        return [f"{self.round_dir(run, r)}/student.json" for r in self.rounds(run)]

    def all_students(self) -> list[str]:
        """Every round's student.json of every run."""
        return [path for run in self.resolved.runs for path in self.students(run)]

    def learning_curve_args(self, run: str | None = None) -> list[str]:
        """`--student RUN=FILE` for each round of the run (None: of every run) the curve shows."""
        runs = [run] if run is not None else list(self.resolved.runs)
        return [
            arg for name in runs for path in self.students(name) for arg in ("--student", f"{name}={path}")
        ]

    def round_table_input(self, run: str) -> dict[str, list[str]]:
        """Every round's teacher.json and student.json of a run."""
        rounds = self.rounds(run)
        return {
            "teachers": [f"{self.round_dir(run, r)}/teacher.json" for r in rounds],
            "students": [f"{self.round_dir(run, r)}/student.json" for r in rounds],
        }

    def benchmark_input(self, benchmark: str) -> dict[str, list[str]]:
        """Each member run's learning curve and run.json (which says its method and seed)."""
        runs = self.resolved.members_of(benchmark)
        return {
            "curves": [f"{self.run_dir(run)}/learning_curve.csv" for run in runs],
            "run_jsons": [f"{self.run_dir(run)}/run.json" for run in runs],
        }

    def benchmark_args(self, benchmark: str, input: Input) -> list[str]:
        """`pipeline benchmark-table` options: the curves and run settings (from the rule's
        ``input``), the derived methods, the baseline and the budget."""
        settings = self.resolved.benchmarks[benchmark]
        args = [arg for path in input["curves"] for arg in ("--curve", path)]
        args += [arg for path in input["run_jsons"] for arg in ("--run-json", path)]
        for derived, source in settings["derived"].items():
            args += ["--derived", f"{derived}={source}"]
        args += ["--baseline", settings["baseline"]]
        if settings["budget"] is not None:
            args += ["--budget", str(settings["budget"])]
        return [str(arg) for arg in args]


def _previous(round: str) -> str:
    """The round before ``round``, in 2 digits."""
    return f"{int(round) - 1:02d}"
