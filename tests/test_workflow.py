"""The Snakemake workflow as a user drives it: lint, dry-run plans, config errors, profiles, the
no-label-leak rule on the DAG, and a real end-to-end run of a tiny QM9 config.

Snakemake runs as a subprocess from the repository root (so the workflow profile
workflow/profiles/default applies, as it does for a user) with ``--directory`` under ``tmp_path``,
so nothing is written to the repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from jsonschema import Draft202012Validator
from tiny import TINY_RUN

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "config.yaml"
PAPER = REPO / "config" / "qm9-paper.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

#: Rules allowed to have an answer key among their inputs: the merge that writes it, and the oracle.
# (and helpers, for helpers.source dataset: other properties than the run's targets, which the
# config check and the job both refuse)
ANSWER_KEY_READERS = {"featurise_merge", "label", "label_holdout", "helpers"}  # writes it / the oracle


def snakemake(*args: str | Path, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run the venv's Snakemake from the repository root; stdout and stderr together in ``.stdout``."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


class Plan(list):
    """The jobs of a dry run, each {"rule", "input", "output", "resources", "shell"}; ``.stdout``."""

    stdout = ""


def plan(workdir: Path, *configfiles: Path, extra: tuple = (), env: dict | None = None) -> Plan:
    """Dry-run the workflow in ``workdir`` with these config files and parse the planned jobs."""
    r = snakemake("-n", "-p", "--directory", workdir, "--configfile", *configfiles, *extra, env=env)
    assert r.returncode == 0, r.stdout
    jobs = Plan()
    jobs.stdout = r.stdout
    for block in re.split(r"\n(?=\[[^\n]*\]\n(?:local)?rule )", r.stdout):
        m = re.search(r"^(?:local)?rule (\w+):\n((?:    .*\n?)*)", block, flags=re.M)
        if not m:
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", m.group(2), flags=re.M))
        shell = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        jobs.append(
            {
                "rule": m.group(1),
                "input": fields["input"].split(", ") if "input" in fields else [],
                "output": fields["output"].split(", ") if "output" in fields else [],
                "resources": fields.get("resources", ""),
                "shell": shell.group(1) if shell else "",
            }
        )
    return jobs


def count(jobs: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["rule"]] = counts.get(job["rule"], 0) + 1
    return counts


def leaks(jobs: list[dict]) -> list[tuple[str, str]]:
    """(rule, file) for every answer-key file among the inputs of a rule that must not see labels."""
    return [
        (job["rule"], path)
        for job in jobs
        for path in job["input"]
        if "answer_key" in Path(path).name and job["rule"] not in ANSWER_KEY_READERS
    ]


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = json.loads(json.dumps(data))  # no shared sub-dicts, which YAML would write as aliases
    path.write_text(yaml.safe_dump(plain, sort_keys=False))
    return path


def test_lint_is_clean(tmp_path):
    r = snakemake("--lint", "--directory", tmp_path, "--configfile", CONFIG)
    assert r.returncode == 0, r.stdout
    assert "Congratulations, your workflow is in a good condition!" in r.stdout, r.stdout


ROUND_RULES = ("label", "teacher", "embed", "student", "pseudo_label", "select")


def al_jobs(runs: int, rounds: int) -> dict[str, int]:
    """Jobs of `runs` active-learning runs of `rounds` rounds each."""
    per_run = {
        "split": 1,
        "run_config": 1,
        "initial": 1,
        "label_holdout": 1,
        "learning_curve": 1,
        "round_table": 1,
    }
    per_round = {r: runs * rounds for r in (*ROUND_RULES, "embedding_map")}
    return {**{k: v * runs for k, v in per_run.items()}, **per_round, "learning_curve_all": 1}


def test_demo_config_plan(tmp_path):
    jobs = plan(tmp_path, CONFIG)
    assert count(jobs) == {"featurise_shard": 2, "featurise_merge": 1, **al_jobs(2, 3), "all": 1}
    shard_outputs = sorted(
        o for j in jobs if j["rule"] == "featurise_shard" for o in j["output"] if "graphs" in o
    )
    assert shard_outputs == [f"results/data/qm9/graphs/shard-{k:05d}.parquet" for k in range(2)]
    (split,) = [
        j for j in jobs if j["rule"] == "split" and j["output"] == ["results/runs/asgn/split.parquet"]
    ]
    assert sorted(split["input"]) == sorted([*shard_outputs, "results/data/qm9/manifest.json"])
    # The merge is the one job that reads the answer-key parts: proves the leak check sees them.
    (merge,) = [j for j in jobs if j["rule"] == "featurise_merge"]
    assert sum("answer_key" in p for p in merge["input"]) == 2
    assert all(any("answer_key" in p for p in j["input"]) for j in jobs if j["rule"] == "label")
    assert leaks(jobs) == []
    # picks the answer key has no value for are failures: the labels check the run's targets and
    # selection leaves the failures out of the pool
    assert all("--run-json results/runs/" in j["shell"] for j in jobs if j["rule"].startswith("label"))
    assert all("--failures" in j["shell"] for j in jobs if j["rule"] == "select")
    # Held-out labels reach the student (early stopping, reported error) and nothing that trains the
    # teacher, embeds, pseudo-labels or selects.
    holdout = {j["rule"] for j in jobs for p in j["input"] if "holdout_labels" in p}
    assert holdout == {"student"}
    # reports read the summaries of exactly the configured rounds, given by name: a round_03 left by
    # an older config with more rounds can never enter the curve
    (curve,) = [j for j in jobs if j["rule"] == "learning_curve" and "runs/asgn/" in j["output"][0]]
    given = re.findall(r"--student (\S+)", curve["shell"])
    assert given == [f"asgn=results/runs/asgn/round_{r:02d}/student.json" for r in range(3)]
    (table,) = [j for j in jobs if j["rule"] == "round_table" and "runs/asgn/" in j["output"][0]]
    assert "round_00/teacher.json" in table["shell"] and "--run-dir" not in table["shell"]


def test_paper_config_plan_on_top_of_the_default_config(tmp_path):
    # As a user runs it from the repository: config/config.yaml first, then the paper config over it.
    (tmp_path / "config").mkdir()
    shutil.copy(CONFIG, tmp_path / "config" / "config.yaml")
    jobs = plan(tmp_path, PAPER)
    assert "config/config.yaml is extended by additional config" in jobs.stdout
    assert count(jobs) == {"featurise_shard": 8, "featurise_merge": 1, **al_jobs(2, 5), "all": 1}
    commands = [j["shell"] for j in jobs if j["rule"] != "all"]
    assert all(c.startswith("pipeline ") for c in commands)
    assert not any("--limit" in c for c in commands), "the demo's limit leaked into the paper run"
    split = [c for c in commands if " split --data " in c][0]
    assert "--val 10000 --test 10000" in split
    settings = [c for c in commands if c.startswith("pipeline run-config")]
    assert all('"n_clusters": 100' in c and '"student_max_epochs": 500' in c for c in settings), (
        "demo model leaked"
    )
    asgn, random = (next(c for c in settings if f'"run": "{run}"' in c) for run in ("asgn", "random"))
    assert '"teacher_epochs": 20' in asgn and '"warm_start": true' in asgn
    assert '"teacher_epochs": 0' in random and '"warm_start": false' in random  # the paper's Random
    assert leaks(jobs) == []


def test_several_datasets_and_runs_share_featurised_data(tmp_path):
    mols = tmp_path / "mols"
    mols.mkdir()
    for name in ("a.xyz", "b.xyz"):
        (mols / name).write_text("1\nmol_id=h\nH 0 0 0\n")
    (tmp_path / "library.csv").write_text("id,smiles\nm1,CCO\n")
    config = write_yaml(
        tmp_path / "many.yaml",
        {
            "datasets": {
                "qm9": {"source": "qm9", "limit": 500, "shards": 3},
                "mine": {"source": "files", "inputs": ["mols/a.xyz", "mols/b.xyz"]},
                "screen": {"source": "smiles", "inputs": ["library.csv"], "shards": 2},
            },
            "runs": {
                "asgn": {"dataset": "qm9", "split": {"val": 50, "test": 50}},
                "random": {"dataset": "qm9", "split": {"val": 50, "test": 50}},
                "mine": {
                    "dataset": "mine",
                    "split": {"val": 1, "test": 1, "pool": 10, "seed": 3},
                    "initial": {"size": 2},
                    "batch": 2,
                },
            },
        },
    )
    jobs = plan(tmp_path, config)
    assert count(jobs) == {"featurise_shard": 6, "featurise_merge": 3, **al_jobs(3, 3), "all": 1}
    # The input files of a dataset are inputs of its shard jobs (editing one featurises again).
    mine = [j for j in jobs if j["rule"] == "featurise_shard" and "results/data/mine/" in j["output"][0]]
    assert [j["input"] for j in mine] == [["mols/a.xyz", "mols/b.xyz"]]
    # Runs on the same dataset read the same featurised graphs.
    splits = {j["output"][0]: set(j["input"]) for j in jobs if j["rule"] == "split"}
    assert splits["results/runs/asgn/split.parquet"] == splits["results/runs/random/split.parquet"]
    assert leaks(jobs) == []


@pytest.mark.parametrize(
    ("where", "key", "typo"),
    [("datasets.qm9", "limit", "limt"), ("runs.asgn.split", "test", "tset"), ("top level", "runs", "run")],
)
def test_typo_in_config_fails_before_any_job_naming_the_key(tmp_path, where, key, typo):
    config = yaml.safe_load(CONFIG.read_text())
    node = config
    for name in where.split(".") if where != "top level" else []:
        node = node[name]
    node[typo] = node.pop(key)
    r = snakemake(
        "--cores", "1", "--directory", tmp_path, "--configfile", write_yaml(tmp_path / "c.yaml", config)
    )
    assert r.returncode != 0
    assert f"invalid config at {where}" in r.stdout and f"'{typo}' was unexpected" in r.stdout, r.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["runs"]["asgn"].update(strategy="mc_dropout"),
            "at runs.asgn.model.dropout: strategy mc_dropout samples the student's dropout, but "
            "dropout is 0.0",
        ),
        (
            lambda c: c["runs"]["asgn"]["split"].update(pool=250),
            "at runs.asgn.split.pool: 250 molecules, fewer than the 300 to label",
        ),
        (
            lambda c: c["datasets"]["qm9"].update(limit=800),
            "at runs.asgn: needs 900 molecules (val 300 + test 300 + labels 300), but "
            "datasets.qm9.limit is 800",
        ),
        (
            lambda c: c["datasets"]["qm9"]["oracle"].update(ranges={"homo": [5, -20]}),
            "at datasets.qm9.oracle.ranges.homo: expected [low, high] with low < high, got [5, -20]",
        ),
        (
            lambda c: c["datasets"]["qm9"]["oracle"].update(ranges={"homoo": [-20, 5]}),
            "at datasets.qm9.oracle.ranges: unknown target 'homoo' (known: mu, alpha, homo, lumo, gap",
        ),
        (
            lambda c: c["runs"]["asgn"]["train"].update(lr=float("inf")),
            "at runs.asgn.train.lr: inf is not a finite number",
        ),
        (
            lambda c: c["datasets"]["qm9"].update(cutoff=float("nan")),
            "at datasets.qm9.cutoff: nan is not a finite number",
        ),
        (
            lambda c: c["datasets"]["qm9"]["oracle"].update(ranges={"homo": [float("-inf"), 5]}),
            "at datasets.qm9.oracle.ranges.homo.0: -inf is not a finite number",
        ),
        (
            lambda c: c["datasets"]["qm9"].update(cutoff=0.05),
            "at datasets.qm9.cutoff: 0.05 Å; the featuriser needs a cutoff above 0.1 Å",
        ),
        (
            lambda c: c["runs"]["asgn"].update(helpers={"source": "dataset", "properties": ["lumo", "homo"]}),
            "at runs.asgn.helpers.properties: ['homo'] are targets of the run",
        ),
        (
            lambda c: c["runs"]["asgn"].update(helpers={"source": "xtb", "properties": ["u0"]}),
            "at runs.asgn.helpers.properties: the xtb oracle does not compute ['u0']",
        ),
        (
            lambda c: c["runs"]["asgn"].update(student_kind="krr", selection_features="student_gradients"),
            "at runs.asgn.student_kind: selection_features reads the network student's dropout or "
            "gradients, which the krr student does not have",
        ),
        (
            lambda c: c["runs"]["asgn"].update(student_kind="krr", student=False),
            "at runs.asgn.student: false evaluates the teacher itself, so student_kind krr would never",
        ),
    ],
)
def test_settings_that_cannot_work_together_fail_before_any_job(tmp_path, edit, message):
    config = yaml.safe_load(CONFIG.read_text())
    edit(config)
    r = snakemake("-n", "--directory", tmp_path, "--configfile", write_yaml(tmp_path / "c.yaml", config))
    assert r.returncode != 0 and f"invalid config {message}" in r.stdout, r.stdout


def test_a_key_given_twice_fails_before_any_job_naming_key_and_lines(tmp_path):
    # `train:` twice in one run: YAML keeps the second silently, so the run would train without the
    # epochs the user set in the first.
    text = CONFIG.read_text()
    run = re.search(r"^(  asgn:\n(?:    .*\n)+)", text, flags=re.M)
    assert run and "    train:" in run.group(1)
    twice = text.replace(run.group(1), run.group(1) + "    train: {patience: 3}\n", 1)
    config = tmp_path / "c.yaml"
    config.write_text(twice)
    line = twice[: twice.index("    train: {patience: 3}")].count("\n") + 1
    r = snakemake("--cores", "1", "--directory", tmp_path, "--configfile", config)
    assert r.returncode != 0
    assert f"invalid config {config}: a key is given twice" in r.stdout, r.stdout
    assert f"line {line}: key 'train' in runs.asgn (first at line" in r.stdout, r.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


def test_shipped_configs_state_no_key_twice():
    from pipeline.config.settings import duplicate_keys

    for path in sorted((REPO / "config").glob("*.yaml")):
        assert duplicate_keys(path.read_text()) == [], path
    # merge keys are overrides, not duplicates; an equal key under a merge still is one
    assert duplicate_keys("a: &a {x: 1}\nb: {<<: *a, x: 2}\n") == []
    assert duplicate_keys("b:\n  <<: {x: 1}\n  y: 2\n  y: 3\n") == ["line 4: key 'y' in b (first at line 3)"]


def schema_errors(config: dict) -> list[str]:
    """Where (dotted path) each error of ``config`` against the workflow's schema is."""
    schema = yaml.safe_load(SCHEMA.read_text())
    return [".".join(map(str, e.absolute_path)) for e in Draft202012Validator(schema).iter_errors(config)]


