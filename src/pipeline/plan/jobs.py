"""What the workflow plans, as plain functions of the resolved config: every job's input files, the
command-line options of its ``pipeline`` call and the resources of the oracle's jobs.

The rules call a :class:`Plan` of the workflow's ``RESOLVED`` config (``PLAN``) with their wildcards,
so what a job is given can be read, and tested, here without Snakemake: each method takes a run
name, a round (``"00"``, ``"01"``, ...) and the like, and returns paths (filled in from the grammar
of :mod:`pipeline.plan.paths`), dicts of named paths (a rule's ``unpack``-ed input) or the options as
a list of strings (the workflow shell-quotes them). The per-round stages' inputs and command lines
come from their declarations (:mod:`pipeline.plan.commands`): :meth:`Plan.stage_input` and
:meth:`Plan.stage_options`.

Oracles (the dataset's ``oracle``, by ``ORACLES[name].kind``): ``lookup`` reads the answer key in
the label rules; ``compute`` (pyscf, xtb) runs label_chunk jobs (``round_{round}/label_parts/``,
``holdout_parts/`` for val/test) that the label rules merge; ``external`` writes a request and reads
a labels file, all three paths passed to the job (:meth:`Plan.external_files`). Once the labels file
exists it is an input of its label rule (a newer mtime reruns the job) and its SHA-256 a param (a
changed content reruns it even when the mtime is older than the labels): editing it relabels that
round and redoes everything that follows from it.

Imported by the workflow on every Snakemake invocation: it imports nothing heavy (stdlib and the
package's light modules only; ``tests/test_layout.py`` checks it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config.digest import file_sha256, input_files, inputs_sha256
from pipeline.config.registry import INITIAL_STRATEGIES, ORACLES, STRATEGIES, STUDENTS
from pipeline.config.settings import DEFAULT_DUPLICATES, DEFAULT_MISSING_BONDS, Resolved, label_budget
from pipeline.plan.commands import STAGES
from pipeline.plan.paths import (
    BENCHMARK_OUTPUTS,
    DATA_DIR,
    PATHS,
    ROUND_0_COPIED,
    ROUND_DIR,
    ROUND_OUTPUTS,
    RUN_DIR,
)

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

    @staticmethod
    def dataset_dir(dataset: str) -> str:
        """results/data/{dataset}."""
        return DATA_DIR.format(dataset=dataset)

    def data_dir(self, run: str) -> str:
        """Folder of the dataset a run uses (the `--data` of every stage that reads molecules)."""
        return self.dataset_dir(self.resolved.runs[run]["dataset"])

    # ---------------------------------------------------------------------------------- targets

    def final_output(self) -> list[str]:
        """Targets of the workflow: every dataset's manifest, every run's per-round artefacts,
        learning curves, round table and embedding maps, the curve of all runs, the benchmarks."""
        runs = self.resolved.runs
        return (
            [PATHS.of("manifest", dataset=dataset) for dataset in self.resolved.datasets]
            + self.round_outputs()
            + [
                PATHS.of(name, run=run)
                for run in runs
                for name in ("learning_curve_csv", "learning_curve_png")
            ]
            + [PATHS.of("round_table", run=run) for run in runs]
            + [PATHS.learning_curve_all_csv, PATHS.learning_curve_all_png]
            + [PATHS.of("embedding_map", run=run, round=r) for run in runs for r in self.rounds(run)]
            + self.benchmark_outputs()
        )

    def round_outputs(self) -> list[str]:
        """Every per-round artefact (:data:`~pipeline.plan.paths.ROUND_OUTPUTS`) of every run."""
        return [
            PATHS.of(name, run=run, round=r)
            for run in self.resolved.runs
            for r in self.rounds(run)
            for name in ROUND_OUTPUTS
        ]

    def benchmark_outputs(self) -> list[str]:
        """results/benchmark/{benchmark}/...: the comparison tables and figure of each benchmark."""
        return [
            PATHS.of(name, benchmark=benchmark)
            for benchmark in self.resolved.benchmarks
            for name in BENCHMARK_OUTPUTS
        ]

    # -------------------------------------------------------------------------------- featurise

    def molecule_files(self, dataset: str) -> list[str]:
        """The dataset's input files and folders, each folder with the files in it (none for packaged
        QM9): adding, removing or (by a newer mtime) editing one featurises again."""
        return input_files(self.resolved.datasets[dataset]["inputs"], self.root)

    def featurise_args(self, dataset: str) -> list[str]:
        """`pipeline featurise` options that define the dataset's content (with its input files',
        their checksum)."""
        settings = self.resolved.datasets[dataset]
        args = ["--source", settings["source"], "--cutoff", settings["cutoff"], "--seed", settings["seed"]]
        args += ["--num-shards", settings["shards"], "--fragments", settings["fragments"]]
        if settings["limit"] is not None:
            args += ["--limit", settings["limit"]]
        args += _ranges_args(settings["oracle"])  # the dataset's own values are checked as labels are
        if settings["duplicates"] != DEFAULT_DUPLICATES:  # the default is left out: older jobs stand
            args += ["--duplicates", settings["duplicates"]]
        if settings["bonds"]["missing"] != DEFAULT_MISSING_BONDS:  # as duplicates
            args += ["--missing-bonds", settings["bonds"]["missing"]]
        if settings["inputs"]:
            # one SHA-256 of every file the dataset reads: a param of the rule, as the labels file's
            # (labels_checksum), so an edit inside an input folder featurises again even when the
            # file's mtime is older than the shards; the job refuses inputs changed since
            args += [
                "--input",
                *settings["inputs"],
                "--inputs-sha256",
                inputs_sha256(settings["inputs"], self.root),
            ]
        return [str(arg) for arg in args]

    def featurise_parts(self, dataset: str) -> dict[str, list[str]]:
        """Every shard's parts, which featurise_merge joins (the only rule that reads answer-key
        parts), and its graph shard, whose checksum the manifest records."""
        parts = {
            "graphs": "graph_shard",
            "summaries": "shard_summary",
            "answer_keys": "answer_key_part",
            "rejects": "rejects_part",
        }
        shards = self.shards(dataset)
        return {
            key: [PATHS.of(name, dataset=dataset, shard=shard) for shard in shards]
            for key, name in parts.items()
        }

    # ------------------------------------------------------------------------ split, run config

    def dataset_files(self, dataset: str) -> dict[str, Any]:
        """A dataset's graph shards and manifest (written once every shard is merged and checked)."""
        return {
            "graphs": [
                PATHS.of("graph_shard", dataset=dataset, shard=shard) for shard in self.shards(dataset)
            ],
            "manifest": PATHS.of("manifest", dataset=dataset),
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
            return PATHS.of("initial", run=run)
        return PATHS.of("selected", run=run, round=_previous(round))

    def external_files(self, run: str, round: str | None = None) -> dict[str, str]:
        """The external oracle's files of a label job: the labels file it reads ("labels") and the
        request ("xyz", "csv") it writes until that file exists. round_{round}/labels.csv,
        to_label.xyz, to_label.csv; for label_holdout (round None) holdout_labels.csv,
        holdout_to_label.xyz, holdout_to_label.csv."""
        prefix, at = ("", {"run": run, "round": round}) if round is not None else ("holdout_", {"run": run})
        return {
            "labels": PATHS.of(f"{prefix}labels_file", **at),
            "xyz": PATHS.of(f"{prefix}request_xyz", **at),
            "csv": PATHS.of(f"{prefix}request_csv", **at),
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

    def _oracle_inputs(self, run: str, round: str | None, parts: tuple[str, str]) -> dict[str, Any]:
        """What the label rules read besides the request: run.json (the targets every label must
        have) and the answer key (lookup), the chunks' labels and failures (compute, ``parts`` the
        chunk's path without its suffix), or the graphs and, once a person has filled it in, the
        labels file (external)."""
        inputs: dict[str, Any] = {"run_json": PATHS.of("run_json", run=run)}
        kind = self.oracle_kind(run)
        if kind == "lookup":
            inputs["answer_key"] = self.answer_key(run)
        elif kind == "compute":
            chunks, (labels, failures) = self.chunks(run), parts
            inputs["parts"] = [PATHS.of(labels, run=run, round=round, chunk=c) for c in chunks]
            inputs["part_failures"] = [PATHS.of(failures, run=run, round=round, chunk=c) for c in chunks]
        else:
            inputs.update(self.dataset_graphs(run))
            labels = self.labels_file(run, round)
            if labels is not None:
                inputs["labels"] = labels
        return inputs

    def _oracle_args(self, run: str, round: str | None, input: Input) -> list[str]:
        """The label rules' oracle options: its name, run.json, its ranges, and what it reads."""
        oracle = self.oracle(run)
        args = ["--oracle", oracle["name"], "--run-json", input["run_json"], *_ranges_args(oracle)]
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
            **self._oracle_inputs(run, round, ("label_chunk", "label_chunk_failures")),
        }
        if int(round) > 0:
            inputs["previous"] = PATHS.of("labelled", run=run, round=_previous(round))
            inputs["previous_failures"] = PATHS.of("label_failures", run=run, round=_previous(round))
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
            "split": PATHS.of("split", run=run),
            **self._oracle_inputs(run, None, ("holdout_chunk", "holdout_chunk_failures")),
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
        chunks = [f"{c:03d}" for c in range(self.resolved.datasets[dataset]["helper_chunks"])]
        where = {"dataset": dataset, "source": source}
        return {
            "parts": [PATHS.of("helper_chunk", **where, chunk=c) for c in chunks],
            "part_failures": [PATHS.of("helper_chunk_failures", **where, chunk=c) for c in chunks],
        }

    def helper_chunk_args(self, dataset: str, source: str, chunk: str) -> list[str]:
        """`pipeline label-chunk` options of one helper chunk: the dataset, and the oracle's default
        single point on one thread over chunk ``chunk`` of every molecule of it (no --request)."""
        settings = ORACLES[source].job_settings({}, 1)
        args = ["--data", self.dataset_dir(dataset), "--oracle", source, "--chunk", int(chunk)]
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
            "run_json": PATHS.of("run_json", run=run),
            "split": PATHS.of("split", run=run),
        }
        if helpers["source"] == "dataset":
            inputs["answer_key"] = self.answer_key(run)
        else:
            inputs.update(self.helper_chunk_files(self.resolved.runs[run]["dataset"], helpers["source"]))
        return inputs

    def delta(self, run: str) -> dict[str, Any] | None:
        """The run's delta learning (``source``, ``properties``), or None without any."""
        delta = self.resolved.runs[run]["delta"]
        return delta if delta.get("properties") else None

    def baseline_input(self, run: str) -> dict[str, Any]:
        """What the baseline rule reads: run.json, the split (its molecules) and the dataset's helper
        chunks of the delta's cheap method."""
        delta = self.delta(run)
        if delta is None:
            raise ValueError(f"run {run!r} learns no target relative to a cheap method (delta)")
        return {
            "run_json": PATHS.of("run_json", run=run),
            "split": PATHS.of("split", run=run),
            **self.helper_chunk_files(self.resolved.runs[run]["dataset"], delta["source"]),
        }

    def _with_baseline(self, run: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """``inputs`` plus the run's baseline.parquet where the run learns deltas."""
        if self.delta(run) is not None:
            inputs["baseline"] = PATHS.of("baseline", run=run)
        return inputs

    @staticmethod
    def helper_args(input: Input) -> list[str]:
        """`pipeline helpers` --answer-key or --parts/--part-failures, from the rule's ``input``."""
        if "answer_key" in input.keys():
            return ["--answer-key", str(input["answer_key"])]
        return ["--parts", *map(str, input["parts"]), "--part-failures", *map(str, input["part_failures"])]

    # ---------------------------------------------------------------------------- round stages

    def answer_key(self, run: str) -> str:
        """The answer key of the run's dataset (read by the label rules only)."""
        return PATHS.of("answer_key", dataset=self.resolved.runs[run]["dataset"])

    def stage_input(self, command: str, run: str, round: str | None = None) -> dict[str, Any]:
        """A per-round stage rule's inputs (:data:`~pipeline.plan.commands.STAGES`), each under the name
        of the stage's option it is passed as (``labelled_path``, ``checkpoint``, ...), with the
        dataset's graphs and manifest where the stage reads molecules."""
        return getattr(self, f"_{command.replace('-', '_')}_input")(run, round)

    def stage_options(
        self, command: str, run: str, round: str | None, input: Input, output: Input
    ) -> list[str]:
        """A per-round stage's command line, from its declaration: each option in declared order with
        the rule's input or output of its name, or the value its ``value`` method gives; optional ones
        the rule does not have are left out."""
        args: list[str] = []
        for option in STAGES[command].options:
            if option.value is not None:
                value = getattr(self, option.value)(run, round, input)
            elif option.dest in output.keys():
                value = output[option.dest]
            elif option.dest in input.keys():
                value = input[option.dest]
            else:
                value = None
            if value is None and option.required:
                raise ValueError(f"the {command} rule gives no {option.dest} for {option.flag}")
            if value is not None:
                args += [option.flag, value]
        return [str(arg) for arg in args]

    def stage_data(self, run: str, round: str | None, input: Input) -> str | None:
        """``--data``: the dataset folder, for a stage whose rule reads its graphs."""
        return self.data_dir(run) if "manifest" in input.keys() else None

    @staticmethod
    def stage_round(run: str, round: str | None, input: Input) -> str | None:
        """``--round``: the rule's round."""
        return round

    def _run_files(self, run: str) -> dict[str, Any]:
        """What every stage that reads molecules reads: the graphs, run.json and the split."""
        return {
            **self.dataset_graphs(run),
            "run_json": PATHS.of("run_json", run=run),
            "split_path": PATHS.of("split", run=run),
        }

    def _initial_input(self, run: str, round: str | None) -> dict[str, Any]:
        return self._run_files(run)

    def _teacher_input(self, run: str, round: str) -> dict[str, Any]:
        """The graphs, run.json, split and L_r, and from round 1 on the previous teacher (when
        train.warm_start) and its student's pseudo-labels (when pseudo_labels)."""
        settings = self.resolved.runs[run]
        inputs = {**self._run_files(run), "labelled_path": PATHS.of("labelled", run=run, round=round)}
        if int(round) > 0:
            previous = {"run": run, "round": _previous(round)}
            if settings["train"]["warm_start"]:
                inputs["previous"] = PATHS.of("teacher", **previous)
            if settings["pseudo_labels"]:
                inputs["pseudo"] = PATHS.of("pseudo_labels", **previous)
        if self.helpers(run) is not None:
            inputs["helpers"] = PATHS.of("helpers", run=run)
        self._with_baseline(run, inputs)
        return inputs

    def _embed_input(self, run: str, round: str) -> dict[str, Any]:
        return {**self._run_files(run), "checkpoint": PATHS.of("teacher", run=run, round=round)}

    def _student_input(self, run: str, round: str) -> dict[str, Any]:
        """The graphs, run.json, split, L_r, the val/test labels and the round's teacher where the
        student reads it (:meth:`student_reads_teacher`)."""
        inputs = {
            **self._run_files(run),
            "labelled_path": PATHS.of("labelled", run=run, round=round),
            "holdout_path": PATHS.of("holdout_labels", run=run),
        }
        if self.student_reads_teacher(run):
            inputs["teacher_path"] = PATHS.of("teacher", run=run, round=round)
        return self._with_baseline(run, inputs)

    def student_reads_teacher(self, run: str) -> bool:
        """Whether the run's student reads the round's teacher: the network student is fine-tuned
        from it, a kernel student on ``krr.features: teacher`` compares its embeddings (and so do
        its pseudo-labels); a kernel student on FCHL19 reads none."""
        settings = self.resolved.runs[run]
        return settings["student_kind"] == "network" or settings["krr"]["features"] == "teacher"

    def _pseudo_label_input(self, run: str, round: str) -> dict[str, Any]:
        inputs = {
            **self._run_files(run),
            "labelled_path": PATHS.of("labelled", run=run, round=round),
            "checkpoint": PATHS.of("student", run=run, round=round),
        }
        if self.resolved.runs[run]["student_kind"] == "krr" and self.student_reads_teacher(run):
            inputs["teacher_path"] = PATHS.of("teacher", run=run, round=round)
        return self._with_baseline(run, inputs)

    def _select_input(self, run: str, round: str) -> dict[str, Any]:
        """Embeddings, L_r and the molecules the oracle failed on (they leave the pool: a QC
        failure, a reason in a labels file, no value in the answer key); strategies that need more
        than embeddings (registry ``StrategyInfo.needs``) also read the graphs, the split and a
        checkpoint: the student (mc_dropout, krr_variance, and a feature strategy with
        ``selection_features: student_gradients``), or the teacher and student.json (qbc); krr_variance
        on ``krr.features: teacher`` also the teacher."""
        at = {"run": run, "round": round}
        inputs = {
            "run_json": PATHS.of("run_json", run=run),
            "embeddings": PATHS.of("embeddings", **at),
            "labelled_path": PATHS.of("labelled", **at),
            "failures": PATHS.of("label_failures", **at),
        }
        settings = self.resolved.runs[run]
        strategy = STRATEGIES[settings["strategy"]]
        needs = "student" if strategy.on_student_gradients(settings["selection_features"]) else strategy.needs
        if needs != "embeddings":
            inputs.update(self._run_files(run))
            inputs["checkpoint"] = PATHS.of("teacher" if needs == "committee" else "student", **at)
        if needs == "kernel" and self.student_reads_teacher(run):  # a kernel on the teacher's embeddings
            inputs["teacher_path"] = PATHS.of("teacher", **at)
        if needs == "committee":  # the committee learns the labels as the teacher did: deltas too
            inputs["student_summary"] = PATHS.of("student_json", **at)
            self._with_baseline(run, inputs)
        return inputs

    def round_0_source(self, run: str) -> str | None:
        """The run whose round 0 this run copies (a benchmark's ``share_round_0``), or None."""
        return self.resolved.round_0_from.get(run)

    def sharing_runs(self) -> str:
        """A regex of the runs that copy their round 0 (the share_round_0 rule's run wildcard)."""
        return "|".join(map(re.escape, self.resolved.round_0_from)) or "(?!)"

    def _share_round_0_input(self, run: str, round: str | None = None) -> dict[str, Any]:
        """What share_round_0 reads: the source run's round-0 artefacts (:data:`ROUND_0_COPIED`),
        and both runs' run.json, split and initial picks, which it compares."""
        source = self.round_0_source(run)
        if source is None:
            raise ValueError(f"run {run!r} does not share another run's round 0")
        return {
            "copied": [f"{self.round_dir(source, '00')}/{name}" for name in ROUND_0_COPIED],
            "run_json": PATHS.of("run_json", run=run),
            "source_run_json": PATHS.of("run_json", run=source),
            "split_path": PATHS.of("split", run=run),
            "source_split": PATHS.of("split", run=source),
            "initial": PATHS.of("initial", run=run),
            "source_initial": PATHS.of("initial", run=source),
        }

    def source_round_0(self, run: str, round: str | None = None, input: Input | None = None) -> str:
        """``--source-round`` of share-round-0: the round_00 folder of the run it copies."""
        return self.round_dir(self.round_0_source(run), "00")

    def own_round_0(self, run: str, round: str | None = None, input: Input | None = None) -> str:
        """``--out-round`` of share-round-0: the run's own round_00 folder."""
        return self.round_dir(run, "00")

    def student_gpus(self, run: str) -> int:
        """GPUs a student or pseudo-label job holds: one for the network, none for the kernel student."""
        return int(STUDENTS[self.resolved.runs[run]["student_kind"]].gpu)

    def select_gpus(self, run: str) -> int:
        """GPUs a select job holds: one where the strategy runs the network or k-center, none for
        random."""
        return int(STRATEGIES[self.resolved.runs[run]["strategy"]].gpu)

    # ---------------------------------------------------------------------------------- reports

    def students(self, run: str) -> list[str]:
        """Every round's student.json of a run: the points of its learning curve."""
        return [PATHS.of("student_json", run=run, round=r) for r in self.rounds(run)]

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
            "teachers": [PATHS.of("teacher_json", run=run, round=r) for r in rounds],
            "students": [PATHS.of("student_json", run=run, round=r) for r in rounds],
        }

    def benchmark_input(self, benchmark: str) -> dict[str, list[str]]:
        """Each member run's learning curve and run.json (which says its method and seed)."""
        runs = self.resolved.members_of(benchmark)
        return {
            "curves": [PATHS.of("learning_curve_csv", run=run) for run in runs],
            "run_jsons": [PATHS.of("run_json", run=run) for run in runs],
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


def _ranges_args(oracle: Mapping[str, Any]) -> list[str]:
    """``--ranges`` of a dataset's ``oracle.ranges`` (none where it sets none): the featurise and
    label commands check values against the same ranges."""
    return ["--ranges", json.dumps(oracle["ranges"], sort_keys=True)] if oracle["ranges"] else []
