"""Per-round stages on a small real QM9 subset: files, label growth, no leakage, determinism."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.config.settings import RunConfig
from pipeline.data.featurise import FeaturiseSettings, featurise
from pipeline.data.split import read_split, split_dataset
from pipeline.data.store import write_json, write_table
from pipeline.label import oracle
from pipeline.learn.checkpoint import load_checkpoint, save_checkpoint
from pipeline.stages import context
from pipeline.stages import rounds as stages

SETTINGS = {
    "run": "t",
    "targets": ["homo", "u0"],
    "strategy": "kcenter",
    "initial_size": 10,
    "initial_strategy": "random",
    "batch": 8,
    "rounds": 2,
    "seed": 3,
    "device": "cpu",
    "student": True,
    "model": {"hidden": 16, "n_interactions": 2, "rbf_count": 60, "n_clusters": 5},
    "train": {"teacher_epochs": 1, "student_max_epochs": 3, "patience": 2, "cluster_every": 1},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    data = root / "data"
    featurise(FeaturiseSettings(source="qm9", limit=90, seed=1), data)
    split_dataset(data, root / "split.parquet", val=15, test=15, seed=0)
    write_json(SETTINGS, root / "run.json")
    return root


def _ids(path):
    return set(pq.read_table(path)["mol_id"].to_pylist())


def _label(root, r):
    """Round r's label stage: the answer key's labels of the initial picks (r = 0) or of round
    r - 1's selection, added to round r - 1's."""
    d, prev = root / f"round_{r:02d}", root / f"round_{r - 1:02d}"
    oracle.label_round(
        (root / "initial.parquet") if r == 0 else prev / "selected.parquet",
        r,
        d / "labelled.parquet",
        d / "label_failures.parquet",
        oracle.OracleInput(answer_key=root / "data" / "answer_key.parquet", run_json=root / "run.json"),
        previous=None if r == 0 else prev / "labelled.parquet",
        previous_failures=None if r == 0 else prev / "label_failures.parquet",
    )


def _round(root, r, select=True):
    """Run round r's stages (label -> teacher -> embed -> student -> pseudo_label -> select)."""
    d, prev = root / f"round_{r:02d}", root / f"round_{r - 1:02d}"
    common = {"run_json": root / "run.json", "data": root / "data", "split_path": root / "split.parquet"}
    _label(root, r)
    stages.teacher(
        **common,
        labelled_path=d / "labelled.parquet",
        round=r,
        out=d / "teacher.pt",
        summary=d / "teacher.json",
        previous=None if r == 0 else prev / "teacher.pt",
        pseudo=None if r == 0 else prev / "pseudo_labels.parquet",
    )
    stages.embed(**common, checkpoint=d / "teacher.pt", out=d / "embeddings.parquet")
    stages.student(
        **common,
        labelled_path=d / "labelled.parquet",
        holdout_path=root / "holdout.parquet",
        teacher_path=d / "teacher.pt",
        round=r,
        out=d / "student.pt",
        summary=d / "student.json",
        predictions=d / "predictions.parquet",
    )
    stages.pseudo_label(
        **common,
        labelled_path=d / "labelled.parquet",
        checkpoint=d / "student.pt",
        out=d / "pseudo_labels.parquet",
        teacher_path=d / "teacher.pt",  # read only by a kernel student on the teacher's embeddings
    )
    if select:
        stages.select(
            root / "run.json", d / "embeddings.parquet", d / "labelled.parquet", r, d / "selected.parquet"
        )


@pytest.fixture(scope="module")
def two_rounds(run):
    stages.initial(run / "run.json", run / "data", run / "split.parquet", run / "initial.parquet")
    oracle.label_holdout(
        run / "split.parquet", run / "holdout.parquet", run / "holdout_failures.parquet",
        oracle.OracleInput(answer_key=run / "data" / "answer_key.parquet", run_json=run / "run.json"),
    )  # fmt: skip
    for r in (0, 1):
        _round(run, r)
    return run


def test_every_round_writes_its_files_and_labels_grow_by_batch(two_rounds):
    root = two_rounds
    split = read_split(root / "split.parquet")
    pool, held = set(split.mol_id[split.split == "pool"]), set(split.mol_id[split.split != "pool"])
    sizes = []
    for r in (0, 1):
        d = root / f"round_{r:02d}"
        for name in (
            "labelled.parquet",
            "teacher.pt",
            "teacher.json",
            "embeddings.parquet",
            "student.pt",
            "student.json",
            "predictions.parquet",
            "pseudo_labels.parquet",
            "selected.parquet",
        ):
            assert (d / name).exists(), name
        labelled = _ids(d / "labelled.parquet")
        assert labelled <= pool and not labelled & held
        sizes.append(len(labelled))
        # pseudo-labels cover exactly the unlabelled pool; picks are new, distinct pool molecules
        assert _ids(d / "pseudo_labels.parquet") == pool - labelled
        picks = pq.read_table(d / "selected.parquet").to_pandas()
        assert len(picks) == 8 and picks.mol_id.is_unique and set(picks.mol_id) <= pool - labelled
        assert picks.pick.tolist() == list(range(8)) and (np.diff(picks.distance) <= 1e-9).all()
        assert _ids(d / "embeddings.parquet") == pool
    assert sizes == [10, 18]
    round1 = pq.read_table(root / "round_01" / "labelled.parquet").to_pandas()
    assert set(round1.mol_id[round1.round_added == 1]) == _ids(root / "round_00" / "selected.parquet")


def test_labels_are_the_answer_key_values(two_rounds):
    root = two_rounds
    key = pq.read_table(root / "data" / "answer_key.parquet").to_pandas().set_index("mol_id")
    labelled = pq.read_table(root / "round_01" / "labelled.parquet").to_pandas().set_index("mol_id")
    np.testing.assert_array_equal(labelled[["homo", "u0"]], key.loc[labelled.index, ["homo", "u0"]])
    holdout = pq.read_table(root / "holdout.parquet").to_pandas()
    assert len(holdout) == 30 and set(holdout.split) == {"val", "test"}


