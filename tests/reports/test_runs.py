"""Reports of finished rounds: learning curves, embedding maps, round tables, and their commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.reports.runs import (
    embedding_map,
    learning_curve,
    pca_2d,
    round_table,
    write_learning_curve,
    write_round_table,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPORT_DIR = Path(__file__).resolve().parents[2] / "workflow" / "report"
TARGETS = ["u0", "mu"]
POOL, INITIAL, BATCH, ROUNDS, WIDTH = 60, 10, 5, 3, 8


def test_mae(run: str, r: int, target: str) -> float:
    """A made-up test MAE: falls with the round; run "b" is better; u0 spans more than a decade."""
    scale = {"u0": 1.0, "mu": 0.5}[target] * (0.5 if run == "b" else 1.0)
    return scale * (0.04 if target == "u0" else 0.8) ** r


test_mae.__test__ = False  # a helper, not a test


def write_round(folder: Path, run: str, r: int, rng: np.random.Generator) -> None:
    """One round's files in the formats the stages write (teacher, student, embed, ...)."""
    folder.mkdir(parents=True)
    n_lab = INITIAL + BATCH * r
    teacher = {
        "round": r,
        "labelled": n_lab,
        "unlabelled": POOL - n_lab,
        "pseudo_labels": r > 0,
        "warm_start": r > 0,
        "device": "cpu",
        "seconds": 10.0 + r,
        "epochs": [
            {
                "property": 1.0 / (e + 1),
                "atom_type": 2.0 / (e + 1),
                "distance": 3.0 / (e + 1),
                "clustering": 4.0 / (e + 1),
                "total": 10.0 / (e + 1),
                "epoch": e,
                "seconds": 1.0,
            }
            for e in range(4)
        ],
    }
    student = {
        "round": r,
        "labelled": n_lab,
        "fine_tuned": True,
        "val_mae": {t: 1.1 * test_mae(run, r, t) for t in TARGETS},
        "test_mae": {t: test_mae(run, r, t) for t in TARGETS},
        "teacher_val_mae": {t: 2.2 * test_mae(run, r, t) for t in TARGETS},
        "teacher_test_mae": {t: 2.0 * test_mae(run, r, t) for t in TARGETS},
        "epochs": 7 + r,
        "best_epoch": 2 + r,
        "device": "cpu",
        "seconds": 5.0 + r,
        "history": [],
    }
    (folder / "teacher.json").write_text(json.dumps(teacher))
    (folder / "student.json").write_text(json.dumps(student))

    ids = np.array([f"mol{k:03d}" for k in range(POOL)])
    emb = rng.normal(size=(POOL, WIDTH)).astype(np.float32)
    embeddings = pa.table(
        {
            "mol_id": pa.array(ids),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), WIDTH),
        }
    )
    labelled = {"mol_id": ids[:n_lab], **{t: rng.normal(size=n_lab) for t in TARGETS}}
    labelled["round_added"] = np.array(
        [0] * INITIAL + [1 + k // BATCH for k in range(n_lab - INITIAL)], np.int32
    )
    picks = ids[n_lab : n_lab + BATCH]
    selected = {"mol_id": picks, "pick": np.arange(BATCH), "distance": np.linspace(2.0, 1.0, BATCH)}
    pq.write_table(embeddings, folder / "embeddings.parquet")
    pq.write_table(pa.table(labelled), folder / "labelled.parquet")
    pq.write_table(pa.table(selected), folder / "selected.parquet")


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    """Two finished runs of three rounds each: results/runs/{a,b}/round_{00,01,02}/..."""
    rng = np.random.default_rng(0)
    folders = {}
    for run in ("a", "b"):
        folders[run] = tmp_path / "results" / "runs" / run
        for r in range(ROUNDS):
            write_round(folders[run] / f"round_{r:02d}", run, r, rng)
    return folders


def files(folder: Path, name: str = "student.json") -> list[Path]:
    """A run's per-round summaries, as the workflow passes them (round_00, round_01, ...)."""
    return [folder / f"round_{r:02d}" / name for r in range(ROUNDS)]


def students(runs: dict[str, Path]) -> dict[str, list[Path]]:
    return {run: files(folder) for run, folder in runs.items()}


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)], capture_output=True, text=True
    )


# --------------------------------------------------------------------------------------------------
# learning curve


