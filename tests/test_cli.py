"""The `pipeline` command as a user runs it: exit codes, files, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def test_featurise_shards_merge_and_split(tmp_path, qm9_csv):
    csv, out = qm9_csv(), tmp_path / "data"
    for k in (1, 0):
        r = run("featurise", "--source", "qm9", "--input", csv, "--out", out, "--num-shards", 2, "--shard", k)
        assert r.returncode == 0, r.stderr
    assert not (out / "manifest.json").exists()  # shard jobs do not merge
    r = run("featurise-merge", "--out", out, "--num-shards", 2)
    assert r.returncode == 0, r.stderr
    names = {p.name for p in out.iterdir()}
    assert names == {"graphs", "parts", "answer_key.parquet", "rejects.parquet", "manifest.json"}
    r = run("split", "--data", out, "--out", tmp_path / "split.parquet", "--val", 4, "--test", 4, "--seed", 1)
    assert r.returncode == 0, r.stderr
    assert "pool 32, val 4, test 4" in r.stderr
    assert pq.read_table(tmp_path / "split.parquet").num_rows == 40


def test_errors_are_one_line_without_traceback(tmp_path, qm9_csv):
    r = run("featurise", "--source", "qm9", "--input", qm9_csv(), "--out", tmp_path, "--limit", 0)
    assert r.returncode == 2
    assert "limit must be a positive number" in r.stderr and "Traceback" not in r.stderr
    r = run("featurise-merge", "--out", tmp_path / "empty", "--num-shards", 1)
    assert r.returncode == 2 and "shard 0 is not finished" in r.stderr


def test_shard_needs_num_shards(tmp_path):
    r = run("featurise", "--source", "qm9", "--out", tmp_path, "--shard", 0)
    assert r.returncode == 2 and "--shard needs --num-shards" in r.stderr