def test_summaries_report_what_a_user_reads(two_rounds):
    student = json.loads((two_rounds / "round_01" / "student.json").read_text())
    assert student["labelled"] == 18 and set(student["test_mae"]) == {"homo", "u0"}
    assert all(np.isfinite(v) and v > 0 for v in student["test_mae"].values())
    teacher = json.loads((two_rounds / "round_01" / "teacher.json").read_text())
    assert teacher["warm_start"] and teacher["pseudo_labels"] and teacher["labelled"] == 18
    groups = teacher["property_groups"]  # L_p's groups as learnt: 18 molecules x 2 targets labelled
    assert groups["labels"] == {"weight": 1.0, "labels": 36} and groups["pseudo_labels"]["weight"] == 1.0
    assert groups["pseudo_labels"]["labels"] == 2 * teacher["unlabelled"]
    assert {"property", "atom_type", "distance", "clustering"} <= set(teacher["epochs"][0])
    # each val and test molecule's prediction and label: their errors are student.json's
    predictions = pq.read_table(two_rounds / "round_01" / "predictions.parquet").to_pandas()
    holdout = pq.read_table(two_rounds / "holdout.parquet").to_pandas().set_index("mol_id")
    assert predictions.mol_id.tolist() == predictions.mol_id.unique().tolist()
    assert sorted(predictions.mol_id) == sorted(holdout.index)
    assert (predictions.part.to_numpy() == holdout.loc[predictions.mol_id, "split"].to_numpy()).all()
    for target in ("homo", "u0"):
        np.testing.assert_array_equal(predictions[f"{target}_label"], holdout.loc[predictions.mol_id, target])
        for part in ("val", "test"):
            rows = predictions[predictions.part == part]
            error = (rows[target] - rows[f"{target}_label"]).abs().mean()
            assert error == pytest.approx(student[f"{part}_mae"][target], rel=1e-5)


def test_selection_is_reproducible(two_rounds, tmp_path):
    d = two_rounds / "round_01"
    stages.select(
        two_rounds / "run.json", d / "embeddings.parquet", d / "labelled.parquet", 1, tmp_path / "s.parquet"
    )
    again = pq.read_table(tmp_path / "s.parquet").to_pandas()
    assert again.equals(pq.read_table(d / "selected.parquet").to_pandas())


def test_molecules_the_oracle_failed_on_are_neither_picked_nor_centres(two_rounds, tmp_path):
    """Selection with failures = k-center over the pool without them (failed molecules leave the pool)."""
    from pipeline.selection.kcenter import k_center_greedy

    d = two_rounds / "round_01"
    first = pq.read_table(d / "selected.parquet")["mol_id"].to_pylist()
    failed = first[:3]  # the three molecules k-center wanted most
    failures = pa.table({"mol_id": failed, "reason": ["SCF did not converge"] * 3, "seconds": [1.0] * 3})
    write_table(failures, tmp_path / "failures.parquet")
    picks = stages.select(
        two_rounds / "run.json", d / "embeddings.parquet", d / "labelled.parquet", 1, tmp_path / "s.parquet",
        failures=tmp_path / "failures.parquet",
    )["mol_id"].to_pylist()  # fmt: skip
    assert len(picks) == len(first) and not set(picks) & set(failed)
    emb = pq.read_table(d / "embeddings.parquet")
    ids = np.array(emb["mol_id"].to_pylist())
    X = np.stack(emb["embedding"].to_pylist())
    keep = ~np.isin(ids, failed)
    labelled = np.isin(ids[keep], pq.read_table(d / "labelled.parquet")["mol_id"].to_pylist())
    assert picks == ids[keep][k_center_greedy(X[keep], labelled, len(first))].tolist()


def test_label_refuses_already_labelled_or_repeated_picks(two_rounds, tmp_path):
    root = two_rounds
    with pytest.raises(ValueError, match="already labelled"):
        oracle.label_round(
            root / "initial.parquet",
            1,
            tmp_path / "l.parquet",
            tmp_path / "f.parquet",
            oracle.OracleInput(answer_key=root / "data" / "answer_key.parquet", run_json=root / "run.json"),
            previous=root / "round_00" / "labelled.parquet",
        )


def test_checkpoint_of_another_run_config_is_refused(two_rounds, tmp_path):
    other = dict(SETTINGS, model={**SETTINGS["model"], "hidden": 32})
    write_json(other, tmp_path / "run.json")
    with pytest.raises(ValueError, match=r"different config \(differs at model\.hidden\)"):
        stages.embed(
            tmp_path / "run.json",
            two_rounds / "data",
            two_rounds / "split.parquet",
            two_rounds / "round_00" / "teacher.pt",
            tmp_path / "e.parquet",
        )