def test_learning_curve_has_one_row_per_run_round_target(runs):
    table = learning_curve(students(runs))
    assert list(table.columns) == [
        "run",
        "round",
        "labelled",
        "target",
        "val_mae",
        "test_mae",
        "teacher_val_mae",
        "teacher_test_mae",
    ]
    assert len(table) == 2 * ROUNDS * len(TARGETS)
    # sorted by run (as given), round, target (canonical QM9 order: mu before u0)
    assert list(table.run) == ["a"] * 6 + ["b"] * 6
    assert list(table["round"][:6]) == [0, 0, 1, 1, 2, 2]
    assert list(table.target[:2]) == ["mu", "u0"]
    assert list(table.labelled[table.target == "u0"]) == [10, 15, 20] * 2
    for row in table.itertuples():
        assert row.test_mae == pytest.approx(test_mae(row.run, row.round, row.target))
        assert row.val_mae == pytest.approx(1.1 * row.test_mae)
        # the teacher checkpoint's own MAEs, before fine-tuning
        assert row.teacher_test_mae == pytest.approx(2.0 * row.test_mae)
        assert row.teacher_val_mae == pytest.approx(2.2 * row.test_mae)


def test_learning_curve_of_rounds_without_teacher_maes_leaves_them_empty(runs, tmp_path):
    # student.json written before the teacher's MAEs were recorded: an old run still reads
    path = runs["a"] / "round_01" / "student.json"
    record = json.loads(path.read_text())
    del record["teacher_val_mae"], record["teacher_test_mae"]
    path.write_text(json.dumps(record))
    table = learning_curve(students(runs))
    old = (table.run == "a") & (table["round"] == 1)
    assert old.sum() == len(TARGETS)
    assert table.loc[old, ["teacher_val_mae", "teacher_test_mae"]].isna().all().all()
    assert table.loc[old, "test_mae"].notna().all()
    assert table.loc[~old, ["teacher_val_mae", "teacher_test_mae"]].notna().all().all()
    write_learning_curve(table, tmp_path / "c.csv", tmp_path / "c.png")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "c.csv"), table)


def test_learning_curve_keeps_the_order_runs_are_given_in(runs):
    table = learning_curve({"b": files(runs["b"]), "a": files(runs["a"])})
    assert list(dict.fromkeys(table.run)) == ["b", "a"]


def test_learning_curve_reads_only_the_rounds_it_is_given(runs):
    """A round left in the run folder by an older config (here round_05, and a later round_03 that
    the current config does not have) is not in the curve: only the given summaries are read."""
    for r in (3, 5):
        write_round(runs["b"] / f"round_{r:02d}", "b", r, np.random.default_rng(r))
    table = learning_curve({"a": files(runs["a"]), "b": files(runs["b"])[:2]})
    assert sorted(set(table["round"][table.run == "b"])) == [0, 1]
    assert sorted(set(table["round"][table.run == "a"])) == [0, 1, 2]
    assert len(table) == (ROUNDS + 2) * len(TARGETS)


def test_learning_curve_of_a_missing_summary_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such summary"):
        learning_curve({"a": [tmp_path / "round_00" / "student.json"]})


def test_a_summary_in_the_wrong_round_folder_is_an_error(runs):
    path = runs["a"] / "round_01" / "student.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "round": 2}))
    with pytest.raises(ValueError, match="round 2"):
        learning_curve(students(runs))


def test_write_learning_curve_csv_and_png(runs, tmp_path):
    table = learning_curve(students(runs))
    csv, png = tmp_path / "out" / "learning_curve.csv", tmp_path / "out" / "learning_curve.png"
    fig = write_learning_curve(table, csv, png, title="test run")
    pd.testing.assert_frame_equal(pd.read_csv(csv), table)
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in csv.parent.iterdir()) == ["learning_curve.csv", "learning_curve.png"]

    axes = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(axes) == set(TARGETS)  # one subplot per target
    for target, ax in axes.items():
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == ["a", "b"]  # one line per run
        for line, run in zip(lines, "ab", strict=True):
            assert list(line.get_xdata()) == [10, 15, 20]  # a marker per round, at |L_r|
            assert line.get_marker() == "o"
            assert np.allclose(line.get_ydata(), [test_mae(run, r, target) for r in range(ROUNDS)])
        assert ax.get_xlabel() == "labelled molecules"
    # u0 falls over three decades -> log axis; mu less than one -> linear
    assert axes["u0"].get_yscale() == "log" and axes["mu"].get_yscale() == "linear"
    assert axes["u0"].get_ylabel() == "test MAE (eV)" and axes["mu"].get_ylabel() == "test MAE (D)"


