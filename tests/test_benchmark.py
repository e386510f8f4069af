"""Benchmark of methods over seeds: Table 1, label efficiency, Figure 3 and the benchmark-table command.

The synthetic result set: methods asgn, random and qbc, seeds 0-2, targets u0 and mu. Each method's
mean curve over seeds is MEAN below; seed s adds (s - 1) * SPREAD, so at every round the mean over
seeds is exactly MEAN and the sample std exactly SPREAD. asgn and random reach 500 labels, qbc only
400, so the final budget common to all runs is 400.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.benchmark import (
    collect,
    default_threshold,
    final_budget_table,
    label_efficiency,
    label_savings,
    labels_to_reach,
    mean_curve,
    parse_run_name,
    write_csv,
    write_figure,
    write_markdown,
)
from pipeline.report import LEARNING_CURVE_COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = [100, 200, 300, 400, 500]
METHODS = ["asgn", "random", "qbc"]
SEEDS = [0, 1, 2]
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
    """Concatenated learning-curve tables of the 9 runs, in pipeline.report's format."""
    rows = []
    for method in METHODS:
        for seed in SEEDS:
            for r, n in enumerate(LABELS[: len(MEAN[method, "u0"])]):
                for target in ("mu", "u0"):
                    test = MEAN[method, target][r] + (seed - 1) * SPREAD[method]
                    rows.append((f"{method}-s{seed}", r, n, target, 1.1 * test, test))
    return pd.DataFrame(rows, columns=LEARNING_CURVE_COLUMNS)


@pytest.fixture
def df() -> pd.DataFrame:
    return collect(curves())


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)], capture_output=True, text=True
    )


# --------------------------------------------------------------------------------------------------
# run names and collect


def test_run_names_parse_into_method_and_seed():
    assert parse_run_name("asgn-s0") == ("asgn", 0)
    assert parse_run_name("random-s12") == ("random", 12)
    assert parse_run_name("asgn-no-cluster-s3") == ("asgn-no-cluster", 3)  # hyphens in the method
    for bad in ("asgn", "asgn-s", "-s0", "asgn_s0", "asgn-sx", "asgn-s0-final"):
        with pytest.raises(ValueError, match=f"run '{bad}'.*{{method}}-s{{seed}}"):
            parse_run_name(bad)


def test_collect_adds_method_and_seed(df):
    assert list(df.columns[:4]) == ["run", "method", "seed", "round"]
    assert list(dict.fromkeys(df["method"])) == METHODS  # order of first appearance
    row = df[df["run"] == "qbc-s2"].iloc[0]
    assert (row["method"], row["seed"]) == ("qbc", 2)
    assert df["seed"].dtype == np.int64


def test_collect_names_a_bad_run_and_catches_a_curve_given_twice():
    bad = curves()
    bad.loc[bad["run"] == "qbc-s2", "run"] = "qbc-final"
    with pytest.raises(ValueError, match="'qbc-final'"):
        collect(bad)
    with pytest.raises(ValueError, match="'asgn-s0' has round 0 .* more than once"):
        collect(pd.concat([curves(), curves()[curves()["run"] == "asgn-s0"]]))
    clash = curves()
    clash.loc[clash["run"] == "asgn-s1", "run"] = "asgn-s01"
    clash.loc[clash["run"] == "asgn-s0", "run"] = "asgn-s1"
    with pytest.raises(ValueError, match="'asgn-s1' and 'asgn-s01' are both method 'asgn', seed 1"):
        collect(clash)


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


def test_csv_round_trips(df, tmp_path):
    table = final_budget_table(df)
    write_csv(table, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), table)


def test_figure_has_a_mean_line_and_std_band_per_method_per_panel(df, tmp_path):
    png = tmp_path / "fig" / "benchmark.png"
    fig = write_figure(df, png)
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
    assert axes["u0"].get_yscale() == "log" and axes["mu"].get_yscale() == "linear"
    assert axes["u0"].get_ylabel() == "test MAE (eV)" and axes["mu"].get_ylabel() == "test MAE (D)"
    only = write_figure(df, tmp_path / "u0.png", targets=["u0"])
    assert [ax.get_title() for ax in only.axes if ax.get_visible()] == ["u0"]


# --------------------------------------------------------------------------------------------------
# the command


def test_benchmark_table_command(tmp_path):
    table = curves()
    paths = []
    for run, rows in table.groupby("run", sort=False):
        paths += ["--curve", tmp_path / "runs" / run / "learning_curve.csv"]
        paths[-1].parent.mkdir(parents=True)
        rows.to_csv(paths[-1], index=False)
    out = tmp_path / "bench"
    args = [
        "benchmark-table",
        *paths,
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