def test_schema_documents_every_key_and_accepts_the_shipped_configs():
    def undocumented(node, path="schema"):
        if isinstance(node, dict):
            # "properties" maps config keys (one may be called "properties" too) to their schemas
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    yield f"{path}.{name}"
                yield from undocumented(sub, f"{path}.{name}")
            for key, sub in node.items():
                if key not in ("if", "then", "properties"):  # conditions on documented keys, not keys
                    yield from undocumented(sub, f"{path}.{key}")

    schema = yaml.safe_load(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    assert list(undocumented(schema)) == []
    for path in sorted((REPO / "config").glob("*.yaml")):
        assert schema_errors(yaml.safe_load(path.read_text())) == [], path


@pytest.mark.parametrize(
    ("dataset", "where"),
    [
        ({"source": "pdb"}, "datasets.qm9.source"),
        ({"source": "smiles"}, "datasets.qm9"),  # smiles and files need inputs
        ({"source": "files", "inputs": []}, "datasets.qm9.inputs"),
        ({"source": "qm9", "shards": 0}, "datasets.qm9.shards"),
        ({"source": "qm9", "limit": 2.5}, "datasets.qm9.limit"),
        ({"source": "qm9", "cutoff": 0}, "datasets.qm9.cutoff"),
    ],
)
def test_schema_rejects_bad_values(dataset, where):
    config = {
        "datasets": {"qm9": dataset},
        "runs": {"asgn": {"dataset": "qm9", "split": {"val": 1, "test": 1}}},
    }
    assert schema_errors(config) == [where]


def test_run_on_an_undeclared_dataset_is_named(tmp_path):
    config = {
        "datasets": {"qm9": {"source": "qm9"}},
        "runs": {"asgn": {"dataset": "qm8", "split": {"val": 1, "test": 1}}},
    }
    r = snakemake("-n", "--directory", tmp_path, "--configfile", write_yaml(tmp_path / "c.yaml", config))
    assert r.returncode != 0 and "runs.asgn.dataset: 'qm8' is not declared" in r.stdout, r.stdout


def test_slurm_profile_is_accepted(tmp_path):
    # The profile's keys must all be ones Snakemake 9 and the SLURM plugin accept, and it needs no
    # conda (the jobs run in the environment Snakemake runs in). tests/test_slurm.py submits to a
    # real cluster with it.
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not Path(p, "conda").exists())
    jobs = plan(
        tmp_path,
        CONFIG,
        extra=("--profile", REPO / "workflow/profiles/slurm"),
        env={**os.environ, "PATH": path},
    )
    assert count(jobs) == {"featurise_shard": 2, "featurise_merge": 1, **al_jobs(2, 3), "all": 1}
    shard = next(j for j in jobs if j["rule"] == "featurise_shard")
    assert "slurm_partition=<partition>" in shard["resources"] and "mem_mb=8000" in shard["resources"]
    teacher = next(j for j in jobs if j["rule"] == "teacher")
    assert "slurm_partition=<gpu-partition>" in teacher["resources"] and "gpu=1" in teacher["resources"]