def test_learning_curve_of_an_unknown_target_says_units_as_given(tmp_path):
    table = pd.DataFrame(
        {"run": ["a"], "round": [0], "labelled": [5], "target": ["logp"], "val_mae": [0.2], "test_mae": [0.3]}
    )
    fig = write_learning_curve(table, tmp_path / "c.csv", tmp_path / "c.png")
    assert fig.axes[0].get_ylabel() == "test MAE (units as given)"


def test_learning_curve_with_no_finished_round_still_writes_files(tmp_path):
    table = learning_curve({"a": []})
    assert table.empty and list(table.columns)[:4] == ["run", "round", "labelled", "target"]
    write_learning_curve(table, tmp_path / "c.csv", tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes().startswith(PNG_MAGIC)
    assert pd.read_csv(tmp_path / "c.csv").empty


# --------------------------------------------------------------------------------------------------
# embedding map


def test_embedding_map_marks_labelled_and_selected(runs, tmp_path):
    folder = runs["a"] / "round_01"
    png = tmp_path / "map.png"
    fig = embedding_map(
        folder / "embeddings.parquet",
        folder / "labelled.parquet",
        folder / "selected.parquet",
        png,
        "a round 1",
    )
    assert png.read_bytes().startswith(PNG_MAGIC)
    (ax,) = fig.axes
    unlabelled, labelled, selected = (len(c.get_offsets()) for c in ax.collections)
    assert (unlabelled, labelled, selected) == (POOL - 15 - BATCH, 15, BATCH)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"unlabelled ({POOL - 20})", "labelled (15)", f"selected for next round ({BATCH})"]
    assert ax.get_title() == "a round 1"
    # the red points are exactly the selected molecules' PCA coordinates
    emb = pq.read_table(folder / "embeddings.parquet")["embedding"].combine_chunks().flatten().to_numpy()
    xy, _ = pca_2d(emb.reshape(POOL, WIDTH))
    assert np.allclose(ax.collections[2].get_offsets(), xy[15:20])


def test_embedding_map_rejects_picks_outside_the_pool_or_already_labelled(runs, tmp_path):
    folder = runs["a"] / "round_01"
    bad = tmp_path / "selected.parquet"
    pq.write_table(pa.table({"mol_id": ["mol000"], "pick": [0], "distance": [1.0]}), bad)
    with pytest.raises(ValueError, match="already labelled"):
        embedding_map(folder / "embeddings.parquet", folder / "labelled.parquet", bad, tmp_path / "m.png")
    pq.write_table(pa.table({"mol_id": ["elsewhere"], "pick": [0], "distance": [1.0]}), bad)
    with pytest.raises(ValueError, match="not in the pool"):
        embedding_map(folder / "embeddings.parquet", folder / "labelled.parquet", bad, tmp_path / "m.png")
    assert not (tmp_path / "m.png").exists()


def test_pca_2d_matches_the_covariance_eigenvectors():
    rng = np.random.default_rng(1)
    x = (
        rng.normal(size=(200, 5))
        * np.array([5.0, 2.0, 0.5, 0.1, 0.1])
        @ np.linalg.qr(rng.normal(size=(5, 5)))[0]
    )
    xy, explained = pca_2d(x)
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(centred.T))
    top = vectors[:, ::-1][:, :2]
    assert np.allclose(np.abs(xy), np.abs(centred @ top))
    assert np.allclose(explained, values[::-1][:2] / values.sum())
    assert explained[0] > explained[1] > 0
    # the sign is fixed by the data, not by the SVD routine: shuffling rows does not flip the map
    order = rng.permutation(len(x))
    assert np.allclose(pca_2d(x[order])[0], xy[order])


def test_pca_2d_of_degenerate_embeddings():
    assert np.allclose(pca_2d(np.ones((4, 3)))[0], 0)  # all the same: every point at the origin
    xy, explained = pca_2d(np.arange(5.0)[:, None])  # one dimension: PC2 is zero
    assert np.allclose(np.abs(xy[:, 0]), [2, 1, 0, 1, 2]) and np.allclose(xy[:, 1], 0)
    assert np.allclose(explained, [1, 0])


