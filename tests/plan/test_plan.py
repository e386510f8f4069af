"""pipeline.plan.jobs, what every job is given, on resolved configs: the options a user sees in a job's
shell command, the inputs that make a job wait or rerun, and the resources of the oracle's jobs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from snakemake.utils import validate
from tiny import TINY_RUN

from pipeline.config.digest import file_sha256
from pipeline.config.settings import config_file_error, resolve
from pipeline.plan import ROUND_FILES, Plan
from pipeline.plan.paths import PATHS

REPO = Path(__file__).resolve().parents[2]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")

#: The tiny run without its network settings: the plan reads only these.
RUN = {k: TINY_RUN[k] for k in ("dataset", "split", "targets", "initial", "batch", "rounds")}


def make_plan(runs: dict, oracle: dict | None = None, root: Path = Path("."), **config) -> Plan:
    """The plan of a config with one QM9 dataset (its oracle as given) and these runs."""
    dataset = {"source": "qm9", "limit": 500, **({"oracle": oracle} if oracle else {})}
    config = copy.deepcopy({"datasets": {"qm9": dataset}, "runs": runs, **config})
    return Plan(resolve(config, lambda c: validate(c, schema=SCHEMA)), root=root)


def test_split_args_carry_the_budget_and_for_the_answer_key_the_targets():
    # the budget: initial 12 + (2 - 1) rounds x 10; the answer key must hold the targets
    args = make_plan({"r": RUN}).split_args("r")
    assert args == ["--val", "20", "--test", "20", "--seed", "0", "--budget", "22", "--targets", "homo"]
    pooled = make_plan({"r": {**RUN, "split": {"val": 20, "test": 20, "pool": 100}}}).split_args("r")
    assert pooled[pooled.index("--pool") + 1] == "100"
    # an oracle that computes labels has no answer key to check the targets against
    args = make_plan({"r": RUN}, oracle={"name": "pyscf"}).split_args("r")
    assert "--budget" in args and "--targets" not in args


def test_lookup_label_jobs_read_the_answer_key_and_build_on_the_previous_round():
    plan = make_plan({"r": RUN})
    first, second = plan.label_input("r", "00"), plan.label_input("r", "01")
    assert first == {
        "selected": "results/runs/r/initial.parquet",
        "run_json": "results/runs/r/run.json",
        "answer_key": "results/data/qm9/answer_key.parquet",
    }
    assert second["selected"] == "results/runs/r/round_00/selected.parquet"
    assert second["previous"] == "results/runs/r/round_00/labelled.parquet"
    args = plan.label_args("r", "01", second)
    assert args[:4] == ["--oracle", "answer_key", "--run-json", "results/runs/r/run.json"]
    assert "--answer-key" in args and args[-4:] == [
        "--previous",
        "results/runs/r/round_00/labelled.parquet",
        "--previous-failures",
        "results/runs/r/round_00/label_failures.parquet",
    ]
    assert plan.labels_checksum("r", "00") == [] and plan.labels_checksum("r") == []


def test_compute_oracle_jobs_get_chunks_threads_and_a_gpu_where_asked():
    oracle = {"name": "pyscf", "chunks": 2, "threads": 4, "mem_mb": 6000, "runtime": 90}
    plan = make_plan(
        {"r": RUN}, oracle={**oracle, "settings": {"device": "gpu"}, "ranges": {"homo": [-30, 10]}}
    )
    assert plan.oracle_job("r") == {"threads": 4, "mem_mb": 6000, "runtime": 90, "gpu": 1}
    assert make_plan({"r": RUN}, oracle=oracle).oracle_job("r")["gpu"] == 0
    assert (
        make_plan({"r": RUN}, oracle={"name": "xtb", "settings": {"device": "gpu"}}).oracle_job("r")["gpu"]
        == 0
    )

    args = plan.label_chunk_args("r", "001", threads=4)
    assert args[:6] == ["--oracle", "pyscf", "--chunk", "1", "--chunks", "2"]
    assert json.loads(args[args.index("--settings") + 1]) == {"device": "gpu", "threads": 4}

    holdout = plan.holdout_input("r")
    parts = [f"results/runs/r/holdout_parts/chunk-{c}" for c in ("000", "001")]
    assert holdout["parts"] == [f"{p}.parquet" for p in parts]
    assert holdout["part_failures"] == [f"{p}.failures.parquet" for p in parts]
    assert "answer_key" not in holdout and "answer_key" not in plan.label_input("r", "01")
    args = plan.holdout_args("r", holdout)
    assert json.loads(args[args.index("--ranges") + 1]) == {"homo": [-30, 10]}
    featurise = plan.featurise_args("qm9")  # the dataset's own values are checked against the same ranges
    assert json.loads(featurise[featurise.index("--ranges") + 1]) == {"homo": [-30, 10]}
    assert args[args.index("--parts") + 1 : args.index("--part-failures")] == holdout["parts"]
    assert plan.label_input("r", "01")["parts"][0] == "results/runs/r/round_01/label_parts/chunk-000.parquet"


def test_the_external_labels_file_becomes_an_input_and_its_checksum_an_option_once_it_exists(tmp_path):
    plan = make_plan({"lab": RUN}, oracle={"name": "external"}, root=tmp_path)
    before = plan.label_input("lab", "00")
    assert "labels" not in before and plan.labels_checksum("lab", "00") == []
    assert before["manifest"] == "results/data/qm9/manifest.json"  # the request is written from the graphs
    args = plan.label_args("lab", "00", before)
    folder = "results/runs/lab/round_00"
    assert args[args.index("--labels-file") :] == [
        "--labels-file",
        f"{folder}/labels.csv",
        "--request-xyz",
        f"{folder}/to_label.xyz",
        "--request-csv",
        f"{folder}/to_label.csv",
    ]

    labels = tmp_path / folder / "labels.csv"
    labels.parent.mkdir(parents=True)
    labels.write_text("mol_id,homo [eV]\na,-7.0\n")
    assert plan.label_input("lab", "00")["labels"] == f"{folder}/labels.csv"
    assert plan.labels_checksum("lab", "00") == ["--labels-sha256", file_sha256(labels)]
    # the other round and the val/test labels still wait for their own files
    assert "labels" not in plan.label_input("lab", "01") and "labels" not in plan.holdout_input("lab")
    assert plan.external_files("lab")["labels"] == "results/runs/lab/holdout_labels.csv"
    (tmp_path / "results/runs/lab/holdout_labels.csv").write_text("mol_id,homo [eV]\nb,-6.0\n")
    assert plan.holdout_input("lab")["labels"] == "results/runs/lab/holdout_labels.csv"
    assert plan.labels_checksum("lab")[0] == "--labels-sha256"


def test_select_inputs_and_options_are_what_the_strategy_needs():
    runs = {
        "kc": RUN,
        "rand": {**RUN, "strategy": "random"},
        "mcd": {**RUN, "strategy": "mc_dropout", "model": {"dropout": 0.1}},
        "qbc": {**RUN, "strategy": "qbc"},
    }
    plan = make_plan(runs)
    embeddings_only = {"run_json", "embeddings", "labelled_path", "failures"}
    for run in ("kc", "rand"):
        inputs = plan.stage_input("select", run, "00")
        assert set(inputs) == embeddings_only
        assert plan.stage_options("select", run, "00", inputs, {"out": "picks.parquet"}) == [
            "--run-json", f"results/runs/{run}/run.json",
            "--embeddings", f"results/runs/{run}/round_00/embeddings.parquet",
            "--labelled-path", f"results/runs/{run}/round_00/labelled.parquet",
            "--round", "00",
            "--failures", f"results/runs/{run}/round_00/label_failures.parquet",
            "--out", "picks.parquet",
        ]  # fmt: skip
    mcd = plan.stage_input("select", "mcd", "01")
    assert mcd["checkpoint"] == "results/runs/mcd/round_01/student.pt" and "student_summary" not in mcd
    assert mcd["split_path"] == "results/runs/mcd/split.parquet" and "graphs" in mcd
    qbc = plan.stage_input("select", "qbc", "01")
    assert qbc["checkpoint"] == "results/runs/qbc/round_01/teacher.pt"
    args = plan.stage_options("select", "qbc", "01", qbc, {"out": "picks.parquet"})
    assert args[args.index("--data") : -2] == [
        "--data",
        "results/data/qm9",
        "--split-path",
        "results/runs/qbc/split.parquet",
        "--checkpoint",
        "results/runs/qbc/round_01/teacher.pt",
        "--student-summary",
        "results/runs/qbc/round_01/student.json",
    ]
    assert [plan.select_gpus(run) for run in runs] == [1, 0, 1, 1]


def test_initial_gpu_and_teacher_inputs_follow_the_run_settings():
    plan = make_plan(
        {
            "asgn": {**RUN, "initial": {"size": 12, "strategy": "kcenter"}},
            "cold": {**RUN, "pseudo_labels": False, "train": {"warm_start": False}},
        }
    )
    assert plan.initial_gpus("asgn") == 1 and plan.initial_gpus("cold") == 0
    assert "previous" not in plan.stage_input("teacher", "asgn", "00")
    warm = plan.stage_input("teacher", "asgn", "01")
    assert warm["previous"] == "results/runs/asgn/round_00/teacher.pt"
    assert warm["pseudo"] == "results/runs/asgn/round_00/pseudo_labels.parquet"
    outputs = {"out": "t.pt", "summary": "t.json"}
    assert plan.stage_options("teacher", "asgn", "01", warm, outputs) == [
        "--run-json", "results/runs/asgn/run.json",
        "--data", "results/data/qm9",
        "--split-path", "results/runs/asgn/split.parquet",
        "--labelled-path", "results/runs/asgn/round_01/labelled.parquet",
        "--round", "01",
        "--previous", warm["previous"],
        "--pseudo", warm["pseudo"],
        "--out", "t.pt",
        "--summary", "t.json",
    ]  # fmt: skip
    cold = plan.stage_input("teacher", "cold", "01")
    assert "previous" not in cold and "pseudo" not in cold
    assert "--previous" not in plan.stage_options("teacher", "cold", "01", cold, outputs)
    with pytest.raises(ValueError, match="the teacher rule gives no summary for --summary"):
        plan.stage_options("teacher", "cold", "01", cold, {"out": "t.pt"})


def test_a_krr_student_reads_no_teacher_and_holds_no_gpu():
    plan = make_plan({"net": RUN, "krr": {**RUN, "student_kind": "krr"}})
    assert [plan.student_gpus(run) for run in ("net", "krr")] == [1, 0]
    assert "teacher_path" in plan.stage_input("student", "net", "00")
    krr = plan.stage_input("student", "krr", "00")
    assert "teacher_path" not in krr
    outputs = {"out": "s.pt", "summary": "s.json", "predictions": "p.parquet"}
    options = plan.stage_options("student", "krr", "00", krr, outputs)
    assert "--teacher-path" not in options
    assert options[-6:] == ["--out", "s.pt", "--summary", "s.json", "--predictions", "p.parquet"]


def test_a_krr_student_on_teacher_features_and_its_pseudo_labels_read_the_teacher():
    features = {"features": "teacher"}
    plan = make_plan({"net": RUN, "krr": {**RUN, "student_kind": "krr", "krr": features}})
    outputs = {"out": "s.pt", "summary": "s.json", "predictions": "p.parquet"}
    for run in ("net", "krr"):
        assert plan.stage_input("student", run, "01")["teacher_path"] == PATHS.of(
            "teacher", run=run, round="01"
        )
    student = plan.stage_input("student", "krr", "01")
    assert "--teacher-path" in plan.stage_options("student", "krr", "01", student, outputs)
    pseudo = plan.stage_input("pseudo_label", "krr", "01")
    assert pseudo["teacher_path"] == PATHS.of("teacher", run="krr", round="01")
    options = plan.stage_options("pseudo-label", "krr", "01", pseudo, {"out": "p.parquet"})
    assert options[options.index("--teacher-path") + 1] == pseudo["teacher_path"]
    assert "teacher_path" not in plan.stage_input("pseudo_label", "net", "01")  # the network needs none


def test_krr_variance_reads_the_kernel_student_and_needs_one():
    krr = {**RUN, "student_kind": "krr", "strategy": "krr_variance"}
    plan = make_plan({"fchl": krr, "emb": {**krr, "krr": {"features": "teacher"}}})
    for run in ("fchl", "emb"):
        inputs = plan.stage_input("select", run, "01")
        assert inputs["checkpoint"] == PATHS.of("student", run=run, round="01")
        assert ("teacher_path" in inputs) == (run == "emb")
    options = plan.stage_options("select", "emb", "01", inputs, {"out": "s.parquet"})
    assert options[options.index("--teacher-path") + 1] == PATHS.of("teacher", run="emb", round="01")
    assert plan.select_gpus("fchl") == 0
    with pytest.raises(
        ValueError, match=r"runs\.net\.strategy: krr_variance reads the kernel student.*student_kind: krr"
    ):
        make_plan({"net": {**RUN, "strategy": "krr_variance"}})


def test_delta_runs_read_their_baseline_made_from_the_datasets_xtb_chunks():
    delta = {"source": "xtb", "properties": {"homo": "homo"}}
    plan = make_plan({"d": {**RUN, "delta": delta, "strategy": "qbc"}, "plain": RUN})
    assert plan.delta("plain") is None and plan.delta("d") == delta
    inputs = plan.baseline_input("d")
    assert inputs["parts"] == plan.helper_chunk_files("qm9", "xtb")["parts"]  # shared with helpers
    for stage, round in (("teacher", "01"), ("student", "00"), ("pseudo-label", "00"), ("select", "00")):
        assert plan.stage_input(stage, "d", round)["baseline"] == "results/runs/d/baseline.parquet", stage
        assert "baseline" not in plan.stage_input(stage, "plain", round), stage
    with pytest.raises(ValueError, match="learns no target relative to a cheap method"):
        plan.baseline_input("plain")
    for source, bad, message in (
        ("xtb", {"lumo": "homo"}, r"delta.properties: \['lumo'\] are not targets of the run"),
        ("xtb", {"homo": "u0"}, r"the xtb oracle does not compute \['u0'\]"),
        ("ani1x", {"homo": "homo"}, r"the ani1x oracle does not compute \['homo'\]"),  # energy only
    ):
        with pytest.raises(ValueError, match=message):
            make_plan({"d": {**RUN, "delta": {"source": source, "properties": bad}}})
    u0 = {**RUN, "targets": ["homo", "u0"], "delta": {"source": "ani1ccx", "properties": {"u0": "energy"}}}
    ani = make_plan({"d": u0})
    assert ani.baseline_input("d")["parts"] == ani.helper_chunk_files("qm9", "ani1ccx")["parts"]
    with pytest.raises(ValueError, match=r"ani1x oracle .* cannot label .* \(it labels no target: it is"):
        make_plan({"r": RUN}, oracle={"name": "ani1x"})  # a potential's energy is no QM9 target


def test_targets_and_reports_cover_every_run_round_and_benchmark():
    benchmark = {"base": RUN, "methods": {"asgn": {}, "random": {"strategy": "random"}}, "seeds": [0, 1]}
    plan = make_plan({"r": RUN}, benchmarks={"b": benchmark})
    runs = ["r", "b-asgn-s0", "b-asgn-s1", "b-random-s0", "b-random-s1"]
    assert list(plan.resolved.runs) == runs and plan.rounds("r") == ["00", "01"]
    targets = plan.final_output()
    assert len(targets) == len(set(targets)) == 1 + 5 * 2 * (len(ROUND_FILES) + 1) + 5 * 3 + 2 + 5
    assert "results/runs/b-random-s1/round_01/embedding_map.png" in targets
    assert plan.benchmark_input("b")["curves"] == [f"results/runs/{r}/learning_curve.csv" for r in runs[1:]]
    args = plan.benchmark_args("b", plan.benchmark_input("b"))
    assert args.count("--curve") == args.count("--run-json") == 4 and args[-2:] == ["--baseline", "random"]
    assert plan.learning_curve_args("r") == [
        "--student",
        "r=results/runs/r/round_00/student.json",
        "--student",
        "r=results/runs/r/round_01/student.json",
    ]
    assert len(plan.learning_curve_args()) == 2 * len(plan.all_students()) == 2 * 5 * 2
    assert plan.round_table_input("r")["teachers"] == [
        f"results/runs/r/round_0{k}/teacher.json" for k in (0, 1)
    ]
    assert plan.featurise_parts("qm9")["answer_keys"] == [
        "results/data/qm9/parts/shard-00000.answer_key.parquet"
    ]
    assert plan.featurise_args("qm9")[-2:] == ["--limit", "500"]
    assert json.loads(plan.run_config_json("r"))["targets"] == ["homo"]


def test_a_key_given_twice_is_named_with_its_file_and_lines(tmp_path):
    good, twice = tmp_path / "good.yaml", tmp_path / "twice.yaml"
    good.write_text("runs: {}\n")
    twice.write_text("runs:\n  r:\n    batch: 3\n    batch: 4\n")
    assert config_file_error([str(good), str(tmp_path / "missing.yaml")]) is None
    assert config_file_error([str(good), str(twice)]) == (
        f"invalid config {twice}: a key is given twice, and only the last would count: "
        "line 4: key 'batch' in runs.r (first at line 3)"
    )


def test_a_config_file_that_is_not_valid_yaml_is_named_with_its_line_and_column(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("runs:\n  r:\n    batch: [1, 2\n    seed: 3\n")
    assert config_file_error([str(broken)]) == (
        f"invalid config {broken}: not valid YAML: line 4, column 9: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 3)"
    )
    tabs = tmp_path / "tabs.yaml"
    tabs.write_text("runs:\n\tr: {}\n")
    assert config_file_error([str(tabs)]).startswith(
        f"invalid config {tabs}: not valid YAML: line 2, column 1: "
    )


def test_benchmark_runs_that_differ_only_in_selection_share_round_0():
    """The first method of a seed trains round 0; later methods that differ from it only in what
    round 0 does not read copy it; other settings, other seeds and share_round_0: false do not."""
    bench = {
        "base": {**RUN, "strategy": "kcenter"},
        "seeds": [0, 1],
        "baseline": "kc",
        "methods": {
            "kc": {},
            "rnd": {"strategy": "random", "batch": 5, "rounds": 3},
            "lcmd": {"strategy": "lcmd"},
            "sup": {"losses": {"reconstruction": 0.0}},
            "w0": {"losses": {"pseudo": 0.0}, "pseudo_labels": False},  # round 0 has no pseudo-labels
        },
    }
    plan = make_plan({}, benchmarks={"b": bench})
    assert plan.resolved.round_0_from == {
        "b-rnd-s0": "b-kc-s0",
        "b-rnd-s1": "b-kc-s1",
        "b-lcmd-s0": "b-kc-s0",
        "b-lcmd-s1": "b-kc-s1",
        "b-w0-s0": "b-kc-s0",
        "b-w0-s1": "b-kc-s1",
    }
    assert plan.round_0_source("b-kc-s0") is None and plan.round_0_source("b-sup-s0") is None
    inputs = plan.stage_input("share-round-0", "b-lcmd-s1")
    assert inputs["copied"][0] == "results/runs/b-kc-s1/round_00/labelled.parquet"
    assert "results/runs/b-kc-s1/round_00/selected.parquet" not in inputs["copied"]
    assert (inputs["initial"], inputs["source_initial"]) == (
        "results/runs/b-lcmd-s1/initial.parquet",
        "results/runs/b-kc-s1/initial.parquet",
    )
    assert plan.stage_options("share-round-0", "b-lcmd-s1", None, inputs, {})[-4:] == [
        "--source-round", "results/runs/b-kc-s1/round_00", "--out-round", "results/runs/b-lcmd-s1/round_00",
    ]  # fmt: skip
    # later rounds are the run's own and build on its copy
    assert (
        plan.stage_input("teacher", "b-lcmd-s1", "01")["previous"]
        == "results/runs/b-lcmd-s1/round_00/teacher.pt"
    )
    assert (
        plan.stage_input("select", "b-lcmd-s1", "00")["embeddings"]
        == "results/runs/b-lcmd-s1/round_00/embeddings.parquet"
    )
    assert make_plan({}, benchmarks={"b": {**bench, "share_round_0": False}}).resolved.round_0_from == {}
    assert make_plan({"kc": RUN, "rnd": {**RUN, "strategy": "random"}}).resolved.round_0_from == {}


def test_helping_properties_are_computed_once_per_dataset_and_given_to_every_teacher():
    """helpers.source xtb: the dataset's helper_chunks chunk jobs (every molecule, default single
    point on one thread) feed each run's helpers.parquet, which every round's teacher reads;
    helpers.source dataset reads the answer key instead; a run without helpers has no such input."""
    xtb = {**RUN, "helpers": {"source": "xtb", "properties": ["homo", "lumo"]}}
    key = {**RUN, "helpers": {"source": "dataset", "properties": ["lumo"]}}
    plan = make_plan({"x": xtb, "k": key, "none": RUN})
    chunks = plan.helper_chunk_files("qm9", "xtb")
    assert chunks["parts"] == [f"results/data/qm9/helpers/xtb/chunk-{c:03d}.parquet" for c in range(8)]
    assert plan.helper_chunk_args("qm9", "xtb", "003") == [
        "--data", "results/data/qm9", "--oracle", "xtb", "--chunk", "3", "--chunks", "8", "--settings", "{}",
    ]  # fmt: skip
    inputs = plan.helper_input("x")
    assert inputs["parts"] == chunks["parts"] and inputs["split"] == "results/runs/x/split.parquet"
    assert plan.helper_args(inputs)[:2] == ["--parts", chunks["parts"][0]]
    assert plan.helper_args(plan.helper_input("k")) == ["--answer-key", "results/data/qm9/answer_key.parquet"]
    for run in ("x", "k"):
        for r in ("00", "01"):
            teacher = plan.stage_input("teacher", run, r)
            assert teacher["helpers"] == f"results/runs/{run}/helpers.parquet"
            options = plan.stage_options("teacher", run, r, teacher, {"out": "t.pt", "summary": "t.json"})
            assert options[-6:-4] == ["--helpers", teacher["helpers"]]
    assert "helpers" not in plan.stage_input("teacher", "none", "01") and plan.helpers("none") is None


def test_student_gradient_features_give_the_select_job_the_students_checkpoint():
    """selection_features: student_gradients: lcmd's select job reads the round's student.pt (and
    the graphs); with the default embeddings it reads the embeddings only; a strategy that picks on
    no feature map refuses the setting before any job."""
    plan = make_plan(
        {
            "g": {**RUN, "strategy": "lcmd", "selection_features": "student_gradients"},
            "e": {**RUN, "strategy": "lcmd"},
        }
    )
    inputs = plan.stage_input("select", "g", "01")
    assert inputs["checkpoint"] == "results/runs/g/round_01/student.pt" and "graphs" in inputs
    options = plan.stage_options("select", "g", "01", inputs, {"out": "s.parquet"})
    assert options[-4:-2] == ["--checkpoint", "results/runs/g/round_01/student.pt"]
    assert "checkpoint" not in plan.stage_input("select", "e", "01")
    with pytest.raises(ValueError, match="selection_features: strategy random picks on no feature map"):
        make_plan({"r": {**RUN, "strategy": "random", "selection_features": "student_gradients"}})


def test_the_bonds_setting_reaches_the_featurise_job_and_its_default_lives_once():
    """``bonds.missing`` (a molecule whose bonds cannot be perceived): 'reject' is on the featurise
    command line; the default, 'keep', is left out as ``duplicates``' is, and is the same in the
    schema, the featuriser's settings and the CLI."""
    import yaml

    from pipeline.cli import build_parser
    from pipeline.config.settings import DEFAULT_MISSING_BONDS
    from pipeline.data.featurise import FeaturiseSettings

    def featurise_args(bonds: dict | None) -> list[str]:
        dataset = {"source": "qm9", **({"bonds": bonds} if bonds is not None else {})}
        config = {"datasets": {"qm9": dataset}, "runs": {"r": RUN}}
        return Plan(resolve(config, lambda c: validate(c, schema=SCHEMA))).featurise_args("qm9")

    args = featurise_args({"missing": "reject"})
    assert args[args.index("--missing-bonds") + 1] == "reject"
    assert "--missing-bonds" not in featurise_args(None) and "--missing-bonds" not in featurise_args({})
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    missing = schema["$defs"]["dataset"]["properties"]["bonds"]["properties"]["missing"]
    parsed = build_parser().parse_args(["featurise", "--source", "qm9", "--out", "x"])
    assert missing["default"] == DEFAULT_MISSING_BONDS == FeaturiseSettings("qm9").missing_bonds
    assert parsed.missing_bonds == DEFAULT_MISSING_BONDS
    with pytest.raises(ValueError, match="missing_bonds must be one of"):
        FeaturiseSettings("qm9", missing_bonds="drop").validate()