def test_gpu_only_where_the_strategy_needs_one(tmp_path):
    # random picks (initial or per round) hold no GPU; k-center and the network rules hold one
    config = yaml.safe_load(CONFIG.read_text())
    config["runs"]["asgn"]["initial"]["strategy"] = "kcenter"
    jobs = plan(tmp_path, write_yaml(tmp_path / "c.yaml", config))

    def gpus(rule: str, run: str) -> set[str]:
        return {
            (re.search(r"gpu=(\d+)", j["resources"]) or ["", "0"])[1]
            for j in jobs
            if j["rule"] == rule and f"runs/{run}/" in " ".join(j["output"])
        }

    assert gpus("initial", "asgn") == {"1"} and gpus("initial", "random") == {"0"}
    assert gpus("select", "asgn") == {"1"} and gpus("select", "random") == {"0"}
    assert gpus("teacher", "random") == {"1"}


#: Network jobs on one thread each, two side by side (what `make benchmark-mini` does on 2 cores):
#: at these model sizes job start-up dominates, so this halves the end-to-end tests' time.
ONE_THREAD = (
    "--set-threads",
    *(f"{r}=1" for r in ("initial", "teacher", "embed", "student", "pseudo_label", "select")),
)
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


def test_end_to_end_tiny_qm9(tmp_path):
    config = write_yaml(
        tmp_path / "tiny.yaml",
        {
            "datasets": {"qm9": {"source": "qm9", "limit": 200, "shards": 2}},
            "runs": {"asgn": TINY_RUN, "random": {**TINY_RUN, "strategy": "random"}},
        },
    )
    # As `make demo` runs it: .venv/bin/snakemake with the venv not activated (`pipeline` not on PATH).
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    env = {**os.environ, "PATH": path}
    r = snakemake(
        "--cores", "2", *ONE_THREAD, "--directory", tmp_path, "--configfile", config, env=env, timeout=400
    )
    assert r.returncode == 0, r.stdout

    data = tmp_path / "results" / "data" / "qm9"
    expected = [
        *(f"results/data/qm9/graphs/shard-{k:05d}.parquet" for k in range(2)),
        "results/data/qm9/answer_key.parquet",
        "results/data/qm9/rejects.parquet",
        "results/data/qm9/manifest.json",
        *(f"logs/featurise_shard/qm9/shard-{k:05d}.log" for k in range(2)),
        "logs/featurise_merge/qm9.log",
        *(f"logs/timings/featurise_shard/qm9/shard-{k:05d}.tsv" for k in range(2)),
        "logs/timings/featurise_merge/qm9.tsv",
    ]
    for run in ("asgn", "random"):
        expected += [
            f"results/runs/{run}/{f}"
            for f in ("split.parquet", "run.json", "learning_curve.csv", "learning_curve.png")
        ]
        for rnd in ("00", "01"):
            expected += [f"results/runs/{run}/round_{rnd}/{f}" for f in (*ROUND_FILES, "embedding_map.png")]
            expected += [f"logs/{rule}/{run}/round_{rnd}.log" for rule in ROUND_RULES]
            expected += [
                f"logs/timings/{rule}/{run}/round_{rnd}.tsv" for rule in ("teacher", "student", "select")
            ]
    expected += ["results/learning_curve.csv", "results/learning_curve.png"]
    assert [p for p in expected if not (tmp_path / p).is_file()] == []

    # The report holds the curves, tables and maps (built from the finished run, no job runs).
    r = snakemake("--directory", tmp_path, "--configfile", config, "--report", tmp_path / "report.html")
    assert r.returncode == 0, r.stdout
    assert (tmp_path / "report.html").stat().st_size > 10_000

    manifest = json.loads((data / "manifest.json").read_text())
    n = manifest["counts"]["molecules"]
    assert n + manifest["counts"]["rejected"] >= 200 and n > 100
    graph_ids = [
        i
        for k in range(2)
        for i in pq.read_table(data / f"graphs/shard-{k:05d}.parquet")["mol_id"].to_pylist()
    ]
    assert len(graph_ids) == len(set(graph_ids)) == n

    split = pq.read_table(tmp_path / "results/runs/asgn/split.parquet").to_pandas()
    sizes = split["split"].astype(str).value_counts().to_dict()
    assert sizes == {"pool": n - 40, "val": 20, "test": 20}
    assert split["mol_id"].is_unique  # no molecule in two splits
    assert set(split["mol_id"]) == set(graph_ids)
    held = set(split.mol_id[split["split"].astype(str) != "pool"])

    # Labelled sets grow by exactly `batch` new, distinct pool molecules; never val or test.
    for run in ("asgn", "random"):
        rounds = [tmp_path / f"results/runs/{run}/round_{r}" for r in ("00", "01")]
        labelled = [pq.read_table(d / "labelled.parquet").to_pandas() for d in rounds]
        assert [len(x) for x in labelled] == [12, 22] and all(x.mol_id.is_unique for x in labelled)
        assert not (set(labelled[1].mol_id) & held)
        picked = set(pq.read_table(rounds[0] / "selected.parquet")["mol_id"].to_pylist())
        assert set(labelled[1].mol_id) == set(labelled[0].mol_id) | picked and len(picked) == 10
        curve = (tmp_path / f"results/runs/{run}/learning_curve.csv").read_text()
        assert "homo" in curve
    # Same initial set for both runs (same seed), different strategies afterwards.
    asgn0 = pq.read_table(tmp_path / "results/runs/asgn/round_00/labelled.parquet")["mol_id"].to_pylist()
    random0 = pq.read_table(tmp_path / "results/runs/random/round_00/labelled.parquet")["mol_id"].to_pylist()
    assert asgn0 == random0

    # Resume after a deleted round: only that round (and what follows from it) is redone, and the
    # same config gives the same selections on the CPU.
    last = tmp_path / "results/runs/asgn/round_01"
    before = pq.read_table(last / "selected.parquet").to_pandas()
    shutil.rmtree(last)
    jobs = plan(tmp_path, config)
    redo = (*ROUND_RULES, "embedding_map", "learning_curve", "round_table", "learning_curve_all", "all")
    assert count(jobs) == dict.fromkeys(redo, 1)
    r = snakemake(
        "--cores", "2", *ONE_THREAD, "--directory", tmp_path, "--configfile", config, env=env, timeout=300
    )
    assert r.returncode == 0, r.stdout
    assert pq.read_table(last / "selected.parquet").to_pandas().equals(before)

    # A finished run is up to date; a new split seed redoes that run from its split on, nothing upstream.
    r = snakemake("-n", "--directory", tmp_path, "--configfile", config)
    assert "Nothing to be done" in r.stdout, r.stdout
    reseeded = yaml.safe_load(config.read_text())
    reseeded["runs"]["asgn"]["split"]["seed"] = 1
    replanned = count(plan(tmp_path, write_yaml(tmp_path / "reseeded.yaml", reseeded)))
    assert replanned["split"] == 1 and replanned["teacher"] == 2  # asgn's split and all that follows
    assert "featurise_shard" not in replanned and "split" in replanned


