"""Benchmark of methods over seeds: Table 1, label efficiency, Figure 3 and the benchmark-table command.

The synthetic result set: methods asgn, random and qbc, seeds 0-2, targets u0 and mu. Each method's
mean curve over seeds is MEAN below; seed s adds (s - 1) * SPREAD, so at every round the mean over
seeds is exactly MEAN and the sample std exactly SPREAD. asgn and random reach 500 labels, qbc only
400, so the final budget common to all runs is 400. Validation MAEs are 1.1 x the test MAEs; the
teacher's own test MAEs 2 x, its validation MAEs 2.2 x. Each run's method and seed are its settings'
(run.json), RUN_METHODS here: run names are never parsed.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.config.settings import RunConfig
from pipeline.reports.benchmark import collect, read_kernel_methods, read_run_methods, write_csv
from pipeline.reports.figures import write_figure
from pipeline.reports.markdown import write_markdown
from pipeline.reports.runs import LEARNING_CURVE_COLUMNS
from pipeline.reports.stats import (
    PAIRED_COLUMNS,
    default_threshold,
    final_budget_table,
    label_efficiency,
    label_savings,
    labels_to_reach,
    mean_curve,
    paired_differences,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = [100, 200, 300, 400, 500]
METHODS = ["asgn", "random", "qbc"]
SEEDS = [0, 1, 2]
RUN_METHODS = {f"{m}-s{s}": (m, s) for m in METHODS for s in SEEDS}  # run -> (method, seed), as in run.json
MEAN = {
    ("asgn", "u0"): [0.4, 0.2, 0.05, 0.04, 0.03],  # crosses random's 0.1 halfway (in log) at 250
    ("random", "u0"): [0.8, 0.4, 0.2, 0.1, 0.08],  # threshold: 0.1 at 400
    ("qbc", "u0"): [0.8, 0.5, 0.3, 0.2],  # never reaches 0.1
    ("asgn", "mu"): [1.2, 1.0, 0.8, 0.6, 0.4],  # reaches random's 0.5 only after 400: a negative saving
    ("random", "mu"): [1.0, 0.8, 0.6, 0.5, 0.45],
    ("qbc", "mu"): [1.0, 0.8, 0.4, 0.3],
}
SPREAD = {"asgn": 0.005, "random": 0.01, "qbc": 0.02}


def curves() -> pd.DataFrame:
    """Concatenated learning-curve tables of the 9 runs, in pipeline.reports.runs's format."""
    rows = []
    for method in METHODS:
        for seed in SEEDS:
            for r, n in enumerate(LABELS[: len(MEAN[method, "u0"])]):
                for target in ("mu", "u0"):
                    test = MEAN[method, target][r] + (seed - 1) * SPREAD[method]
                    rows.append((f"{method}-s{seed}", r, n, target, 1.1 * test, test, 2.2 * test, 2 * test))
    return pd.DataFrame(rows, columns=LEARNING_CURVE_COLUMNS)


@pytest.fixture
def df() -> pd.DataFrame:
    return collect(curves(), RUN_METHODS)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)], capture_output=True, text=True
    )


# --------------------------------------------------------------------------------------------------
# run settings and collect


def _write_run_json(folder, run, method, seed):
    """A run's settings as {folder}/{run}/run.json (a benchmark run where ``method`` is given); its path."""
    cfg = RunConfig(
        run=run, targets=["mu", "u0"], seed=seed, benchmark="b" if method else None, method=method
    )
    path = folder / run / "run.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg.as_dict()), encoding="utf-8")
    return path