def test_a_checkpoint_of_another_round_or_run_is_refused_naming_both(two_rounds, tmp_path):
    """Round 0's teacher.pt copied over round 1's is refused by round 1's student, round 0's
    student.pt by round 1's pseudo-labels, and a checkpoint of another run by name; the legitimate
    reads (round 1's teacher warm-starting from round 0's: the two_rounds fixture) pass."""
    root = two_rounds
    common = {"run_json": root / "run.json", "data": root / "data", "split_path": root / "split.parquet"}
    d = root / "round_01"
    with pytest.raises(
        ValueError, match=r"teacher.pt: the checkpoint of round 0 of run 't', read as round 1's"
    ):
        stages.student(
            **common, labelled_path=d / "labelled.parquet", holdout_path=root / "holdout.parquet",
            teacher_path=root / "round_00" / "teacher.pt", round=1, out=tmp_path / "s.pt",
            summary=tmp_path / "s.json", predictions=tmp_path / "s.predictions.parquet",
        )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"student.pt: the checkpoint of round 0 of run 't', read as round 1's"
    ):
        stages.pseudo_label(
            **common, labelled_path=d / "labelled.parquet", checkpoint=root / "round_00" / "student.pt",
            out=tmp_path / "p.parquet",
        )  # fmt: skip
    assert not (tmp_path / "s.pt").exists() and not (tmp_path / "p.parquet").exists()
    copied = tmp_path / "round_01" / "teacher.pt"  # round 0's teacher where round 1's belongs
    copied.parent.mkdir()
    copied.write_bytes((root / "round_00" / "teacher.pt").read_bytes())
    with pytest.raises(ValueError, match=r"the checkpoint of round 0 of run 't', read as round 1's"):
        stages.embed(**common, checkpoint=copied, out=tmp_path / "e.parquet")
    write_json(dict(SETTINGS, run="u"), tmp_path / "run.json")
    with pytest.raises(ValueError, match=r"a checkpoint of run 't' \(round 1\), read by run 'u'"):
        stages.embed(
            tmp_path / "run.json", root / "data", root / "split.parquet", d / "teacher.pt", tmp_path / "e"
        )
    assert (
        load_checkpoint(d / "teacher.pt", RunConfig.read(root / "run.json").as_dict(), round=1)[1]["run"]
        == "t"
    )


def test_random_initial_picks_are_seeded(run, tmp_path):
    a = stages.initial(run / "run.json", run / "data", run / "split.parquet", tmp_path / "a.parquet")
    b = stages.initial(run / "run.json", run / "data", run / "split.parquet", tmp_path / "b.parquet")
    assert a.to_pandas().equals(b.to_pandas()) and len(a) == 10 and a["mol_id"].to_pylist() != []


def test_kcenter_initial_picks_on_an_untrained_teacher(run, tmp_path):
    write_json(dict(SETTINGS, initial_strategy="kcenter"), tmp_path / "run.json")
    a = stages.initial(tmp_path / "run.json", run / "data", run / "split.parquet", tmp_path / "a.parquet")
    b = stages.initial(tmp_path / "run.json", run / "data", run / "split.parquet", tmp_path / "b.parquet")
    picks = a.to_pandas()
    assert picks.equals(b.to_pandas()) and len(picks) == 10 and picks.mol_id.is_unique
    split = read_split(run / "split.parquet")
    assert set(picks.mol_id) <= set(split.mol_id[split.split == "pool"])
    # farthest-first from nothing: the first pick is infinitely far, the rest ever closer
    assert np.isinf(picks.distance[0]) and (np.diff(picks.distance[1:]) <= 1e-9).all()


def _start_run(run, root, settings: dict) -> None:
    """A run with ``settings`` on the fixture's data and split, in ``root``: run.json, the initial
    picks and the val/test labels."""
    (root / "data").symlink_to(run / "data")
    (root / "split.parquet").symlink_to(run / "split.parquet")
    write_json(settings, root / "run.json")
    stages.initial(root / "run.json", root / "data", root / "split.parquet", root / "initial.parquet")
    oracle.label_holdout(
        root / "split.parquet", root / "holdout.parquet", root / "holdout_failures.parquet",
        oracle.OracleInput(answer_key=root / "data" / "answer_key.parquet", run_json=root / "run.json"),
    )  # fmt: skip


def _round_0_of(run, root, settings: dict) -> None:
    """Round 0 (without its selection) of a run with ``settings`` on the fixture's data and split,
    in ``root``: initial picks, val/test labels, label, teacher, embed, student, pseudo_label."""
    _start_run(run, root, settings)
    _round(root, 0, select=False)


def test_a_diverging_teacher_stops_its_round_naming_run_round_epoch_and_settings(run, tmp_path):
    """train.lr: inf (a run.json the config check did not make) ruins the weights at the first
    step: the teacher job fails at epoch 0 and writes no checkpoint for the student to fine-tune."""
    settings = {**SETTINGS, "train": {**SETTINGS["train"], "lr": float("inf")}}
    with pytest.raises(
        RuntimeError, match=r"^run t, round 0, teacher epoch 0: the loss is not finite \(.*train\.lr inf"
    ):
        _round_0_of(run, tmp_path, settings)
    assert not (tmp_path / "round_00" / "teacher.pt").exists()


@pytest.mark.parametrize(
    ("strategy", "extra"),
    [
        ("qbc", {"committee": 2}),
        ("mc_dropout", {"mc_samples": 4, "model": {**SETTINGS["model"], "dropout": 0.2}}),
    ],
)
def test_uncertainty_strategies_select_through_the_stages(run, tmp_path, strategy, extra):
    root = tmp_path
    _round_0_of(run, root, {**SETTINGS, "strategy": strategy, **extra})
    # select with only the embeddings must refuse: these strategies need the graphs and a checkpoint
    d = root / "round_00"
    with pytest.raises(ValueError, match="needs --data, --split-path and --checkpoint"):
        stages.select(
            root / "run.json", d / "embeddings.parquet", d / "labelled.parquet", 0, tmp_path / "x.parquet"
        )
    checkpoint = d / ("teacher.pt" if strategy == "qbc" else "student.pt")
    kwargs = dict(
        data=root / "data",
        split_path=root / "split.parquet",
        checkpoint=checkpoint,
        student_summary=d / "student.json",
    )
    picks = stages.select(
        root / "run.json",
        d / "embeddings.parquet",
        d / "labelled.parquet",
        0,
        tmp_path / "a.parquet",
        **kwargs,
    ).to_pandas()
    again = stages.select(
        root / "run.json",
        d / "embeddings.parquet",
        d / "labelled.parquet",
        0,
        tmp_path / "b.parquet",
        **kwargs,
    ).to_pandas()
    labelled = _ids(d / "labelled.parquet")
    assert len(picks) == 8 and picks.mol_id.is_unique and not set(picks.mol_id) & labelled
    assert (np.diff(picks.distance) <= 0).all() and (picks.distance > 0).all()  # most uncertain first
    assert picks.equals(again)