def test_uncertainty_strategies_wire_checkpoints_into_select(tmp_path):
    config = write_yaml(
        tmp_path / "u.yaml",
        {
            "datasets": {"qm9": {"source": "qm9", "limit": 500}},
            "runs": {
                "qbc": {**TINY_RUN, "strategy": "qbc"},
                "mcd": {**TINY_RUN, "strategy": "mc_dropout", "model": {**TINY_RUN["model"], "dropout": 0.1}},
                "kc": TINY_RUN,
            },
        },
    )
    jobs = plan(tmp_path, config)
    # results/runs/{run}/round_{r}/selected.parquet -> (run, round)
    selects = {tuple(j["output"][0].split("/")[2:4]): j for j in jobs if j["rule"] == "select"}
    qbc, mcd, kc = (selects[(run, "round_00")] for run in ("qbc", "mcd", "kc"))
    assert "results/runs/qbc/round_00/teacher.pt" in qbc["input"] and "--student-summary" in qbc["shell"]
    assert "results/runs/mcd/round_00/student.pt" in mcd["input"] and "--checkpoint" in mcd["shell"]
    assert not any(p.endswith(".pt") for p in kc["input"]) and "--checkpoint" not in kc["shell"]
    assert leaks(jobs) == [] and {j["rule"] for j in jobs for p in j["input"] if "holdout" in p} == {
        "student"
    }