def test_read_run_methods_takes_method_and_seed_from_each_runs_settings(tmp_path):
    paths = [_write_run_json(tmp_path, run, m, seed) for run, (m, seed) in RUN_METHODS.items()]
    methods = read_run_methods(paths)
    assert methods == RUN_METHODS and list(methods) == list(RUN_METHODS)  # in the order given
    assert read_run_methods([str(paths[0])]) == {"asgn-s0": ("asgn", 0)}  # str paths too
    # the settings say it, whatever the run's name: hyphens in the method, a name without the seed
    other = _write_run_json(tmp_path, "run-x", "asgn-no-cluster", 12)
    assert read_run_methods([other]) == {"run-x": ("asgn-no-cluster", 12)}
    assert read_run_methods([]) == {}
    # a run that is no benchmark's: an error naming its file
    plain = _write_run_json(tmp_path / "plain", "single", None, 3)
    with pytest.raises(ValueError, match=f"^{re.escape(str(plain))}: run 'single' is no benchmark's run"):
        read_run_methods([*paths, plain])
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**json.loads(paths[0].read_text()), "method": ""}), encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{re.escape(str(empty))}: run 'asgn-s0' is no benchmark's run"):
        read_run_methods([empty])
    # settings are read strictly: an unknown key is refused
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({**json.loads(paths[0].read_text()), "methods": "asgn"}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown run config keys \['methods'\]"):
        read_run_methods([typo])


def test_collect_adds_method_and_seed(df):
    assert list(df.columns[:4]) == ["run", "method", "seed", "round"]
    assert list(dict.fromkeys(df["method"])) == METHODS  # order of first appearance
    row = df[df["run"] == "qbc-s2"].iloc[0]
    assert (row["method"], row["seed"]) == ("qbc", 2)
    assert df["seed"].dtype == np.int64


def test_collect_names_a_bad_run_and_catches_a_curve_given_twice():
    bad = curves()
    bad.loc[bad["run"] == "qbc-s2", "run"] = "qbc-final"
    with pytest.raises(ValueError, match="run 'qbc-final' has no method and seed: give its run.json"):
        collect(bad, RUN_METHODS)
    with pytest.raises(ValueError, match="'asgn-s0' has round 0 .* more than once"):
        collect(pd.concat([curves(), curves()[curves()["run"] == "asgn-s0"]]), RUN_METHODS)
    clash = curves()
    clash.loc[clash["run"] == "asgn-s1", "run"] = "asgn-s01"
    clash.loc[clash["run"] == "asgn-s0", "run"] = "asgn-s1"
    with pytest.raises(ValueError, match="'asgn-s1' and 'asgn-s01' are both method 'asgn', seed 1"):
        collect(clash, {**RUN_METHODS, "asgn-s01": ("asgn", 1)})


def named(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, tuple[str, int]]]:
    """The curves with runs renamed run-{k} (not {method}-s{seed}), and the mapping back."""
    names = {run: f"run-{k}" for k, run in enumerate(dict.fromkeys(table["run"]))}
    methods = {new: RUN_METHODS[old] for old, new in names.items()}
    return table.assign(run=table["run"].map(names)), methods


def test_collect_takes_method_and_seed_from_a_mapping(df):
    table, methods = named(curves())
    mapped = collect(table, methods={**methods, "unfinished-run": ("asgn", 7)})  # extra names: fine
    assert list(dict.fromkeys(mapped["method"])) == METHODS
    pd.testing.assert_frame_equal(mapped.drop(columns="run"), df.drop(columns="run"))
    row = mapped[mapped["run"] == "run-8"].iloc[0]
    assert (row["method"], row["seed"]) == ("qbc", 2)
    # names need not look like {method}-s{seed}; every run must be in the mapping
    del methods["run-4"]
    with pytest.raises(ValueError, match="run 'run-4' has no method and seed"):
        collect(table, methods=methods)
    methods["run-4"] = ("asgn", 1)  # run-1 is asgn seed 1 too
    with pytest.raises(ValueError, match="'run-1' and 'run-4' are both method 'asgn', seed 1"):
        collect(table, methods=methods)


def test_curves_without_teacher_or_val_columns_still_collect():
    old = curves().drop(columns=["val_mae", "teacher_val_mae", "teacher_test_mae"])
    df = collect(old, RUN_METHODS)
    assert df[["val_mae", "teacher_val_mae", "teacher_test_mae"]].isna().all().all()
    assert final_budget_table(df)["u0_mean"][0] == pytest.approx(0.04)