# --------------------------------------------------------------------------------------------------
# round table


def test_round_table_has_one_row_per_round(runs, tmp_path):
    table = round_table(files(runs["a"], "teacher.json"), files(runs["a"]))
    assert list(table["round"]) == [0, 1, 2]
    assert list(table.labelled) == [10, 15, 20]
    assert list(table.new_labels) == [10, BATCH, BATCH]
    assert list(table.teacher_epochs) == [4] * 3 and list(table.teacher_seconds) == [10.0, 11.0, 12.0]
    # loss terms of the teacher's last epoch (epoch 3 of 0..3)
    assert list(table.teacher_total_loss) == [2.5] * 3 and list(table.teacher_clustering_loss) == [1.0] * 3
    assert list(table.student_epochs) == [7, 8, 9] and list(table.student_best_epoch) == [2, 3, 4]
    assert list(table.student_seconds) == [5.0, 6.0, 7.0]
    assert np.allclose(table.test_mae_u0, [test_mae("a", r, "u0") for r in range(ROUNDS)])
    assert {"test_mae_mu", "test_mae_u0"} <= set(table.columns)
    csv = tmp_path / "rounds.csv"
    write_round_table(table, csv)
    assert list(pd.read_csv(csv)["round"]) == [0, 1, 2]


def test_round_table_of_a_run_in_progress(runs):
    # round 0 gone entirely, round 2's student not finished
    table = round_table(files(runs["a"], "teacher.json")[1:], files(runs["a"])[1:2])
    assert list(table["round"]) == [1, 2]
    assert table.new_labels.isna().tolist() == [True, False]  # round 1's is unknown: no round 0 to count from
    assert table.new_labels[1] == BATCH
    assert table.student_epochs.isna().tolist() == [False, True]  # round 2's student has not finished
    assert table.teacher_total_loss.notna().all()


# --------------------------------------------------------------------------------------------------
# commands


def _student_args(runs):
    return [
        arg
        for run, paths in students(runs).items()
        for path in paths
        for arg in ("--student", f"{run}={path}")
    ]


def test_learning_curve_command(runs, tmp_path):
    csv, png = tmp_path / "lc.csv", tmp_path / "lc.png"
    r = run_cli("learning-curve", *_student_args(runs), "--csv", csv, "--png", png)
    assert r.returncode == 0, r.stderr
    assert "2 runs, 6 rounds" in r.stderr
    pd.testing.assert_frame_equal(pd.read_csv(csv), learning_curve(students(runs)))
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_learning_curve_command_errors(runs, tmp_path):
    out = ["--csv", tmp_path / "lc.csv", "--png", tmp_path / "lc.png"]
    r = run_cli("learning-curve", "--student", str(runs["a"]), *out)
    assert r.returncode == 2 and "expected RUN=FILE" in r.stderr
    r = run_cli("learning-curve", "--student", f"a={tmp_path / 'nope.json'}", *out)
    assert r.returncode == 2 and "no such summary" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "lc.csv").exists()


def test_embedding_map_command(runs, tmp_path):
    folder, png = runs["b"] / "round_02", tmp_path / "map.png"
    r = run_cli(
        "embedding-map",
        *("--embeddings", folder / "embeddings.parquet", "--labelled", folder / "labelled.parquet"),
        *("--selected", folder / "selected.parquet", "--png", png),
    )
    assert r.returncode == 0, r.stderr
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_round_table_command(runs, tmp_path):
    csv = tmp_path / "rounds.csv"
    r = run_cli(
        "round-table",
        "--teacher",
        *files(runs["b"], "teacher.json"),
        "--student",
        *files(runs["b"]),
        "--csv",
        csv,
    )
    assert r.returncode == 0, r.stderr
    assert list(pd.read_csv(csv)["new_labels"]) == [10, BATCH, BATCH]


# --------------------------------------------------------------------------------------------------
# report captions


@pytest.mark.parametrize("name", ["workflow", "learning_curve", "embedding_map", "round_table"])
def test_captions_are_valid_restructured_text(name):
    publish_parts = pytest.importorskip("docutils.core").publish_parts  # comes with snakemake

    text = (REPORT_DIR / f"{name}.rst").read_text()
    # halt on any warning: a malformed caption would render as garbage in the Snakemake report
    html = publish_parts(text, writer="html", settings_overrides={"halt_level": 2, "report_level": 5})
    assert html["body"].strip()