def test_benchmark_mini_plan(tmp_path):
    config = REPO / "config" / "benchmark-mini.yaml"
    jobs = plan(tmp_path, config, extra=("--replace-workflow-config",))
    counts = count(jobs)
    # qbc differs from asgn_s only in its strategy and committee: it copies asgn_s's round 0
    assert counts["benchmark_table"] == 1 and counts["featurise_shard"] == 2
    assert counts["teacher"] == 7 * 3 * 3 - 3 and counts["share_round_0"] == 3
    (table,) = [j for j in jobs if j["rule"] == "benchmark_table"]
    runs = {p.split("/")[2] for p in table["input"]}
    methods = {r.removeprefix("mini-").rsplit("-s", 1)[0] for r in runs}
    assert (
        methods == {"asgn", "asgn_t", "asgn_s", "random", "qbc", "mc_dropout", "mean_teacher"}
        and len(runs) == 21
    )
    assert (
        "--run-json results/runs/mini-asgn-s0/run.json" in table["shell"]
        and "--baseline random" in table["shell"]
    )
    assert table["output"][0] == "results/benchmark/mini/table.csv"
    assert leaks(jobs) == []
    # supervised baselines learn no pseudo-labels; ASGN's teachers do; Random starts afresh each round
    teachers = {
        j["output"][0].split("/")[2]: j
        for j in jobs
        if j["rule"] == "teacher" and "round_01" in j["output"][0]
    }
    assert (
        "--pseudo" in teachers["mini-asgn-s0"]["shell"]
        and "--pseudo" not in teachers["mini-random-s0"]["shell"]
    )
    assert "--previous" in teachers["mini-asgn-s0"]["shell"]
    assert "--previous" not in teachers["mini-random-s0"]["shell"]


def test_benchmark_cpu_plan_expands_methods_and_seeds(tmp_path):
    """config/benchmark-cpu.yaml: a base, small overrides and seeds become runs; ASGN-T has no runs of
    its own (it reads ASGN's teachers); each part is its own target; same seed = same split and
    initial labels."""
    config = REPO / "config" / "benchmark-cpu.yaml"
    ssl = plan(tmp_path, config, extra=("--replace-workflow-config", "results/benchmark/ssl/table.md"))
    counts = count(ssl)
    # the krr methods' one-round runs train no teacher (but krr_teacher's): their students read
    # none and no selection follows; krr_teacher's student reads its teacher's embeddings
    assert counts["teacher"] == 15 * 3 and counts["student"] == 19 * 3 and "select" not in counts
    (krr,) = [j for j in ssl if j["rule"] == "student" and "ssl-krr-s1" in j["output"][0]]
    assert "--teacher-path" not in krr["shell"] and not any(p.endswith(".pt") for p in krr["input"])
    (on_teacher,) = [j for j in ssl if j["rule"] == "student" and "ssl-krr_teacher-s1" in j["output"][0]]
    assert "--teacher-path results/runs/ssl-krr_teacher-s1/round_00/teacher.pt" in on_teacher["shell"]
    # each cheap method once for the dataset (xTB: helpers of two methods, the delta baselines of
    # five; ANI-1x and ANI-1ccx: one each), 8 chunks
    assert counts["helper_chunk"] == 3 * 8 and counts["helpers"] == 6 and counts["baseline"] == 7 * 3
    chunks = [j["shell"] for j in ssl if j["rule"] == "helper_chunk"]
    assert sum("--oracle ani1ccx" in shell for shell in chunks) == 8
    (table,) = [j for j in ssl if j["rule"] == "benchmark_table"]
    assert "--derived asgn_t=asgn" in table["shell"] and "--baseline supervised" in table["shell"]
    assert "--paired-csv results/benchmark/ssl/paired.csv" in table["shell"]
    al = plan(tmp_path, config, extra=("--replace-workflow-config", "results/benchmark/al/table.md"))
    counts = count(al)
    # asgn, random and asgn_s train 5 rounds' teachers; asgn_random, lcmd, kmeanspp and bait copy
    # asgn's round 0; krr and krr_delta need a teacher only for the embeddings table every select
    # job reads the pool's ids from (not in round 4); krr_variance and krr_delta_variance differ
    # from them only in the strategy, so they copy their round 0 and train rounds 1-3's
    assert counts["teacher"] == 3 * 3 * 5 + 6 * 3 * 4 + 2 * 3 * 3 and counts["share_round_0"] == 6 * 3
    assert counts["select"] == 11 * 3 * 4  # no picks after the last round
    (variance,) = [j for j in al if j["rule"] == "select" and "al-krr_variance-s1/round_02" in j["output"][0]]
    assert "--checkpoint results/runs/al-krr_variance-s1/round_02/student.pt" in variance["shell"]
    teachers = {j["output"][0]: j["shell"] for j in al if j["rule"] == "teacher"}
    assert "--previous" not in teachers["results/runs/al-random-s1/round_02/teacher.pt"]
    assert "--previous" in teachers["results/runs/al-asgn-s1/round_02/teacher.pt"]
    assert "--pseudo" in teachers["results/runs/al-asgn-s1/round_02/teacher.pt"]
    assert (
        "--previous results/runs/al-lcmd-s1/round_00/teacher.pt"
        in teachers["results/runs/al-lcmd-s1/round_01/teacher.pt"]
    )
    assert leaks(ssl) == [] and leaks(al) == []
    # the resolved settings: run.json of the expanded runs
    snakemake(
        "--directory", tmp_path, "--configfile", config, "--replace-workflow-config", "--cores", "1",
        "results/runs/ssl-supervised-s2/run.json", "results/runs/ssl-asgn-s2/run.json",
    )  # fmt: skip
    sup = json.loads((tmp_path / "results/runs/ssl-supervised-s2/run.json").read_text())
    asgn = json.loads((tmp_path / "results/runs/ssl-asgn-s2/run.json").read_text())
    assert sup["seed"] == asgn["seed"] == 2 and sup["train"]["teacher_epochs"] == 0
    assert (sup["benchmark"], sup["method"], asgn["method"]) == ("ssl", "supervised", "asgn")
    assert asgn["train"]["pretrain_epochs"] == 12 and asgn["train"]["weights"]["reconstruction"] == 1.0
    assert sup["train"]["lr_schedule"] == asgn["train"]["lr_schedule"] == "plateau"  # same student


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methods": {"a": {"train": {"epoch": 3}}}}, "invalid config at runs.b-a-s0.train"),
        ({"derived": {"t": "nope"}}, "benchmarks.b.derived.t: method 'nope' is not among"),
        ({"baseline": "nope"}, "benchmarks.b.baseline: 'nope' is not a method"),
        ({"seeds": []}, "invalid config at benchmarks.b.seeds"),
        (  # named where the user wrote it, once, not in every (method, seed) run made from it
            {"methods": {"a": {"train": {"lr": float("nan")}}}},
            "invalid config at benchmarks.b.methods.a.train.lr: nan is not a finite number (every number",
        ),
    ],
)
def test_bad_benchmark_matrices_are_named_before_any_job(tmp_path, change, message):
    bench = {"seeds": [0], "baseline": "a", "base": {"dataset": "qm9", "split": {"val": 1, "test": 1}},
             "methods": {"a": {}}}  # fmt: skip
    config = {"datasets": {"qm9": {"source": "qm9", "limit": 20}}, "benchmarks": {"b": {**bench, **change}}}
    r = snakemake("-n", "--directory", tmp_path, "--configfile", write_yaml(tmp_path / "c.yaml", config),
                  "--replace-workflow-config")  # fmt: skip
    assert r.returncode != 0 and message in r.stdout, r.stdout