def test_a_krr_student_predicts_and_pseudo_labels_without_the_teacher(run, tmp_path):
    """student_kind krr: student.json has the kernel's val/test MAE and its chosen grid point per
    target, student.pt is the kernel student, the pseudo-labels are its predictions for exactly the
    unlabelled pool, and no teacher is read."""
    from pipeline.learn.kernel_student import load_kernel_student

    settings = {
        **SETTINGS, "strategy": "random", "student_kind": "krr",
        "krr": {"sigmas": [4.0, 16.0], "lambdas": [1e-6, 1e-2]},
        "train": {**SETTINGS["train"], "teacher_epochs": 0},
    }  # fmt: skip
    _round_0_of(run, tmp_path, settings)
    d = tmp_path / "round_00"
    record = json.loads((d / "student.json").read_text())
    assert record["kind"] == "krr" and record["labelled"] == 10 and record["test_molecules"] == 15
    assert set(record["chosen"]) == {"homo", "u0"} and len(record["grid_val_mae"]["u0"]) == 4
    assert all(np.isfinite(v) for part in ("val_mae", "test_mae") for v in record[part].values())
    pseudo = pq.read_table(d / "pseudo_labels.parquet").to_pandas()
    pool = set(read_split(tmp_path / "split.parquet").query("split == 'pool'").mol_id)
    assert set(pseudo.mol_id) == pool - _ids(d / "labelled.parquet")
    student = load_kernel_student(d / "student.pt")
    ctx = context.RoundContext.read(tmp_path / "run.json", 0, tmp_path / "data", tmp_path / "split.parquet")
    index = ctx.graphs.index_of(list(pseudo.mol_id))
    np.testing.assert_allclose(pseudo[["homo", "u0"]].to_numpy(), student.predict(ctx.graphs, index))
    again = stages.student(
        run_json=tmp_path / "run.json", data=tmp_path / "data", split_path=tmp_path / "split.parquet",
        labelled_path=d / "labelled.parquet", holdout_path=tmp_path / "holdout.parquet", round=0,
        out=tmp_path / "again.pt", summary=tmp_path / "again.json",
        predictions=tmp_path / "again.predictions.parquet",
    )  # fmt: skip
    assert again["test_mae"] == record["test_mae"]  # no teacher given, the same result


def test_a_krr_student_on_the_teachers_embeddings_reads_that_teacher_only(run, tmp_path):
    """krr.features teacher: the kernel compares the round's teacher's node embeddings; student.json
    says so, the pseudo-labels are its predictions, and both jobs refuse to go on without that
    teacher or with another one (its checksum is in student.pt)."""
    from pipeline.learn.kernel_student import load_kernel_student

    settings = {
        **SETTINGS, "strategy": "random", "student_kind": "krr",
        "krr": {"sigmas": [2.0, 8.0], "lambdas": [1e-6, 1e-2], "features": "teacher"},
    }  # fmt: skip
    _round_0_of(run, tmp_path, settings)
    d = tmp_path / "round_00"
    record = json.loads((d / "student.json").read_text())
    assert record["kind"] == "krr" and record["features"] == "teacher"
    assert all(np.isfinite(v) for part in ("val_mae", "test_mae") for v in record[part].values())
    ctx = context.RoundContext.read(tmp_path / "run.json", 0, tmp_path / "data", tmp_path / "split.parquet")
    student = load_kernel_student(d / "student.pt", teacher=ctx.load(d / "teacher.pt"))
    pseudo = pq.read_table(d / "pseudo_labels.parquet").to_pandas()
    index = ctx.graphs.index_of(list(pseudo.mol_id))
    np.testing.assert_allclose(pseudo[["homo", "u0"]].to_numpy(), student.predict(ctx.graphs, index))
    common = {
        "run_json": tmp_path / "run.json",
        "data": tmp_path / "data",
        "split_path": tmp_path / "split.parquet",
    }
    with pytest.raises(ValueError, match="reads the round's teacher; give --teacher-path"):
        stages.student(
            **common, labelled_path=d / "labelled.parquet", holdout_path=tmp_path / "holdout.parquet",
            round=0, out=tmp_path / "again.pt", summary=tmp_path / "again.json",
            predictions=tmp_path / "again.predictions.parquet",
        )  # fmt: skip
    other = tmp_path / "other.pt"  # another teacher: the same run, other weights
    model = ctx.load(d / "teacher.pt")
    with torch.no_grad():
        model.representation.embedding.weight.mul_(2.0)
    save_checkpoint(other, model, ctx.cfg.as_dict(), 0)
    with pytest.raises(ValueError, match="fitted on the embeddings of another teacher"):
        stages.pseudo_label(
            **common, labelled_path=d / "labelled.parquet", checkpoint=d / "student.pt",
            out=tmp_path / "p.parquet", teacher_path=other,
        )  # fmt: skip


