"""The statistics of a benchmark (Hao et al., KDD 2020, Table 1 and the label savings): the
final-budget table (mean ± std over seeds), paired differences against a baseline with Student-t
intervals, labels to reach a test MAE and the fraction saved. Pure functions of :func:`collect`'s long
table (:mod:`pipeline.reports.benchmark`); standard deviations are over seeds (ddof = 1)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from pipeline.config.units import TARGETS
from pipeline.reports.formatting import mean_std_text

#: Columns of :func:`label_efficiency`'s table, one row per (target, method).
EFFICIENCY_COLUMNS = ["target", "threshold", "baseline", "method", "labels", "saving"]


#: Columns of :func:`paired_differences`' table, one row per (target, method).
PAIRED_COLUMNS = [
    "target",
    "method",
    "baseline",
    "labelled",
    "n_pairs",
    "mean_diff",
    "std_diff",
    "ci_low",
    "ci_high",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "val_mean_diff",
    "val_ci_low",
    "val_ci_high",
]


#: Relative tolerance for "the mean curve reaches the threshold" (floating-point rounding of means).
RTOL = 1e-9


def methods_of(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["method"]))


def targets_of(df: pd.DataFrame) -> list[str]:
    """Targets in canonical order (QM9's), then any others alphabetically."""
    present = set(df["target"])
    return [t for t in TARGETS if t in present] + sorted(present - set(TARGETS))


def _check_target(df: pd.DataFrame, target: str) -> None:
    if target not in set(df["target"]):
        raise ValueError(f"no results for target {target!r}; the runs have {targets_of(df)}")


def _check_method(df: pd.DataFrame, method: str, role: str = "method") -> None:
    if method not in set(df["method"]):
        raise ValueError(f"{role} {method!r} has no runs; the methods are {methods_of(df)}")


def final_budget(df: pd.DataFrame) -> int:
    """The largest number of labels that every run of every method (derived ones too) reached."""
    if df.empty:
        raise ValueError("no finished rounds in the learning curves")
    per_run = df.groupby(["method", "run"], sort=False)["labelled"].agg(frozenset)
    common = frozenset.intersection(*per_run)
    if not common:
        reached: dict[str, int] = {}
        for (method, run), sizes in per_run.items():  # a run's own method first, then derived ones
            reached[run if run not in reached else f"{run} ({method})"] = int(max(sizes))
        raise ValueError(f"no number of labels is common to all runs (largest per run: {reached})")
    return int(max(common))


def _check_budget(df: pd.DataFrame, budget: int) -> None:
    has = df.groupby(["method", "run"], sort=False)["labelled"].agg(lambda sizes: budget in set(sizes))
    lacking = [key for key, ok in has.items() if not ok]
    if lacking:
        methods: dict[str, list[str]] = {}
        for method, run in lacking:
            methods.setdefault(method, []).append(run)
        detail = "; ".join(f"{m} ({', '.join(r)})" for m, r in methods.items())
        raise ValueError(f"budget {budget} labels is missing from runs of method(s) {detail}")


def final_budget_table(df: pd.DataFrame, budget: int | None = None) -> pd.DataFrame:
    """Test MAE at the final budget, mean ± std over seeds: one row per method, like the paper's Table 1.

    Args:
        df: :func:`collect`'s table.
        budget: number of labels to compare at; default :func:`final_budget` (the largest every run
            reached). Every run must have a round at exactly this many labels.

    Returns:
        Columns ``method``, ``seeds`` (runs of the method), ``labelled`` (the budget), then one
        ``"mean ± std"`` text column per target (named by the target, canonical order) of the test
        MAE, then per target the numbers behind it: ``{target}_mean``, ``{target}_std`` (sample
        std over seeds; NaN with one seed) and ``{target}_n_seeds`` (seeds with a test MAE at the
        budget), and the same of the validation MAE: ``{target}_val_mean``, ``{target}_val_std``.
        Settings (hyperparameters, which variant to report) are to be chosen on the validation
        columns, never on the test ones.

    Raises:
        ValueError: ``budget`` missing from some runs; the message names their methods and runs.
    """
    if budget is None:
        budget = final_budget(df)
    else:
        budget = int(budget)
        _check_budget(df, budget)
    methods, targets = methods_of(df), targets_of(df)
    at = df[df["labelled"] == budget]
    stats = at.groupby(["method", "target"])["test_mae"].agg(["mean", "std", "count"])
    val = at.groupby(["method", "target"])["val_mae"].agg(["mean", "std"])
    table = pd.DataFrame({"method": methods})
    table["seeds"] = [df.loc[df["method"] == m, "seed"].nunique() for m in methods]
    table["labelled"] = budget
    numbers = {}
    for target in targets:
        cell = stats.xs(target, level="target").reindex(methods)
        table[target] = [mean_std_text(m, s) for m, s in zip(cell["mean"], cell["std"], strict=True)]
        numbers[f"{target}_mean"] = cell["mean"].to_numpy(float)
        numbers[f"{target}_std"] = cell["std"].to_numpy(float)
        numbers[f"{target}_n_seeds"] = cell["count"].fillna(0).to_numpy("int64")
        val_cell = val.xs(target, level="target").reindex(methods)
        numbers[f"{target}_val_mean"] = val_cell["mean"].to_numpy(float)
        numbers[f"{target}_val_std"] = val_cell["std"].to_numpy(float)
    return pd.concat([table, pd.DataFrame(numbers)], axis=1)


def mean_curve(df: pd.DataFrame, target: str) -> pd.DataFrame:
    """Each method's learning curve for one target, averaged over its seeds.

    Only the label counts that every seed of the method reached are kept, so a seed that stopped
    early does not bias the mean at the end. Returns columns ``method, labelled, mean, std,
    n_seeds`` (sample std over seeds), methods in :func:`collect`'s order, labels ascending.
    """
    _check_target(df, target)
    rows = df[df["target"] == target]
    seeds = rows.groupby("method")["seed"].nunique()
    curve = rows.groupby(["method", "labelled"], as_index=False).agg(
        mean=("test_mae", "mean"), std=("test_mae", "std"), n_seeds=("seed", "nunique")
    )
    curve = curve[curve["n_seeds"].to_numpy() == seeds.reindex(curve["method"]).to_numpy()]
    order = {m: k for k, m in enumerate(methods_of(df))}
    curve = curve.sort_values(["method", "labelled"], key=lambda c: c.map(order) if c.name == "method" else c)
    return curve.reset_index(drop=True)[["method", "labelled", "mean", "std", "n_seeds"]]


def _first_crossing(labels: np.ndarray, mae: np.ndarray, threshold: float) -> float:
    """Labels at which the curve (labels ascending) first reaches ``mae <= threshold``; NaN if never.

    Between the last round above the threshold and the first at or below it, log(MAE) is linear in
    the number of labels. A curve already at or below the threshold at its first point gives that
    point's labels (nothing is extrapolated). A mean within rounding (1e-9 relative) of the
    threshold counts as reaching it: the baseline's own mean at the final budget is the default
    threshold, and its mean over seeds may be summed in another order here.
    """
    below = np.flatnonzero(mae <= threshold * (1 + RTOL))
    if len(below) == 0:
        return math.nan
    k = below[0]
    if k == 0 or mae[k] <= 0:
        return float(labels[k])
    n0, n1, m0, m1 = labels[k - 1], labels[k], mae[k - 1], mae[k]
    fraction = (math.log(m0) - math.log(threshold)) / (math.log(m0) - math.log(m1))
    return float(n0 + min(max(fraction, 0.0), 1.0) * (n1 - n0))


def labels_to_reach(df: pd.DataFrame, target: str, mae: float) -> pd.Series:
    """Labels each method needs for its mean test MAE (over seeds) to reach ``mae`` or lower.

    The mean curve (:func:`mean_curve`) is interpolated between rounds linearly in log(MAE), so a
    method reaching the threshold between 200 and 300 labels gets a fractional count in between.

    Returns:
        Float Series indexed by method (``collect``'s order), named ``labels``: NaN where the mean
        curve never reaches ``mae`` within its rounds ("not reached").
    """
    if not mae > 0:
        raise ValueError(f"MAE threshold must be positive, got {mae}")
    curve = mean_curve(df, target)
    labels = {
        method: _first_crossing(c["labelled"].to_numpy(float), c["mean"].to_numpy(float), mae)
        for method, c in curve.groupby("method", sort=False)
    }
    result = pd.Series(labels, name="labels", dtype=float).reindex(methods_of(df))
    result.index.name = "method"
    return result


def default_threshold(
    df: pd.DataFrame, target: str, baseline: str = "random", budget: int | None = None
) -> float:
    """The baseline's mean test MAE at the final budget: the MAE other methods are asked to match."""
    _check_method(df, baseline, "baseline")
    _check_target(df, target)
    table = final_budget_table(df, budget).set_index("method")
    return float(table.loc[baseline, f"{target}_mean"])


def label_savings(
    df: pd.DataFrame,
    target: str,
    mae: float | None = None,
    method: str = "asgn",
    baseline: str = "random",
    budget: int | None = None,
) -> float:
    """Fraction of labels ``method`` saves against ``baseline`` to reach test MAE ``mae``.

    ``1 - labels(method) / labels(baseline)``: positive when the method needs fewer labels, negative
    when it needs more; NaN when either never reaches ``mae``. ``mae`` defaults to
    :func:`default_threshold` (the baseline's mean test MAE at the final budget, or at ``budget``).
    """
    _check_method(df, method)
    _check_method(df, baseline, "baseline")
    if mae is None:
        mae = default_threshold(df, target, baseline, budget)
    labels = labels_to_reach(df, target, mae)
    return float(1.0 - labels[method] / labels[baseline])


def label_efficiency(
    df: pd.DataFrame,
    targets: Sequence[str] | None = None,
    baseline: str = "random",
    budget: int | None = None,
) -> pd.DataFrame:
    """Labels every method needs to match the baseline at the final budget, and what it saves.

    For each target the threshold is :func:`default_threshold`. Returns :data:`EFFICIENCY_COLUMNS`,
    one row per (target, method): ``labels`` (NaN: not reached) and ``saving`` =
    1 - labels / labels of the baseline (0 for the baseline itself, NaN when either is not reached).
    """
    _check_method(df, baseline, "baseline")
    table = final_budget_table(df, budget).set_index("method")
    rows = []
    for target in targets or targets_of(df):
        _check_target(df, target)
        threshold = float(table.loc[baseline, f"{target}_mean"])
        if not threshold > 0:
            raise ValueError(f"{baseline} has no positive mean test MAE for {target!r} at the final budget")
        labels = labels_to_reach(df, target, threshold)
        for method, n in labels.items():
            rows.append((target, threshold, baseline, method, n, 1.0 - n / labels[baseline]))
    frame = pd.DataFrame(rows, columns=EFFICIENCY_COLUMNS)
    return frame.astype({"threshold": float, "labels": float, "saving": float})


def t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    """Mean, sample std and Student-t interval (n - 1 degrees of freedom) of the mean of ``values``.

    NaN for all four with no values; with one value, its mean alone (std and interval NaN).
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(np.mean(values))
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(np.std(values, ddof=1))
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def _by_seed(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` per seed (rows) and method (columns); a seed's last round if two share a budget."""
    values = rows.sort_values("round", kind="stable").groupby(["seed", "method"], sort=False)[column].last()
    return values.unstack("method")


def paired_differences(
    df: pd.DataFrame, baseline: str = "random", budget: int | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """Each method against ``baseline`` seed by seed at the final budget: mean difference and ratio.

    Runs of the same seed share the data split and the initial labelled set, so a method's and the
    baseline's runs of one seed are a pair, and the seed-to-seed spread (which split, which first
    labels) cancels in their difference. Per target and method, the pairs are the seeds both have a
    test MAE for at the budget; per pair, diff = MAE(method) - MAE(baseline) and ratio =
    MAE(method) / MAE(baseline). Their means get a Student-t interval over the pairs (n - 1 degrees
    of freedom): an interval for the difference that excludes 0 (for the ratio, 1) is a difference
    at the ``confidence`` level.

    Args:
        df: :func:`collect`'s table.
        baseline: the method the others are compared with.
        budget: number of labels to compare at; default :func:`final_budget`. Every run must have a
            round at exactly this many labels.
        confidence: two-sided confidence level of the intervals.

    Returns:
        :data:`PAIRED_COLUMNS`, one row per (target, method other than the baseline), targets in
        canonical order, methods in :func:`collect`'s: ``labelled`` (the budget), ``n_pairs``,
        ``mean_diff``, ``std_diff`` (sample std of the per-seed differences), ``ci_low``,
        ``ci_high``, ``ratio`` (mean of the per-seed ratios), ``ratio_ci_low``, ``ratio_ci_high``,
        and the difference of the validation MAE (over the seeds both have one for):
        ``val_mean_diff``, ``val_ci_low``, ``val_ci_high``. Intervals (and ``std_diff``) are NaN
        with fewer than 2 pairs; everything but ``n_pairs`` is NaN with none.

    Raises:
        ValueError: no runs of ``baseline``; ``confidence`` not in (0, 1); ``budget`` missing from
            some runs.
    """
    _check_method(df, baseline, "baseline")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}")
    if budget is None:
        budget = final_budget(df)
    else:
        budget = int(budget)
        _check_budget(df, budget)
    at = df[df["labelled"] == budget]
    others = [m for m in methods_of(df) if m != baseline]
    rows = []
    for target in targets_of(df):
        here = at[at["target"] == target]
        test, val = _by_seed(here, "test_mae"), _by_seed(here, "val_mae")
        for method in others:
            pair = test.reindex(columns=[method, baseline]).dropna()
            mae, base = pair[method].to_numpy(float), pair[baseline].to_numpy(float)
            mean_diff, std_diff, ci_low, ci_high = t_interval(mae - base, confidence)
            ratio, _, ratio_low, ratio_high = t_interval(mae / base, confidence)
            val_pair = val.reindex(columns=[method, baseline]).dropna()
            val_diff = val_pair[method].to_numpy(float) - val_pair[baseline].to_numpy(float)
            val_mean, _, val_low, val_high = t_interval(val_diff, confidence)
            rows.append(
                (target, method, baseline, budget, len(pair), mean_diff, std_diff, ci_low, ci_high)
                + (ratio, ratio_low, ratio_high, val_mean, val_low, val_high)
            )
    frame = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    numbers = [c for c in PAIRED_COLUMNS if c not in ("target", "method", "baseline", "labelled", "n_pairs")]
    frame = frame.astype({"labelled": "int64", "n_pairs": "int64", **dict.fromkeys(numbers, float)})
    frame.attrs["confidence"] = confidence
    return frame