# ------------------------------------------------------------------------------------ real oracles

#: Radicals (odd electron counts): the xtb oracle refuses them, so they are the pool's sure failures.
RADICALS = ["[CH3]", "C[CH2]", "[NH2]", "C[O]", "CC[CH2]", "[CH2]O", "N[CH2]", "CC[O]", "O[CH2]C", "C[NH]"]


def test_smiles_pool_config_plan_labels_with_xtb_chunks(tmp_path):
    (tmp_path / "config/examples").mkdir(parents=True)  # inputs are relative to the working directory
    shutil.copy(REPO / "config/examples/smiles-pool.csv", tmp_path / "config/examples")
    jobs = plan(tmp_path, REPO / "config" / "smiles-pool.yaml", extra=("--replace-workflow-config",))
    counts = count(jobs)
    assert counts["label_chunk"] == 2 * 3 and counts["holdout_chunk"] == 2 and counts["label"] == 3
    assert leaks(jobs) == [] and not any(
        "answer_key" in p for j in jobs for p in j["input"] if j["rule"] != "featurise_merge"
    )
    chunk = next(j for j in jobs if j["rule"] == "label_chunk" and "round_01" in j["output"][0])
    assert "results/runs/xtb-gap/round_00/selected.parquet" in chunk["input"]
    assert "--oracle xtb" in chunk["shell"] and "OMP_NUM_THREADS=1" in chunk["shell"]
    assert "mem_mb=2000" in chunk["resources"] and "runtime=30" in chunk["resources"]
    (label,) = [j for j in jobs if j["rule"] == "label" and "round_01" in j["output"][0]]
    parts = [f"results/runs/xtb-gap/round_01/label_parts/chunk-{c:03d}" for c in range(2)]
    assert sorted(p for p in label["input"] if "label_parts" in p) == sorted(
        [f"{p}.parquet" for p in parts] + [f"{p}.failures.parquet" for p in parts]
    )  # both files of every chunk, passed to the command as they are (nothing derived)
    assert f"--part-failures {parts[0]}.failures.parquet {parts[1]}.failures.parquet" in label["shell"]
    assert "results/runs/xtb-gap/round_00/label_failures.parquet" in label["input"]
    select = next(j for j in jobs if j["rule"] == "select")
    assert "--failures" in select["shell"]


def test_external_oracle_label_jobs_are_given_their_request_and_labels_file(tmp_path):
    """Each label job of the external oracle is told where its request goes and where its labels
    file is (the stage derives no path from its --out): round_{r}/to_label.* and labels.csv,
    holdout_to_label.* and holdout_labels.csv."""
    lab = {**TINY_RUN, "split": {"val": 4, "test": 4}, "initial": {"size": 5}, "batch": 2}
    config = write_yaml(
        tmp_path / "lab.yaml",
        {
            "datasets": {"qm9": {"source": "qm9", "limit": 30, "oracle": {"name": "external"}}},
            "runs": {"lab": lab},
        },
    )
    jobs = plan(tmp_path, config, extra=("--replace-workflow-config",))
    shells = {j["output"][0]: j["shell"] for j in jobs if j["rule"] in ("label", "label_holdout")}
    root = "results/runs/lab"
    expected = {
        f"{root}/holdout_labels.parquet": f"{root}/holdout_",
        **{f"{root}/round_{r}/labelled.parquet": f"{root}/round_{r}/" for r in ("00", "01")},
    }
    assert sorted(shells) == sorted(expected)
    for out, files in expected.items():
        assert (
            f"--labels-file {files}labels.csv --request-xyz {files}to_label.xyz"
            f" --request-csv {files}to_label.csv" in shells[out]
        ), shells[out]


def test_an_edited_labels_file_relabels_its_round_and_an_implausible_value_is_refused(tmp_path):
    """The external oracle's labels.csv is an input of its label job, checksum included: a correction
    relabels the round even when the file's mtime is older than the labels (restored from a backup,
    copied with `cp -p`); a HOMO of 1e30 eV is refused naming the file, the molecule and the range."""
    from pipeline.config.digest import file_sha256
    from pipeline.label.provenance import read_labelling

    lab = {**TINY_RUN, "split": {"val": 4, "test": 4}, "initial": {"size": 5}, "batch": 2, "rounds": 1}
    config = write_yaml(
        tmp_path / "lab.yaml",
        {
            "datasets": {"qm9": {"source": "qm9", "limit": 30, "oracle": {"name": "external"}}},
            "runs": {"lab": lab},
        },
    )
    target = "results/runs/lab/round_00/labelled.parquet"
    extra = ("--replace-workflow-config", target)
    args = ("--cores", "1", "--directory", tmp_path, "--configfile", config, *extra)
    r = snakemake(*args)
    assert r.returncode != 0 and "need labels" in r.stdout, r.stdout
    round_dir = tmp_path / "results/runs/lab/round_00"
    form = pd.read_csv(round_dir / "to_label.csv", keep_default_na=False)
    form["homo [eV]"] = -7.0
    labels = round_dir / "labels.csv"
    form.to_csv(labels, index=False)
    r = snakemake(*args)
    assert r.returncode == 0, r.stdout
    assert "Nothing to be done" in snakemake("-n", *args).stdout

    # a correction, saved with an mtime older than labelled.parquet: still relabels
    old = (round_dir / "labelled.parquet").stat().st_mtime_ns - 3600 * 10**9
    form.loc[0, "homo [eV]"] = -6.5
    form.to_csv(labels, index=False)
    os.utime(labels, ns=(old, old))
    assert count(plan(tmp_path, config, extra=extra)) == {"label": 1}
    r = snakemake(*args)
    assert r.returncode == 0, r.stdout
    labelled = pq.read_table(round_dir / "labelled.parquet").to_pandas().set_index("mol_id")
    assert labelled.homo[form.mol_id[0]] == -6.5 and (labelled.homo.drop(form.mol_id[0]) == -7.0).all()
    (record,) = read_labelling(round_dir / "labelled.parquet")
    assert record["files"] == [{"path": str(labels.relative_to(tmp_path)), "sha256": file_sha256(labels)}]

    # a value no HOMO can have: refused, naming the file, the molecule, the column and the range
    form.loc[1, "homo [eV]"] = 1e30
    form.to_csv(labels, index=False)
    r = snakemake(*args)
    assert r.returncode != 0
    refused = "results/runs/lab/round_00/labels.csv: 1 molecules have a value in 'homo [eV]'"
    assert refused in r.stdout, r.stdout
    assert f"'{form.mol_id[1]}': 1e+30" in r.stdout and "plausible range [-20, -1] eV" in r.stdout