def test_krr_variance_picks_the_kernel_students_greedy_posterior_variance(run, tmp_path):
    """strategy krr_variance: the select stage reads the round's kernel student and picks, among the
    unlabelled pool, what its Gaussian process is least sure of (KernelStudent.posterior_picks)."""
    from pipeline.learn.kernel_student import load_kernel_student

    settings = {
        **SETTINGS, "strategy": "krr_variance", "student_kind": "krr",
        "krr": {"sigmas": [4.0], "lambdas": [1e-6]}, "train": {**SETTINGS["train"], "teacher_epochs": 0},
    }  # fmt: skip
    _round_0_of(run, tmp_path, settings)
    d = tmp_path / "round_00"
    common = {"data": tmp_path / "data", "split_path": tmp_path / "split.parquet"}
    args = (tmp_path / "run.json", d / "embeddings.parquet", d / "labelled.parquet", 0)
    with pytest.raises(ValueError, match="needs --data, --split-path and --checkpoint"):
        stages.select(*args, tmp_path / "x.parquet")
    picks = stages.select(*args, tmp_path / "a.parquet", checkpoint=d / "student.pt", **common).to_pandas()
    labelled = _ids(d / "labelled.parquet")
    assert len(picks) == 8 and picks.mol_id.is_unique and not set(picks.mol_id) & labelled
    assert (np.diff(picks.distance) <= 1e-12).all() and (picks.distance > 0).all()
    ctx = context.RoundContext.read(tmp_path / "run.json", 0, tmp_path / "data", tmp_path / "split.parquet")
    pool = ctx.where["pool"]
    candidates = pool[~np.isin(ctx.graphs.mol_id[pool], list(labelled))]
    order, scores = load_kernel_student(d / "student.pt").posterior_picks(ctx.graphs, candidates, 8)
    assert list(picks.mol_id) == list(ctx.graphs.mol_id[candidates[order]])
    np.testing.assert_allclose(picks.distance, scores)


def _baseline_file(root, shift):
    """baseline.parquet of every molecule of the fixture's split: the answer key's value of each
    target plus ``shift(target, key frame)`` (a stand-in for a cheap method, known exactly)."""
    key = pq.read_table(root / "data" / "answer_key.parquet").to_pandas().set_index("mol_id")
    ids = read_split(root / "split.parquet").mol_id.astype(str)
    rows = key.loc[ids]
    table = pa.table(
        {"mol_id": ids.to_numpy(), **{t: (rows[t] + shift(t, rows)).to_numpy() for t in ("homo", "u0")}}
    )
    write_table(table, root / "baseline.parquet")


def test_delta_learning_predicts_the_baseline_plus_the_learnt_difference(run, tmp_path):
    """With delta learning every learner fits label minus baseline and predicts baseline plus what it
    learnt: a baseline off by a constant (HOMO) and by per-element amounts (U0: extensive) is
    corrected exactly by the krr student (its mean and element references), so the errors and the
    pseudo-labels' errors vanish; a molecule without a baseline leaves the errors, counted."""
    from pipeline.data.graphs import load_graphs

    graphs = load_graphs(run / "data")
    n_carbon = {m: int((graphs.z[a:b] == 6).sum()) for m, a, b in zip(
        graphs.mol_id, graphs.atom_ptr[:-1].tolist(), graphs.atom_ptr[1:].tolist(), strict=True)}  # fmt: skip

    def shift(target, rows):
        return 0.3 if target == "homo" else np.array([-2.5 * n_carbon[m] for m in rows.index])

    delta = {"source": "xtb", "properties": {"homo": "homo", "u0": "energy"}}
    settings = {
        **SETTINGS, "strategy": "random", "student_kind": "krr", "delta": delta,
        "krr": {"sigmas": [4.0], "lambdas": [1e-6]}, "train": {**SETTINGS["train"], "teacher_epochs": 0},
    }  # fmt: skip
    root, d = tmp_path, tmp_path / "round_00"
    _start_run(run, root, settings)
    _baseline_file(root, shift)
    _label(root, 0)
    common = {"run_json": root / "run.json", "data": root / "data", "split_path": root / "split.parquet"}
    student = {
        **common,
        "labelled_path": d / "labelled.parquet",
        "holdout_path": root / "holdout.parquet",
        "round": 0,
    }
    with pytest.raises(ValueError, match="learns \\['homo', 'u0'\\] relative to xtb: give --baseline"):
        stages.student(
            **student,
            out=d / "student.pt",
            summary=d / "student.json",
            predictions=d / "student.predictions.parquet",
        )
    record = stages.student(
        **student,
        out=d / "student.pt",
        summary=d / "student.json",
        predictions=d / "student.predictions.parquet",
        baseline=root / "baseline.parquet",
    )
    assert record["delta"] == delta and record["baseline_missing"] == {"val": 0, "test": 0}
    assert all(v < 1e-6 for v in record["test_mae"].values()), record["test_mae"]
    pseudo = stages.pseudo_label(
        **common, labelled_path=d / "labelled.parquet", checkpoint=d / "student.pt",
        out=d / "pseudo_labels.parquet", baseline=root / "baseline.parquet",
    ).to_pandas().set_index("mol_id")  # fmt: skip
    key = pq.read_table(root / "data" / "answer_key.parquet").to_pandas().set_index("mol_id")
    np.testing.assert_allclose(pseudo.to_numpy(), key.loc[pseudo.index, ["homo", "u0"]].to_numpy(), atol=1e-6)
    # a test molecule the cheap method failed on: no prediction, out of the errors, counted
    table = pq.read_table(root / "baseline.parquet").to_pandas()
    test_id = read_split(root / "split.parquet").query("split == 'test'").mol_id.iloc[0]
    table.loc[table.mol_id == test_id, "homo"] = np.nan
    write_table(pa.Table.from_pandas(table, preserve_index=False), root / "baseline.parquet")
    again = stages.student(
        **student,
        out=d / "s2.pt",
        summary=d / "s2.json",
        predictions=d / "s2.predictions.parquet",
        baseline=root / "baseline.parquet",
    )
    assert again["baseline_missing"] == {"val": 0, "test": 1} and np.isfinite(again["test_mae"]["homo"])
    # predictions.parquet: the baseline plus the learnt difference, the labels in the target's units;
    # the molecule without a baseline is listed without a prediction
    first = pq.read_table(d / "student.predictions.parquet").to_pandas().set_index("mol_id")
    np.testing.assert_allclose(
        first[["homo", "u0"]].to_numpy(), key.loc[first.index, ["homo", "u0"]], atol=1e-6
    )
    np.testing.assert_allclose(
        first[["homo_label", "u0_label"]].to_numpy(), key.loc[first.index, ["homo", "u0"]]
    )
    second = pq.read_table(d / "s2.predictions.parquet").to_pandas().set_index("mol_id")
    assert np.isnan(second.loc[test_id, "homo"]) and second["homo"].isna().sum() == 1
    assert second.loc[test_id, "part"] == "test" and np.isfinite(second.loc[test_id, "u0"])


