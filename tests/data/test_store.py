"""Atomic writes: a failed or killed write never leaves a file that looks complete."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.data.store import atomic_path, read_graph_metadata, write_json, write_table


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "shard-00000.parquet"
    write_table(pa.table({"x": [1, 2, 3]}), path)

    def broken_writer(table, where, **kwargs):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken_writer)
    with pytest.raises(OSError, match="disk full"):
        write_table(pa.table({"x": [9]}), path)
    assert pq.read_table(path)["x"].to_pylist() == [1, 2, 3]
    assert os.listdir(tmp_path) == ["shard-00000.parquet"]


def test_killed_writer_leaves_no_file_under_the_final_name(tmp_path):
    path = tmp_path / "manifest.json"
    code = (
        "import os\n"
        "from pipeline.data.store import atomic_path\n"
        f"with atomic_path({str(path)!r}) as tmp:\n"
        "    tmp.write_text('{\"half\": ')\n"
        "    os._exit(9)\n"  # killed mid-write: no cleanup runs
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert not path.exists()
    leftovers = os.listdir(tmp_path)
    assert all(name.startswith(".manifest.json.") and name.endswith(".tmp") for name in leftovers)


def test_written_files_get_normal_permissions(tmp_path):
    write_json({"a": 1}, tmp_path / "m.json")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_path_creates_parent_folders(tmp_path):
    with atomic_path(tmp_path / "a" / "b" / "c.txt") as tmp:
        tmp.write_text("done")
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "done"


def test_non_graph_file_is_refused(tmp_path):
    write_table(pa.table({"x": [1]}), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="not a featurised graph shard"):
        read_graph_metadata(tmp_path / "x.parquet")