def test_targets_an_oracle_cannot_label_are_refused_before_any_job(tmp_path):
    config = {
        "datasets": {"pool": {"source": "smiles", "inputs": ["x.csv"], "oracle": {"name": "xtb"}}},
        "runs": {"r": {"dataset": "pool", "split": {"val": 1, "test": 1}, "targets": ["gap", "u0"]}},
    }
    r = snakemake("-n", "--directory", tmp_path, "--configfile", write_yaml(tmp_path / "c.yaml", config))
    assert (
        r.returncode != 0
        and "runs.r.targets: the xtb oracle of dataset 'pool' cannot label ['u0']" in r.stdout
    )


def test_end_to_end_real_oracles(tmp_path):
    """Two runs in one invocation, as a user with real pools would have them:

    - `xtb`: a SMILES pool without labels, labelled by GFN2-xTB in chunks; radicals fail, are
      recorded with their reason and leave the pool; 2 rounds.
    - `lab`: a QM9 subset labelled by an external lab: the workflow writes its requests and stops
      with a message; once the forms are filled in (one molecule failed), a rerun finishes the run.
    """
    pytest.importorskip("tblite")
    smiles = (REPO / "config/examples/smiles-pool.csv").read_text().splitlines()[:41]  # header + 40
    smiles += [f"radical-{k},{s}" for k, s in enumerate(RADICALS)]
    (tmp_path / "pool.csv").write_text("\n".join(smiles) + "\n")
    xtb = {**TINY_RUN, "dataset": "pool", "targets": ["gap"], "split": {"val": 6, "test": 6}}
    xtb.update(initial={"size": 8}, batch=8)
    lab = {**TINY_RUN, "split": {"val": 10, "test": 10}, "initial": {"size": 8}, "batch": 6, "rounds": 1}
    pool = {"source": "smiles", "inputs": [str(tmp_path / "pool.csv")]}
    config = write_yaml(
        tmp_path / "oracles.yaml",
        {
            "datasets": {
                "pool": {**pool, "oracle": {"name": "xtb", "chunks": 2, "settings": {"accuracy": 1.0}}},
                "qm9": {"source": "qm9", "limit": 120, "oracle": {"name": "external"}},
            },
            "runs": {"xtb": xtb, "lab": lab},
        },
    )
    args = ("--cores", "2", *ONE_THREAD, "--keep-going", "--directory", tmp_path, "--configfile", config)
    args += ("--replace-workflow-config",)
    r = snakemake(*args, timeout=400)
    # the lab's requests stop its run, with a message saying what to do; the xtb run went on
    assert r.returncode != 0 and "need labels" in r.stdout and "run the workflow again" in r.stdout, r.stdout

    root = tmp_path / "results/runs/xtb"
    for rnd in ("00", "01"):
        assert (root / f"round_{rnd}/label_parts/chunk-001.failures.parquet").is_file()
        assert (tmp_path / f"logs/label_chunk/xtb/round_{rnd}/chunk-000.log").is_file()
    l0, l1 = (pq.read_table(root / f"round_{r}/labelled.parquet").to_pandas() for r in ("00", "01"))
    f0, f1 = (pq.read_table(root / f"round_{r}/label_failures.parquet").to_pandas() for r in ("00", "01"))
    holdout_failed = pq.read_table(root / "holdout_failures.parquet").to_pandas()
    picked0 = pq.read_table(root / "initial.parquet")["mol_id"].to_pylist()
    picked1 = pq.read_table(root / "round_00/selected.parquet")["mol_id"].to_pylist()
    failed = set(f1.mol_id) | set(holdout_failed.mol_id)
    # every radical that was asked about failed with the reason; nothing else failed
    assert failed and all(m.startswith("radical-") for m in failed)
    assert all("odd" in reason for reason in [*f1.reason, *holdout_failed.reason])
    assert f1.iloc[: len(f0)].equals(f0) and set(f1["round"]) <= {0, 1}  # failures accumulate
    # L_r holds exactly the picks that did not fail; a failed molecule is never picked again
    assert set(l0.mol_id) == set(picked0) - set(f0.mol_id)
    assert set(l1.mol_id) == set(l0.mol_id) | (set(picked1) - set(f1.mol_id))
    assert not set(picked1) & set(f0.mol_id) and l1.mol_id.is_unique
    assert l1.gap.between(0.1, 15).all() and (l1.gap - (l1.lumo - l1.homo)).abs().max() < 1e-9
    # the student is scored on the val/test molecules that got labels
    holdout = pq.read_table(root / "holdout_labels.parquet").to_pandas()
    assert len(holdout) + len(holdout_failed) == 12 and not set(holdout.mol_id) & failed
    assert json.loads((root / "round_01/student.json").read_text())["test_mae"]["gap"] > 0

    # the lab: val/test and round-0 requests, as extended XYZ and a form to fill in
    lab_root = tmp_path / "results/runs/lab"
    assert (lab_root / "holdout_to_label.xyz").is_file() and (lab_root / "round_00/to_label.xyz").is_file()
    assert not (lab_root / "round_00/labelled.parquet").exists()
    picks = pq.read_table(lab_root / "initial.parquet")["mol_id"].to_pylist()
    assert pd.read_csv(lab_root / "round_00/to_label.csv").mol_id.tolist() == picks
    key = pq.read_table(tmp_path / "results/data/qm9/answer_key.parquet").to_pandas().set_index("mol_id")
    for form in (lab_root / "holdout_to_label.csv", lab_root / "round_00/to_label.csv"):
        filled = pd.read_csv(form, keep_default_na=False)  # the test plays the lab: QM9's own values
        filled["homo [eV]"] = key.loc[filled.mol_id, "homo"].to_numpy()
        if "round_00" in str(form):  # one molecule could not be made
            filled.loc[0, "failure"], filled.loc[0, "homo [eV]"] = "could not be synthesised", np.nan
        filled.to_csv(form.with_name(form.name.replace("to_label", "labels")), index=False)

    r = snakemake(*args, timeout=400)
    assert r.returncode == 0, r.stdout
    labelled = pq.read_table(lab_root / "round_00/labelled.parquet").to_pandas()
    assert labelled.mol_id.tolist() == picks[1:] and np.allclose(labelled.homo, key.loc[picks[1:], "homo"])
    failures = pq.read_table(lab_root / "round_00/label_failures.parquet").to_pandas()
    assert failures.mol_id.tolist() == picks[:1] and failures.reason.tolist() == ["could not be synthesised"]
    selected = pq.read_table(lab_root / "round_00/selected.parquet")["mol_id"].to_pylist()
    assert len(selected) == 6 and picks[0] not in selected  # failed: not offered again