def test_a_derived_method_is_its_source_evaluated_by_the_teacher(df):
    both = collect(curves(), RUN_METHODS, derived={"asgn-t": "asgn"})
    assert list(dict.fromkeys(both["method"])) == ["asgn", "asgn-t", "random", "qbc"]  # after its source
    assert both["run"].nunique() == 9  # no new runs: ASGN-T is read off ASGN's
    derived = both[both["method"] == "asgn-t"].reset_index(drop=True)
    source = df[df["method"] == "asgn"].reset_index(drop=True)
    assert list(derived["run"]) == list(source["run"])
    assert list(derived["seed"]) == list(source["seed"])
    assert list(derived["labelled"]) == list(source["labelled"])
    assert np.allclose(derived["test_mae"], source["teacher_test_mae"])
    assert np.allclose(derived["val_mae"], source["teacher_val_mae"])
    pd.testing.assert_frame_equal(both[both["method"] != "asgn-t"].reset_index(drop=True), df)

    table = final_budget_table(both).set_index("method")
    assert table.loc["asgn-t", "seeds"] == 3
    assert table.loc["asgn-t", "u0_mean"] == pytest.approx(2 * MEAN["asgn", "u0"][3])
    assert table.loc["asgn-t", "u0_std"] == pytest.approx(2 * SPREAD["asgn"])
    assert table.loc["asgn-t", "u0_val_mean"] == pytest.approx(2.2 * MEAN["asgn", "u0"][3])
    assert table.loc["asgn", "u0_mean"] == pytest.approx(MEAN["asgn", "u0"][3])  # the source unchanged


def test_derived_method_errors():
    with pytest.raises(ValueError, match="source method 'asgn-x' of derived method 'asgn-t' has no runs"):
        collect(curves(), RUN_METHODS, derived={"asgn-t": "asgn-x"})
    with pytest.raises(ValueError, match="derived method 'random' has runs of its own"):
        collect(curves(), RUN_METHODS, derived={"random": "asgn"})
    no_teacher = curves().drop(columns=["teacher_val_mae", "teacher_test_mae"])
    with pytest.raises(
        ValueError, match="source method 'asgn' of derived method 'asgn-t' has no teacher MAEs"
    ):
        collect(no_teacher, RUN_METHODS, derived={"asgn-t": "asgn"})
    # a curve given twice is still caught, and derived rows (same run, round, target) are not it
    with pytest.raises(ValueError, match="'asgn-s0' has round 0 .* more than once"):
        collect(
            pd.concat([curves(), curves()[curves()["run"] == "asgn-s0"]]),
            RUN_METHODS,
            derived={"asgn-t": "asgn"},
        )


def test_rounds_without_a_teacher_mae_are_missing_from_the_derived_method_only():
    table = curves()
    table.loc[(table["run"] == "asgn-s0") & (table["labelled"] == 400), "teacher_test_mae"] = math.nan
    both = collect(table, RUN_METHODS, derived={"asgn-t": "asgn"})
    assert 400 not in set(both[(both["method"] == "asgn-t") & (both["seed"] == 0)]["labelled"])
    assert 400 in set(both[(both["method"] == "asgn") & (both["seed"] == 0)]["labelled"])
    with pytest.raises(
        ValueError, match=r"budget 400 labels is missing from runs of method\(s\) asgn-t \(asgn-s0\)$"
    ):
        final_budget_table(both, budget=400)
    assert set(final_budget_table(both)["labelled"]) == {300}  # the largest every method reached


# --------------------------------------------------------------------------------------------------
# Table 1


def test_table_is_mean_and_std_over_seeds_at_the_largest_common_budget(df):
    table = final_budget_table(df)
    assert list(table["method"]) == METHODS
    assert set(table["labelled"]) == {400}  # qbc stops at 400, though asgn and random reach 500
    assert list(table["seeds"]) == [3, 3, 3]
    assert list(table.columns[:5]) == ["method", "seeds", "labelled", "mu", "u0"]  # canonical order
    for k, method in enumerate(METHODS):
        for target in ("u0", "mu"):
            assert table[f"{target}_mean"][k] == pytest.approx(MEAN[method, target][3])
            assert table[f"{target}_std"][k] == pytest.approx(SPREAD[method])
            assert table[f"{target}_n_seeds"][k] == 3
    assert list(table["u0"]) == ["0.0400 ± 0.0050", "0.100 ± 0.010", "0.200 ± 0.020"]