def test_a_network_teacher_and_student_learn_the_difference_to_the_baseline(run, tmp_path):
    """The network learns label minus baseline: the teacher's L_p starts from the differences (a
    baseline equal to the labels leaves nothing to learn but zero), and the pseudo-labels are the
    baseline plus the student's prediction."""
    settings = {**SETTINGS, "delta": {"source": "xtb", "properties": {"homo": "homo"}}}
    root, d = tmp_path, tmp_path / "round_00"
    (root / "no").mkdir()
    with pytest.raises(ValueError, match="give --baseline"):  # the stages refuse to forget it
        _round_0_of(run, root / "no", settings)
    _start_run(run, root, settings)
    _baseline_file(root, lambda t, rows: 0.0)  # the cheap method is exact for HOMO
    _label(root, 0)
    common = {"run_json": root / "run.json", "data": root / "data", "split_path": root / "split.parquet"}
    base = {"baseline": root / "baseline.parquet"}
    stages.teacher(**common, labelled_path=d / "labelled.parquet", round=0, out=d / "teacher.pt",
                   summary=d / "teacher.json", **base)  # fmt: skip
    stages.student(**common, labelled_path=d / "labelled.parquet", holdout_path=root / "holdout.parquet",
                   round=0, teacher_path=d / "teacher.pt", out=d / "student.pt", summary=d / "student.json",
                   predictions=d / "predictions.parquet", **base)  # fmt: skip
    model, _ = load_checkpoint(d / "student.pt")
    # the scaling was fitted on the differences: zero for HOMO (no spread: the floor), u0 unchanged
    assert abs(float(model.property_head.shift[0])) < 1e-6
    pseudo = stages.pseudo_label(**common, labelled_path=d / "labelled.parquet", checkpoint=d / "student.pt",
                                 out=d / "pseudo_labels.parquet", **base).to_pandas()  # fmt: skip
    ctx = context.RoundContext.read(root / "run.json", 0, root / "data", root / "split.parquet")
    index = ctx.graphs.index_of(list(pseudo.mol_id))
    from pipeline.learn.inference import infer

    pred, _ = infer(model, ctx.graphs, index)
    expected = pred[:, 0] + ctx.baseline(root / "baseline.parquet")[index, 0]
    np.testing.assert_allclose(pseudo.homo.to_numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(pseudo.u0.to_numpy(), pred[:, 1], rtol=1e-6)


def test_summaries_report_the_teachers_own_error_and_distance_bins(two_rounds):
    """student.json carries the teacher's own val/test MAE (ASGN-T without a run of its own), and the
    model's distance bins span the distances in the data, not [0, cutoff]."""
    student = json.loads((two_rounds / "round_00" / "student.json").read_text())
    assert set(student["teacher_test_mae"]) == {"homo", "u0"}
    assert student["teacher_test_mae"] != student["test_mae"]  # fine-tuning changed the model
    model, _ = load_checkpoint(two_rounds / "round_00" / "teacher.pt")
    assert 0.8 <= model.config.dist_min <= 1.0 and 5.0 <= model.config.dist_max <= 12.0


def test_pretraining_epochs_and_reinitialised_teachers(two_rounds, tmp_path):
    """Round 0 trains pretrain_epochs; with warm_start off a later teacher ignores the previous one
    and starts from a fresh initialisation."""
    train = {**SETTINGS["train"], "pretrain_epochs": 3, "warm_start": False}
    write_json(dict(SETTINGS, train=train), tmp_path / "run.json")
    common = {
        "run_json": tmp_path / "run.json",
        "data": two_rounds / "data",
        "split_path": two_rounds / "split.parquet",
    }
    r0 = stages.teacher(
        **common, labelled_path=two_rounds / "round_00" / "labelled.parquet", round=0,
        out=tmp_path / "t0.pt", summary=tmp_path / "t0.json",
    )  # fmt: skip
    assert len(r0["epochs"]) == 3
    kwargs = dict(
        labelled_path=two_rounds / "round_01" / "labelled.parquet", round=1, previous=tmp_path / "t0.pt"
    )
    r1 = stages.teacher(**common, **kwargs, out=tmp_path / "t1.pt", summary=tmp_path / "t1.json")
    assert len(r1["epochs"]) == 1 and r1["warm_start"] is False
    write_json(dict(SETTINGS, train={**train, "warm_start": True}), tmp_path / "warm.json")
    warm_common = {**common, "run_json": tmp_path / "warm.json"}
    stages.teacher(
        **warm_common, labelled_path=two_rounds / "round_00" / "labelled.parquet", round=0,
        out=tmp_path / "w0.pt", summary=tmp_path / "w0.json",
    )  # fmt: skip
    kwargs["previous"] = tmp_path / "w0.pt"
    warm = stages.teacher(**warm_common, **kwargs, out=tmp_path / "w1.pt", summary=tmp_path / "w1.json")
    assert warm["warm_start"] is True
    cold_weights = load_checkpoint(tmp_path / "t1.pt")[0].representation.embedding.weight
    warm_weights = load_checkpoint(tmp_path / "w1.pt")[0].representation.embedding.weight
    assert not np.allclose(cold_weights.detach().numpy(), warm_weights.detach().numpy())


def test_without_a_student_the_teacher_is_the_result(two_rounds, tmp_path):
    """student: false (ASGN-T): the round's error is the teacher's own, recorded once for both."""
    write_json(dict(SETTINGS, student=False), tmp_path / "run.json")
    common = {
        "run_json": tmp_path / "run.json",
        "data": two_rounds / "data",
        "split_path": two_rounds / "split.parquet",
    }
    labelled = two_rounds / "round_00" / "labelled.parquet"
    stages.teacher(
        **common, labelled_path=labelled, round=0, out=tmp_path / "t.pt", summary=tmp_path / "t.json"
    )
    record = stages.student(
        **common, labelled_path=labelled, holdout_path=two_rounds / "holdout.parquet",
        teacher_path=tmp_path / "t.pt", round=0, out=tmp_path / "s.pt", summary=tmp_path / "s.json",
        predictions=tmp_path / "s.predictions.parquet",
    )  # fmt: skip
    assert record["epochs"] == 0 and record["fine_tuned"] is False
    assert record["test_mae"] == record["teacher_test_mae"] and record["val_mae"] == record["teacher_val_mae"]
    assert all(np.isfinite(v) for v in record["test_mae"].values())


def test_a_round_reports_the_molecules_the_oracle_could_not_label(two_rounds, tmp_path):
    """Picks and val/test molecules without a value for a target (u0 here) are left out, and the
    round's summaries say how many: the labelled set and the test set never shrink silently."""
    root = two_rounds
    key = pq.read_table(root / "data" / "answer_key.parquet").to_pandas()
    split = read_split(root / "split.parquet")
    val, test = (split.mol_id[split.split == part].tolist() for part in ("val", "test"))
    picks = pq.read_table(root / "initial.parquet")["mol_id"].to_pylist()
    key.loc[key.mol_id.isin([val[0], test[0], test[1], picks[0]]), "u0"] = np.nan
    write_table(pa.Table.from_pandas(key, preserve_index=False), tmp_path / "answer_key.parquet")
    source = oracle.OracleInput(answer_key=tmp_path / "answer_key.parquet", run_json=root / "run.json")
    holdout, labelled = tmp_path / "holdout.parquet", tmp_path / "labelled.parquet"
    oracle.label_holdout(root / "split.parquet", holdout, tmp_path / "holdout_failures.parquet", source)
    oracle.label_round(root / "initial.parquet", 0, labelled, tmp_path / "label_failures.parquet", source)
    common = {"run_json": root / "run.json", "data": root / "data", "split_path": root / "split.parquet"}
    teacher = stages.teacher(
        **common, labelled_path=labelled, round=0, out=tmp_path / "t.pt", summary=tmp_path / "t.json"
    )
    student = stages.student(
        **common, labelled_path=labelled, holdout_path=holdout, teacher_path=tmp_path / "t.pt", round=0,
        out=tmp_path / "s.pt", summary=tmp_path / "s.json", predictions=tmp_path / "s.predictions.parquet",
    )  # fmt: skip
    assert teacher["labelled"] == student["labelled"] == 9  # 10 picks, one without u0
    assert teacher["label_failures"] == student["label_failures"] == 1
    assert student["holdout_failures"] == {"val": 1, "test": 2}
    assert (student["val_molecules"], student["test_molecules"]) == (14, 13)
    assert all(np.isfinite(v) for v in student["test_mae"].values())
    assert json.loads((tmp_path / "s.json").read_text())["holdout_failures"] == {"val": 1, "test": 2}


def _word(entropy):
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % 2**31)


