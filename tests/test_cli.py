"""The `pipeline` command as a user runs it: exit codes, files, one-line errors."""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import build_parser, main
from pipeline.plan.commands import STAGES


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def test_featurise_shards_merge_and_split(tmp_path, qm9_csv):
    """Shard jobs and the merge write exactly the files they are given (any layout: nothing is
    derived from a folder); the manifest names the shards relative to its own folder."""
    csv, data, parts = qm9_csv(), tmp_path / "data", tmp_path / "elsewhere"
    files = {
        k: {
            "--graphs": data / "g" / f"s{k}.parquet",
            "--answer-key": parts / f"key{k}.parquet",
            "--rejects": parts / f"rej{k}.parquet",
            "--summary": parts / f"sum{k}.json",
        }
        for k in (0, 1)
    }
    for k in (1, 0):
        given = [str(x) for option, path in files[k].items() for x in (option, path)]
        r = run("featurise", "--source", "qm9", "--input", csv, "--num-shards", 2, "--shard", k, *given)
        assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        [csv.name] + [p.name for k in (0, 1) for p in files[k].values()]
    )  # nothing but the files given
    merge = [
        *("--shard-graphs", *(files[k]["--graphs"] for k in (0, 1))),
        *("--shard-answer-keys", *(files[k]["--answer-key"] for k in (0, 1))),
        *("--shard-rejects", *(files[k]["--rejects"] for k in (0, 1))),
        *("--shard-summaries", *(files[k]["--summary"] for k in (0, 1))),
        *("--answer-key", data / "key.parquet", "--rejects", data / "rejects.parquet"),
        *("--manifest", data / "manifest.json"),
    ]
    r = run("featurise-merge", *merge)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((data / "manifest.json").read_text())
    assert [s["path"] for s in manifest["shards"]] == ["g/s0.parquet", "g/s1.parquet"]
    r = run(
        "split", "--data", data, "--out", tmp_path / "split.parquet", "--val", 4, "--test", 4, "--seed", 1
    )
    assert r.returncode == 0, r.stderr
    assert "pool 32, val 4, test 4" in r.stderr
    assert pq.read_table(tmp_path / "split.parquet").num_rows == 40
    # the one-process mode lays a dataset folder out itself
    r = run("featurise", "--source", "qm9", "--input", csv, "--out", tmp_path / "whole")
    assert r.returncode == 0, r.stderr
    names = {p.name for p in (tmp_path / "whole").iterdir()}
    assert names == {"graphs", "parts", "answer_key.parquet", "rejects.parquet", "manifest.json"}


def test_errors_are_one_line_without_traceback(tmp_path, qm9_csv):
    r = run("featurise", "--source", "qm9", "--input", qm9_csv(), "--out", tmp_path, "--limit", 0)
    assert r.returncode == 2
    assert "limit must be a positive number" in r.stderr and "Traceback" not in r.stderr
    r = run(
        "featurise-merge",
        *("--shard-graphs", tmp_path / "g.parquet", "--shard-answer-keys", tmp_path / "k.parquet"),
        *("--shard-rejects", tmp_path / "r.parquet", "--shard-summaries", tmp_path / "s.json"),
        *("--answer-key", tmp_path / "a", "--rejects", tmp_path / "b", "--manifest", tmp_path / "m"),
    )
    assert r.returncode == 2 and "shard 0 is not finished" in r.stderr


def test_shard_jobs_need_num_shards_and_their_files(tmp_path):
    r = run("featurise", "--source", "qm9", "--out", tmp_path, "--shard", 0)
    assert r.returncode == 2 and "--shard needs --num-shards" in r.stderr
    r = run("featurise", "--source", "qm9", "--out", tmp_path, "--shard", 0, "--num-shards", 1)
    assert r.returncode == 2 and "a shard job (--shard) is given the files it writes" in r.stderr
    assert "missing: --graphs, --answer-key, --rejects, --summary" in r.stderr
    r = run("featurise", "--source", "qm9", "--graphs", tmp_path / "g.parquet")
    assert r.returncode == 2 and "without --shard, featurise writes a whole dataset folder" in r.stderr