def test_table_has_the_validation_mae_beside_the_test_mae(df):
    table = final_budget_table(df)
    for k, method in enumerate(METHODS):
        for target in ("u0", "mu"):
            assert table[f"{target}_val_mean"][k] == pytest.approx(1.1 * MEAN[method, target][3])
            assert table[f"{target}_val_std"][k] == pytest.approx(1.1 * SPREAD[method])
    assert final_budget_table(df[df["seed"] == 0])["u0_val_std"].isna().all()


def test_an_explicit_budget_is_used_and_one_a_method_lacks_is_an_error_naming_it(df):
    table = final_budget_table(df, budget=200)
    assert set(table["labelled"]) == {200}
    assert table["u0_mean"][1] == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"budget 500 .* method\(s\) qbc \(qbc-s0, qbc-s1, qbc-s2\)$"):
        final_budget_table(df, budget=500)
    with pytest.raises(ValueError, match="asgn .*random .*qbc"):
        final_budget_table(df, budget=450)


def test_a_single_seed_has_no_std(df):
    table = final_budget_table(df[df["seed"] == 0])
    assert list(table["seeds"]) == [1, 1, 1]
    assert table["u0_std"].isna().all()
    assert table["u0"][0] == "0.0350"  # mean alone, 3 significant figures


# --------------------------------------------------------------------------------------------------
# label efficiency


def test_labels_to_reach_interpolates_log_mae_between_rounds(df):
    # asgn: 0.2 at 200, 0.05 at 300; 0.1 is halfway in log(MAE), so 250 labels (linear MAE: 266.7)
    labels = labels_to_reach(df, "u0", 0.1)
    assert labels["asgn"] == pytest.approx(250.0)
    assert labels["random"] == pytest.approx(400.0)  # reached exactly at a round
    assert math.isnan(labels["qbc"])  # 0.2 at its last round: not reached
    assert list(labels.index) == METHODS
    # qbc mu: 0.8 at 200, 0.4 at 300
    expected = 200 + 100 * math.log(0.8 / 0.5) / math.log(0.8 / 0.4)
    assert labels_to_reach(df, "mu", 0.5)["qbc"] == pytest.approx(expected)
    # already reached at the first round: that round's labels, nothing extrapolated
    assert list(labels_to_reach(df, "u0", 1.0)) == [100.0, 100.0, 100.0]
    assert labels_to_reach(df, "u0", 0.001).isna().all()


def test_mean_curve_keeps_only_labels_every_seed_reached(df):
    shorter = df[~((df["run"] == "asgn-s2") & (df["labelled"] == 500))]
    curve = mean_curve(shorter, "u0")
    assert list(curve[curve["method"] == "asgn"]["labelled"]) == [100, 200, 300, 400]
    assert list(curve[curve["method"] == "random"]["labelled"]) == LABELS


def test_savings_against_random_at_its_final_mae(df):
    assert default_threshold(df, "u0") == pytest.approx(0.1)
    # u0: asgn needs 250 labels where random needs 400
    assert label_savings(df, "u0") == pytest.approx(1 - 250 / 400)
    # mu: asgn is 0.6 at 400 and 0.4 at 500, so it needs more labels than random (400): negative
    more = 400 + 100 * math.log(0.6 / 0.5) / math.log(0.6 / 0.4)
    assert label_savings(df, "mu") == pytest.approx(1 - more / 400)
    assert label_savings(df, "mu") < 0
    assert math.isnan(label_savings(df, "u0", method="qbc"))
    # an explicit threshold; qbc's mean u0 is 0.2 at 400 up to rounding, random's 0.2 at 300
    assert label_savings(df, "u0", mae=0.2, method="qbc") == pytest.approx(1 - 400 / 300)
    qbc, rnd = (
        n0 + 100 * math.log(m0 / 0.25) / math.log(m0 / m1)
        for n0, m0, m1 in [(300, 0.3, 0.2), (200, 0.4, 0.2)]
    )
    assert label_savings(df, "u0", mae=0.25, method="qbc") == pytest.approx(1 - qbc / rnd)
    with pytest.raises(ValueError, match="baseline 'supervised' has no runs"):
        label_savings(df, "u0", baseline="supervised")