@pytest.mark.parametrize(("seed", "round"), [(0, 0), (3, 1), (3, 2), (12345, 7)])
def test_derive_seed_keeps_the_seeds_runs_were_made_with(seed, round):
    """The formulas the stages used before derive_seed, inline: a run's picks and weights stay put."""
    teacher = _word([seed, round])
    assert context.derive_seed(seed, round, "teacher") == teacher
    ctx = context.RoundContext(RunConfig(run="t", targets=["homo"], seed=seed), round)
    assert ctx.seed("teacher") == teacher
    assert context.derive_seed(seed, round, "student") == teacher + 1
    assert context.derive_seed(seed, round, "select") == _word([seed, round, 1])
    assert context.derive_seed(seed, 0, "initial") == seed


def test_derive_seed_differs_by_purpose_and_round():
    seeds = [context.derive_seed(3, r, p) for r in range(4) for p in ("teacher", "student", "select")]
    seeds.append(context.derive_seed(3, 0, "initial"))
    assert len(set(seeds)) == len(seeds)
    # pinned: every run's initialisation, batch order and picks come from these (runs resumed or
    # compared across versions of the pipeline need the same numbers)
    pinned = [context.derive_seed(3, r, p) for r in range(2) for p in ("teacher", "student", "select")]
    assert pinned == [1576890651, 1576890652, 1431450334, 457190280, 457190281, 1273357869]
    assert context.derive_seed(3, 1, "select") != context.derive_seed(4, 1, "select")
    with pytest.raises(ValueError, match="unknown seed purpose 'pool'"):
        context.derive_seed(3, 0, "pool")
    with pytest.raises(ValueError, match="round 0's"):
        context.derive_seed(3, 1, "initial")