def test_benchmark_methods_that_differ_only_in_selection_train_round_0_once(tmp_path):
    """share_round_0: the random-picking method copies k-center's round 0 (no teacher, student or
    embedding job of its own there), byte for byte but for its own selection, and builds its later
    rounds on that copy; retraining the source's round 0 redoes the copy."""
    bench = {
        "base": TINY_RUN,
        "seeds": [0],
        "baseline": "rnd",
        "methods": {"kc": {}, "rnd": {"strategy": "random"}},
    }
    config = write_yaml(
        tmp_path / "bench.yaml",
        {"datasets": {"qm9": {"source": "qm9", "limit": 200, "shards": 1}}, "benchmarks": {"b": bench}},
    )
    jobs = plan(tmp_path, config)
    shared = [j for j in jobs if j["rule"] == "share_round_0"]
    assert [j["output"][0] for j in shared] == ["results/runs/b-rnd-s0/round_00/labelled.parquet"]
    assert count(jobs)["teacher"] == 3 and count(jobs)["select"] == 4  # rnd: no teacher in round 0
    r = snakemake("--cores", "2", *ONE_THREAD, "--directory", tmp_path, "--configfile", config, timeout=400)
    assert r.returncode == 0, r.stdout
    kc, rnd = (tmp_path / f"results/runs/b-{m}-s0" for m in ("kc", "rnd"))
    for name in ROUND_FILES:  # checkpoints carry their run's settings, so they differ in bytes
        same = (kc / "round_00" / name).read_bytes() == (rnd / "round_00" / name).read_bytes()
        assert same == (name not in ("selected.parquet", "teacher.pt", "student.pt")), name
    assert not (tmp_path / "logs/teacher/b-rnd-s0/round_00.log").exists()
    assert (tmp_path / "logs/teacher/b-rnd-s0/round_01.log").exists()
    assert [p.name for p in (rnd / "round_01").iterdir() if p.name == "student.json"] == ["student.json"]
    assert (tmp_path / "results/benchmark/b/table.csv").is_file()
    # a changed round-0 file of the source: the copy, and what follows from it, is redone
    summary = kc / "round_00" / "teacher.json"
    summary.write_text(summary.read_text() + "\n")
    again = count(plan(tmp_path, config))
    assert again["share_round_0"] == 1 and again["teacher"] == 1  # rnd's round 1, not kc's


def test_helping_properties_are_computed_once_for_all_runs_of_a_dataset(tmp_path):
    """Two runs with xtb helpers on one dataset: its helper_chunks chunk jobs run once, each run has
    its helpers job, and every teacher reads it; only the label rules and helpers read the key."""
    helpers = {"source": "xtb", "properties": ["homo", "gap"]}
    config = write_yaml(
        tmp_path / "h.yaml",
        {
            "datasets": {"qm9": {"source": "qm9", "limit": 200, "helper_chunks": 3}},
            "runs": {
                "a": {**TINY_RUN, "helpers": helpers},
                "b": {**TINY_RUN, "strategy": "random", "helpers": helpers},
            },
        },
    )
    jobs = plan(tmp_path, config)
    counts = count(jobs)
    assert counts["helper_chunk"] == 3 and counts["helpers"] == 2 and counts["teacher"] == 4
    assert all("--helpers results/runs/" in j["shell"] for j in jobs if j["rule"] == "teacher")
    assert leaks(jobs) == []


def test_editing_a_file_inside_an_input_folder_featurises_again(tmp_path):
    """A dataset whose inputs name a folder depends on every file in it by content: appending a
    molecule to one (its mtime even set back before the shards') featurises the dataset again, as
    a corrected labels.csv relabels its round; the folder's own mtime changes only on add/remove."""
    mols = tmp_path / "mols"
    mols.mkdir()
    for name in ("a.xyz", "b.xyz"):
        (mols / name).write_text(f"1\nmol_id=h-{name[0]}\nH 0 0 0\n")
    config = write_yaml(
        tmp_path / "folder.yaml",
        {
            "datasets": {"mine": {"source": "files", "inputs": ["mols"]}},
            "runs": {"mine": {"dataset": "mine", "split": {"val": 1, "test": 1}}},
        },
    )
    manifest = "results/data/mine/manifest.json"
    args = ("--directory", tmp_path, "--configfile", config, "--replace-workflow-config")
    r = snakemake("--cores", "1", *args, manifest)
    assert r.returncode == 0, r.stdout
    assert count(plan(tmp_path, config, extra=(*args[4:], manifest))).get("featurise_shard", 0) == 0
    before = os.stat(mols / "b.xyz")
    with open(mols / "b.xyz", "a") as fh:
        fh.write("1\nmol_id=he\nHe 0 0 0\n")
    os.utime(mols / "b.xyz", ns=(before.st_atime_ns, before.st_mtime_ns - 10**12))
    jobs = plan(tmp_path, config, extra=(*args[4:], manifest))
    assert count(jobs)["featurise_shard"] == 1, jobs.stdout
    assert "mols/b.xyz" in jobs[0]["input"] or any("mols/b.xyz" in j["input"] for j in jobs)


def test_a_default_config_that_is_not_valid_yaml_is_named_with_its_line(tmp_path):
    """The workflow reads config/config.yaml itself before Snakemake does: a YAML error names the file,
    line and column (Snakemake's "Config file is not valid JSON or YAML" names neither). A file
    given with --configfile is read by Snakemake before the workflow (README: the limit)."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("datasets:\n  qm9:\n    limit: [1, 2\n    seed: 3\n")
    r = snakemake("-n", "--directory", tmp_path)
    assert r.returncode != 0
    assert "invalid config config/config.yaml: not valid YAML: line 4, column 9" in r.stdout, r.stdout