def test_label_efficiency_table(df):
    eff = label_efficiency(df)
    assert list(eff.columns) == ["target", "threshold", "baseline", "method", "labels", "saving"]
    assert list(eff["target"]) == ["mu"] * 3 + ["u0"] * 3
    u0 = eff[eff["target"] == "u0"].set_index("method")
    assert u0["threshold"].tolist() == pytest.approx([0.1] * 3)
    assert u0.loc["asgn", "saving"] == pytest.approx(0.375)
    assert u0.loc["random", "saving"] == 0.0
    assert math.isnan(u0.loc["qbc", "labels"]) and math.isnan(u0.loc["qbc", "saving"])


# --------------------------------------------------------------------------------------------------
# paired differences

T_975_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom


def small_benchmark() -> pd.DataFrame:
    """u0 at 100 labels: asgn and random of seeds 0-2, random also seed 3, qbc seed 0 only."""
    test = {
        "random": [0.10, 0.12, 0.11, 0.50],
        "asgn": [0.07, 0.08, 0.09],
        "qbc": [0.13],
    }
    rows, methods = [], {}
    for method, maes in test.items():
        for seed, mae in enumerate(maes):
            val = mae + (0.005 if method == "asgn" else 0.0)
            rows.append((f"{method}-s{seed}", 0, 100, "u0", val, mae, math.nan, math.nan))
            methods[f"{method}-s{seed}"] = (method, seed)
    return collect(pd.DataFrame(rows, columns=LEARNING_CURVE_COLUMNS), methods)


def test_paired_differences_by_hand():
    paired = paired_differences(small_benchmark())
    assert list(paired.columns) == PAIRED_COLUMNS
    assert list(paired["method"]) == ["asgn", "qbc"]
    assert set(paired["baseline"]) == {"random"} and set(paired["labelled"]) == {100}
    asgn = paired.set_index("method").loc["asgn"]
    # pairs: seeds 0-2 (random's seed 3 has no asgn partner); diffs -0.03, -0.04, -0.02
    assert asgn["n_pairs"] == 3
    assert asgn["mean_diff"] == pytest.approx(-0.03)
    assert asgn["std_diff"] == pytest.approx(0.01)
    half = T_975_2 * 0.01 / math.sqrt(3)
    assert (asgn["ci_low"], asgn["ci_high"]) == pytest.approx((-0.03 - half, -0.03 + half))
    ratios = [0.07 / 0.10, 0.08 / 0.12, 0.09 / 0.11]
    mean = sum(ratios) / 3
    std = math.sqrt(sum((r - mean) ** 2 for r in ratios) / 2)
    assert asgn["ratio"] == pytest.approx(mean)
    half = T_975_2 * std / math.sqrt(3)
    assert (asgn["ratio_ci_low"], asgn["ratio_ci_high"]) == pytest.approx((mean - half, mean + half))
    # validation: asgn's val MAE is its test MAE + 0.005, random's its test MAE
    half = T_975_2 * 0.01 / math.sqrt(3)
    assert asgn["val_mean_diff"] == pytest.approx(-0.025)
    assert (asgn["val_ci_low"], asgn["val_ci_high"]) == pytest.approx((-0.025 - half, -0.025 + half))
    # one pair: a difference, but no spread and no interval
    qbc = paired.set_index("method").loc["qbc"]
    assert qbc["n_pairs"] == 1 and qbc["mean_diff"] == pytest.approx(0.03)
    assert qbc["ratio"] == pytest.approx(1.3)
    assert qbc[["std_diff", "ci_low", "ci_high", "ratio_ci_low", "ratio_ci_high", "val_ci_low"]].isna().all()


def test_paired_confidence_level_and_budget(df):
    wide = paired_differences(small_benchmark(), confidence=0.99).set_index("method").loc["asgn"]
    half = 9.924843200918276 * 0.01 / math.sqrt(3)  # t 99.5%, 2 degrees of freedom
    assert (wide["ci_low"], wide["ci_high"]) == pytest.approx((-0.03 - half, -0.03 + half))
    paired = paired_differences(df)
    assert list(paired["target"]) == ["mu", "mu", "u0", "u0"]
    assert set(paired["labelled"]) == {400} and set(paired["n_pairs"]) == {3}
    u0 = paired[paired["target"] == "u0"].set_index("method")
    # u0 at 400: asgn 0.04 + (s - 1) 0.005, random 0.1 + (s - 1) 0.01 -> diffs -0.06 - (s - 1) 0.005
    assert u0.loc["asgn", "mean_diff"] == pytest.approx(-0.06)
    assert u0.loc["asgn", "std_diff"] == pytest.approx(0.005)
    at_200 = paired_differences(df, budget=200).set_index(["target", "method"])
    assert at_200.loc[("u0", "asgn"), "mean_diff"] == pytest.approx(0.2 - 0.4)
    with pytest.raises(ValueError, match=r"budget 500 .* qbc"):
        paired_differences(df, budget=500)