def _commands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, read off the parser itself (a new command is covered at once)."""
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _undocumented(parser: argparse.ArgumentParser) -> list[str]:
    return [
        "/".join(a.option_strings) or a.dest
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction) and a.help in (None, "", argparse.SUPPRESS)
    ]


def test_the_command_and_its_subcommands_are_documented():
    parser = build_parser()
    assert _undocumented(parser) == []
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert [c.dest for c in sub._choices_actions if not c.help] == []
    assert set(_commands()) >= {"featurise", "split", *STAGES, "label", "learning-curve", "benchmark-table"}


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_option_has_help(command, capsys):
    """``pipeline COMMAND --help`` exits 0 (help strings format: no stray %) and lists every option,
    each with help text."""
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pipeline {command} ")
    parser = _commands()[command]
    assert _undocumented(parser) == []
    for action in parser._actions:
        assert all(flag in out for flag in action.option_strings)


def test_stage_options_are_the_stage_functions_parameters():
    """Each per-round command passes its options to its function in pipeline.stages.rounds as keywords:
    the options are the parameters (in the order a rule passes them, which need not be the signature's),
    and the required ones are those without a default."""
    from pipeline.stages import rounds as stages

    for command, stage in STAGES.items():
        parameters = inspect.signature(getattr(stages, stage.function)).parameters
        dests = [o.dest for o in stage.options]
        assert sorted(dests) == sorted(parameters) and len(set(dests)) == len(dests), command
        required = {name for name, p in parameters.items() if p.default is inspect.Parameter.empty}
        assert {o.dest for o in stage.options if o.required} == required, command


STAGE_ARGS = ["--run-json", "r.json", "--data", "d", "--split-path", "s.parquet"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["teach"], "argument COMMAND: invalid choice: 'teach'"),
        # a per-round stage: a missing required option is named, --round must be an integer
        (
            ["teacher", *STAGE_ARGS, "--labelled-path", "l", "--round", "0", "--out", "t.pt"],
            "pipeline teacher: error: the following arguments are required: --summary",
        ),
        (
            [
                "select",
                "--run-json",
                "r",
                "--embeddings",
                "e",
                "--labelled-path",
                "l",
                "--out",
                "o",
                "--round",
                "x",
            ],
            "pipeline select: error: argument --round: invalid int value: 'x'",
        ),
        (["initial", "--run-json", "r"], "required: --data, --split-path, --out"),
        (
            ["split", "--data", "d", "--out", "s", "--val", "ten", "--test", "1"],
            "argument --val: invalid int",
        ),
        (["run-config", "--out", "run.json"], "required: --json"),
        (["featurise", "--source", "sdf"], "argument --source: invalid choice: 'sdf'"),
        (["label-chunk", "--chunk", "one"], "argument --chunk: invalid int value: 'one'"),
        # reports: RUN=FILE values are checked when parsed; a benchmark needs its runs' run.json
        (["learning-curve", "--student", "round_00/student.json"], "argument --student: expected RUN=FILE"),
        (
            ["benchmark-table", "--curve", "c.csv", "--csv", "t.csv", "--markdown", "t.md", "--png", "t.png"],
            "pipeline benchmark-table: error: the following arguments are required: --run-json",
        ),
        (["round-table", "--teacher", "t.json"], "required: --csv"),
        (["--threads", "two", "split"], "argument --threads: invalid int value: 'two'"),
    ],
)
def test_bad_arguments_are_refused_with_argparse_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "usage: pipeline" in err and "Traceback" not in err


@pytest.mark.parametrize("command", sorted(STAGES))
def test_stage_commands_pass_their_options_as_keywords(command, monkeypatch):
    from pipeline.stages import rounds as stages

    stage, calls = STAGES[command], []
    monkeypatch.setattr(stages, stage.function, lambda **kwargs: calls.append(kwargs))
    argv = [command]
    for o in stage.options:
        if o.required:
            argv += [o.flag, "3" if o.type is int else f"{o.dest}.x"]
    assert main(argv) == 0
    expected = {
        o.dest: (3 if o.type is int else Path(f"{o.dest}.x")) if o.required else None for o in stage.options
    }
    assert calls == [expected]


def test_the_external_oracle_is_told_its_request_and_labels_file(tmp_path):
    """`pipeline label --oracle external` without the paths of its request and labels file is a
    one-line error naming the options (it derives no path from --out)."""
    (tmp_path / "run.json").write_text(json.dumps({"targets": ["homo"]}))
    pq.write_table(pa.table({"mol_id": ["a"]}), tmp_path / "picks.parquet")
    base = ["label", "--selected", tmp_path / "picks.parquet", "--round", 0, "--out", tmp_path / "l.parquet"]
    base += ["--failures", tmp_path / "f.parquet", "--oracle", "external", "--data", tmp_path]
    base += ["--run-json", tmp_path / "run.json"]
    r = run(*base)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "the external oracle needs --labels-file, --request-xyz and --request-csv" in r.stderr
    r = run(*base, "--labels-file", tmp_path / "labels.csv", "--request-xyz", tmp_path / "to_label.xyz")
    assert r.returncode == 2 and "--request-xyz and --request-csv go together" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picks.parquet", "run.json"]


def test_run_config_writes_typed_settings_and_refuses_unknown_keys(tmp_path):
    """`pipeline run-config` checks the run's settings without torch: a valid object is written as
    run.json and reads back equal; a key the typed model or train settings lack is refused by name."""
    from pipeline.config.settings import RunConfig

    cfg = RunConfig(run="r", targets=["homo"])
    values = json.loads(cfg.to_json())
    values["model"]["hidden"], values["train"]["weights"]["pseudo"] = 32, 0.5
    assert run("run-config", "--json", json.dumps(values), "--out", tmp_path / "run.json").returncode == 0
    back = RunConfig.read(tmp_path / "run.json")
    assert back.model.hidden == 32 and back.train.weights.pseudo == 0.5 and back.as_dict() == values
    for section, key in (("model", "hiden"), ("train", "epochs")):
        bad = json.loads(cfg.to_json())
        bad[section][key] = 1
        out = run("run-config", "--json", json.dumps(bad), "--out", tmp_path / "bad.json")
        assert out.returncode == 2 and f"unknown {section} settings ['{key}']" in out.stderr
        assert not (tmp_path / "bad.json").exists()