def test_a_run_copies_round_0_only_from_a_run_that_did_the_same(two_rounds, tmp_path):
    """share_round_0: every round-0 file but the selection, byte for byte, once the settings round 0
    reads, the split and the initial picks agree; a difference in any of them is refused by name."""
    from pipeline.plan.paths import ROUND_0_COPIED

    def share(settings, initial=two_rounds / "initial.parquet"):
        write_json(settings, tmp_path / "run.json")
        stages.share_round_0(
            tmp_path / "run.json", two_rounds / "run.json",
            two_rounds / "split.parquet", two_rounds / "split.parquet",
            initial, two_rounds / "initial.parquet",
            two_rounds / "round_00", tmp_path / "round_00",
        )  # fmt: skip

    # another strategy, batch, number of rounds and pseudo-label weight: round 0 does not read them
    train = {**SETTINGS["train"], "weights": {"pseudo": 0.1}}
    share({**SETTINGS, "run": "other", "strategy": "lcmd", "batch": 5, "rounds": 4, "train": train})
    source = two_rounds / "round_00"
    assert sorted(p.name for p in (tmp_path / "round_00").iterdir()) == sorted(ROUND_0_COPIED)
    for name in ROUND_0_COPIED:
        if name.endswith(".pt"):  # the same weights and generator states, now with this run's settings
            mine, theirs = (torch.load(d / name, weights_only=True) for d in (tmp_path / "round_00", source))
            assert mine["config"] == RunConfig.read(tmp_path / "run.json").as_dict() != theirs["config"]
            assert all(torch.equal(mine["state_dict"][k], v) for k, v in theirs["state_dict"].items())
            assert torch.equal(mine["rng"]["torch"], theirs["rng"]["torch"])
            assert (mine["run"], mine["round"]) == ("other", 0)  # later rounds read it as their own
            if name == "teacher.pt":
                load_checkpoint(tmp_path / "round_00" / name, mine["config"], round=0)
        else:
            assert (tmp_path / "round_00" / name).read_bytes() == (source / name).read_bytes(), name
    assert "selected.parquet" not in ROUND_0_COPIED

    with pytest.raises(ValueError, match="differ in seed, train.lr, which round 0 reads"):
        share({**SETTINGS, "seed": 4, "train": {**SETTINGS["train"], "lr": 0.01}})
    other = tmp_path / "initial.parquet"
    table = pq.read_table(two_rounds / "initial.parquet")
    write_table(table.slice(1), other)
    with pytest.raises(ValueError, match=f"{other} differs from .*initial.parquet"):
        share({**SETTINGS, "strategy": "random"}, initial=other)


def test_helping_properties_are_the_teachers_extra_outputs_and_not_the_students(two_rounds, tmp_path):
    """A run with helpers: the teacher learns them (its checkpoint has the outputs, teacher.json
    counts each helper's molecules), the student and its errors have the targets only, and a
    helpers file without helpers in the config (or the reverse) is refused."""
    root = two_rounds
    run_json = tmp_path / "run.json"
    write_json({**SETTINGS, "helpers": {"source": "dataset", "properties": ["lumo", "zpve"]}}, run_json)
    helpers = tmp_path / "helpers.parquet"
    cfg = RunConfig.read(run_json)
    oracle.helper_labels(
        root / "split.parquet",
        cfg.helpers,
        cfg.targets,
        helpers,
        answer_key=root / "data" / "answer_key.parquet",
    )
    common = {"run_json": run_json, "data": root / "data", "split_path": root / "split.parquet"}
    labelled = root / "round_00" / "labelled.parquet"
    record = stages.teacher(
        **common, labelled_path=labelled, round=0, out=tmp_path / "teacher.pt", summary=tmp_path / "t.json",
        helpers=helpers,
    )  # fmt: skip
    assert record["helpers"] == {"dataset_lumo": 60, "dataset_zpve": 60}  # every pool molecule
    teacher = torch.load(tmp_path / "teacher.pt", weights_only=True)
    assert teacher["model_config"]["targets"] == ["homo", "u0", "dataset_lumo", "dataset_zpve"]
    assert teacher["model_config"]["readout"]["dataset_zpve"] == "sum"  # zpve is extensive
    summary = stages.student(
        **common, labelled_path=labelled, holdout_path=root / "holdout.parquet",
        teacher_path=tmp_path / "teacher.pt", round=0, out=tmp_path / "student.pt",
        summary=tmp_path / "s.json", predictions=tmp_path / "s.predictions.parquet",
    )  # fmt: skip
    assert set(summary["test_mae"]) == set(summary["teacher_test_mae"]) == {"homo", "u0"}
    assert torch.load(tmp_path / "student.pt", weights_only=True)["model_config"]["targets"] == ["homo", "u0"]

    with pytest.raises(ValueError, match="has helping properties .* but no --helpers file"):
        stages.teacher(
            **common, labelled_path=labelled, round=0, out=tmp_path / "x.pt", summary=tmp_path / "x.json"
        )
    with pytest.raises(ValueError, match="has no helping properties"):
        stages.teacher(
            root / "run.json", root / "data", root / "split.parquet", labelled, 0, tmp_path / "x.pt",
            tmp_path / "x.json", helpers=helpers,
        )  # fmt: skip


@pytest.mark.parametrize("strategy", ["kcenter", "lcmd"])
def test_feature_strategies_pick_on_the_students_last_layer_gradients_when_asked(run, tmp_path, strategy):
    """selection_features: student_gradients: the select stage picks on the student's gradient
    features of the same pool (distinct, unlabelled, deterministic, not the embedding picks) and
    refuses to run without the student's checkpoint."""
    root = tmp_path
    _round_0_of(run, root, {**SETTINGS, "strategy": strategy, "selection_features": "student_gradients"})
    write_json({**SETTINGS, "strategy": strategy}, root / "embeddings.json")
    d = root / "round_00"
    args = (d / "embeddings.parquet", d / "labelled.parquet", 0)
    model = {"data": root / "data", "split_path": root / "split.parquet", "checkpoint": d / "student.pt"}
    on_embeddings = stages.select(root / "embeddings.json", *args, root / "e.parquet").to_pandas()
    picks = [
        stages.select(root / "run.json", *args, root / f"g{k}.parquet", **model).to_pandas() for k in range(2)
    ]
    labelled = _ids(d / "labelled.parquet")
    assert len(picks[0]) == 8 and picks[0].mol_id.is_unique and not set(picks[0].mol_id) & labelled
    assert picks[0].equals(picks[1])
    assert set(picks[0].mol_id) != set(on_embeddings.mol_id)
    with pytest.raises(ValueError, match="needs --data, --split-path and --checkpoint"):
        stages.select(root / "run.json", *args, root / "x.parquet")