def test_paired_differences_need_the_baseline(df):
    with pytest.raises(ValueError, match="baseline 'supervised' has no runs"):
        paired_differences(df, baseline="supervised")
    with pytest.raises(ValueError, match="confidence"):
        paired_differences(df, confidence=95)


# --------------------------------------------------------------------------------------------------
# writing


def test_markdown_has_mean_std_cells_units_and_label_efficiency(df, tmp_path):
    table, eff = final_budget_table(df), label_efficiency(df)
    path = tmp_path / "out" / "benchmark.md"
    text = write_markdown(table, eff, path)
    assert path.read_text(encoding="utf-8") == text
    assert "# Benchmark: test MAE at 400 labels" in text
    assert "| method | seeds | mu (D) | u0 (eV) |" in text
    assert "| asgn | 3 | 0.600 ± 0.0050 |" not in text  # one precision per cell
    assert "| asgn | 3 | 0.6000 ± 0.0050 | **0.0400 ± 0.0050** |" in text  # best mean in bold
    assert "| random | 3 | 0.500 ± 0.010 | 0.100 ± 0.010 |" in text
    assert "| qbc | 3 | **0.300 ± 0.020** | 0.200 ± 0.020 |" in text
    # the validation table, after the test table, in the same layout: settings are chosen on it
    test_part, validation = text.split("## Validation MAE")
    assert "0.660" not in test_part
    assert "chosen on this table, never on the test MAE" in validation
    assert "| method | seeds | mu (D) | u0 (eV) |" in validation
    assert "| asgn | 3 | 0.6600 ± 0.0055 | **0.0440 ± 0.0055** |" in validation
    assert "| random | 3 | 0.550 ± 0.011 | 0.110 ± 0.011 |" in validation
    assert "| qbc | 3 | **0.330 ± 0.022** | 0.220 ± 0.022 |" in validation
    assert "## Paired difference" not in text  # not given
    efficiency = text.split("## Label efficiency")[1]
    assert (
        "| target | threshold | asgn | random | qbc | asgn: saved vs random | qbc: saved vs random |"
        in efficiency
    )
    assert "| u0 (eV) | 0.100 | 250 | 400 | not reached | 38% | — |" in efficiency
    assert "| mu (D) | 0.500 | 445 | 400 | 268 | −11% | 33% |" in efficiency
    assert sorted(p.name for p in path.parent.iterdir()) == ["benchmark.md"]  # no temporary left


def test_markdown_without_a_baseline_says_so(df, tmp_path):
    text = write_markdown(final_budget_table(df), None, tmp_path / "b.md")
    assert "Not computed" in text and "±" in text
    empty = pd.DataFrame(columns=PAIRED_COLUMNS)
    text = write_markdown(final_budget_table(df), None, tmp_path / "b.md", paired=empty)
    paired = text.split("## Paired difference to the baseline")[1].split("## Label efficiency")[0]
    assert "Not computed" in paired


def test_markdown_paired_section_gives_differences_and_ratios_with_intervals(tmp_path):
    bench = small_benchmark()
    table, paired = final_budget_table(bench), paired_differences(bench)
    text = write_markdown(table, None, tmp_path / "b.md", paired=paired)
    section = text.split("## Paired difference to random")[1].split("## Label efficiency")[0]
    assert text.index("## Validation MAE") < text.index("## Paired difference to random")
    assert "same seed share the data split and the initial labelled molecules" in section
    assert "An interval that excludes 0 is a difference at 95%" in section
    assert "| target | method | pairs | difference [95% CI] | ratio [95% CI] |" in section
    # -0.03 ± 4.3027 * 0.01 / sqrt(3) = -0.03 ± 0.0248; ratio 0.728 ± 0.198
    assert "| u0 (eV) | asgn | 3 | −0.0300 [−0.0548, −0.0052] | 0.728 [0.530, 0.926] |" in section
    assert "| u0 (eV) | qbc | 1 | 0.0300 [—] | 1.30 [—] |" in section  # one pair: no interval


def test_the_kernel_students_methods_are_read_from_the_runs_settings(tmp_path):
    paths = []
    for method, kind in (("asgn", "network"), ("krr", "krr"), ("krr_delta", "krr")):
        cfg = RunConfig(
            run=f"b-{method}-s0", targets=["homo"], student_kind=kind, benchmark="b", method=method
        )
        paths.append(tmp_path / f"{method}.json")
        paths[-1].write_text(json.dumps(cfg.as_dict()))
    assert read_kernel_methods(paths) == {"krr", "krr_delta"}


def test_csv_round_trips(df, tmp_path):
    table = final_budget_table(df)
    write_csv(table, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), table)


def test_figure_has_a_mean_line_and_std_band_per_method_per_panel(df, tmp_path):
    png = tmp_path / "fig" / "benchmark.png"
    fig = write_figure(df, png, dashed=["random"])
    assert png.read_bytes().startswith(PNG_MAGIC)
    axes = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert list(axes) == ["mu", "u0"]
    for target, ax in axes.items():
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == [f"{m} (3 seeds)" for m in METHODS]
        assert len(ax.collections) == len(METHODS)  # one ±std band per method
        for line, method in zip(lines, METHODS, strict=True):
            n = len(MEAN[method, target])
            assert list(line.get_xdata()) == LABELS[:n]
            assert np.allclose(line.get_ydata(), MEAN[method, target])
        # the band of asgn spans mean ± std
        band = ax.collections[0].get_paths()[0].vertices
        assert band[:, 1].min() == pytest.approx(min(MEAN["asgn", target]) - SPREAD["asgn"])
        assert band[:, 1].max() == pytest.approx(max(MEAN["asgn", target]) + SPREAD["asgn"])
        # same colour for a method on every panel
        assert [line.get_color() for line in lines] == ["C0", "C1", "C2"]
        # log-log, the kernel baselines dashed
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert [line.get_linestyle() for line in lines] == ["--" if m == "random" else "-" for m in METHODS]
    assert axes["u0"].get_ylabel() == "test MAE (eV)" and axes["mu"].get_ylabel() == "test MAE (D)"
    only = write_figure(df, tmp_path / "u0.png", targets=["u0"])
    assert [ax.get_title() for ax in only.axes if ax.get_visible()] == ["u0"]


# --------------------------------------------------------------------------------------------------
# the command


def _write_curves(table, root):
    """Each run's rows as results/runs/{run}/learning_curve.csv under ``root``; ["--curve", path, ...]."""
    args = []
    for run, rows in table.groupby("run", sort=False):
        path = root / "runs" / run / "learning_curve.csv"
        path.parent.mkdir(parents=True)
        rows.to_csv(path, index=False)
        args += ["--curve", path]
    return args


def _write_run_jsons(methods, root):
    """Each run's settings as results/runs/{run}/run.json under ``root``; ["--run-json", path, ...]."""
    args = []
    for run, (method, seed) in methods.items():
        args += ["--run-json", _write_run_json(root / "runs", run, method, seed)]
    return args


def test_benchmark_table_command(tmp_path):
    table = curves()
    paths = _write_curves(table, tmp_path)
    settings = _write_run_jsons(RUN_METHODS, tmp_path)
    out = tmp_path / "bench"
    args = [
        "benchmark-table",
        *paths,
        *settings,
        "--csv",
        out / "t.csv",
        "--markdown",
        out / "t.md",
        "--png",
        out / "t.png",
    ]
    r = run_cli(*args, "--efficiency-csv", out / "e.csv")
    assert r.returncode == 0, r.stderr
    assert "3 methods, 9 runs, at 400 labels" in r.stderr
    written = pd.read_csv(out / "t.csv")
    assert list(written["method"]) == METHODS and list(written["labelled"]) == [400] * 3
    assert "0.0400 ± 0.0050" in (out / "t.md").read_text(encoding="utf-8")
    assert (out / "t.png").read_bytes().startswith(PNG_MAGIC)
    assert pd.read_csv(out / "e.csv")["saving"].notna().sum() == 5

    r = run_cli(*args, "--budget", 500)
    assert r.returncode == 2 and "qbc" in r.stderr and "Traceback" not in r.stderr


def test_benchmark_table_command_with_run_jsons_derived_method_and_paired_csv(tmp_path):
    table, methods = named(curves())
    paths = _write_curves(table, tmp_path)
    out = tmp_path / "bench"
    outputs = ["--csv", out / "t.csv", "--markdown", out / "t.md", "--png", out / "t.png"]
    mapping = _write_run_jsons(methods, tmp_path)  # run-{k}: only the settings say the method and seed
    r = run_cli(
        "benchmark-table",
        *paths,
        *outputs,
        *mapping,
        *("--derived", "asgn-t=asgn", "--paired-csv", out / "paired.csv"),
    )
    assert r.returncode == 0, r.stderr
    assert "4 methods, 9 runs, at 400 labels" in r.stderr
    written = pd.read_csv(out / "t.csv")
    assert list(written["method"]) == ["asgn", "asgn-t", "random", "qbc"]
    assert written["u0_mean"][1] == pytest.approx(2 * MEAN["asgn", "u0"][3])  # the teacher's own MAE
    assert written["u0_val_mean"][0] == pytest.approx(1.1 * MEAN["asgn", "u0"][3])
    paired = pd.read_csv(out / "paired.csv")
    assert list(paired.columns) == PAIRED_COLUMNS
    assert list(paired["method"]) == ["asgn", "asgn-t", "qbc"] * 2
    u0 = paired[paired["target"] == "u0"].set_index("method")
    assert u0.loc["asgn", "mean_diff"] == pytest.approx(-0.06)
    assert u0.loc["asgn-t", "mean_diff"] == pytest.approx(0.08 - 0.1)
    text = (out / "t.md").read_text(encoding="utf-8")
    assert "## Paired difference to random" in text and "| u0 (eV) | asgn | 3 | −0.0600 [" in text

    # every run needs its run.json, which must name a method; --derived's format is checked
    r = run_cli("benchmark-table", *paths, *outputs, *mapping[:-2])
    assert r.returncode == 2 and "run 'run-8' has no method and seed" in r.stderr
    assert "Traceback" not in r.stderr
    plain = _write_run_json(tmp_path / "plain", "run-0", None, 0)
    r = run_cli("benchmark-table", *paths, *outputs, *mapping[2:], "--run-json", plain)
    assert r.returncode == 2 and f"{plain}: run 'run-0' is no benchmark's run" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("benchmark-table", *paths, *outputs, *mapping, "--derived", "asgn-t")
    assert r.returncode == 2 and "expected NEW=SOURCE" in r.stderr
    r = run_cli("benchmark-table", *paths, *outputs, *mapping, "--derived", "asgn-t=nope")
    assert r.returncode == 2 and "source method 'nope'" in r.stderr and "Traceback" not in r.stderr


def test_benchmark_table_command_without_the_baseline_writes_an_empty_paired_csv(tmp_path):
    table = curves()
    table = table[~table["run"].str.startswith("random")]
    path = tmp_path / "lc.csv"
    table.to_csv(path, index=False)
    settings = _write_run_jsons({run: RUN_METHODS[run] for run in dict.fromkeys(table["run"])}, tmp_path)
    out = tmp_path / "bench"
    r = run_cli(
        "benchmark-table",
        *("--curve", path, *settings),
        *("--csv", out / "t.csv", "--markdown", out / "t.md", "--png", out / "t.png"),
        *("--paired-csv", out / "paired.csv"),
    )
    assert r.returncode == 0, r.stderr
    assert "paired differences skipped" in r.stderr
    paired = pd.read_csv(out / "paired.csv")
    assert paired.empty and list(paired.columns) == PAIRED_COLUMNS
    assert "## Paired difference to the baseline\n\nNot computed" in (out / "t.md").read_text(
        encoding="utf-8"
    )
