"""Benchmark of methods over seeds: the final-budget table, label efficiency, and the comparison figure.

A benchmark config declares many runs, each one (method, seed) pair, which its ``run.json`` names
(:class:`pipeline.config.settings.RunConfig`, :func:`read_run_methods`). This module reads their learning
curves (:func:`pipeline.reports.runs.learning_curve`'s long table, one
``results/runs/{run}/learning_curve.csv`` per run) and compares the methods as the paper does:

- :func:`collect`: method and seed of every row; a *derived* method (the ASGN-T ablation: ASGN's
  teacher evaluated as is) is read off another method's runs, from the teacher MAEs they record;
- :func:`final_budget_table`: Table 1 of Hao et al. (KDD 2020): test MAE, mean ± std over seeds, per
  method (rows) and target (columns) at the final label budget, with the validation MAE beside it
  (choose settings on validation, never on test);
- :func:`paired_differences`: each method against a baseline seed by seed (runs of the same seed
  share the split and the initial labels): mean difference and ratio with Student-t intervals;
- :func:`labels_to_reach` and :func:`label_savings`: how many labels a method needs to reach a test
  MAE, and the fraction of labels it saves against a baseline; :func:`label_efficiency` tabulates
  both at the default threshold, the baseline's mean test MAE at the final budget ("how many labels
  does ASGN need to match random at the full budget?");
- :func:`write_figure`: Figure 3: test MAE against labels, mean line and ±std band per method.

The tables are built by pure functions; the ``write_*`` functions write atomically
(:func:`pipeline.data.store.atomic_path`). Standard deviations are sample standard deviations over seeds
(ddof = 1): empty (NaN) for a method with a single seed.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import t as student_t

from pipeline.config.units import TARGET_UNITS, TARGETS
from pipeline.data.store import atomic_path
from pipeline.reports.runs import LEARNING_CURVE_COLUMNS, panel_grid

__all__ = [
    "EFFICIENCY_COLUMNS",
    "PAIRED_COLUMNS",
    "collect",
    "default_threshold",
    "final_budget",
    "final_budget_table",
    "label_efficiency",
    "label_savings",
    "labels_to_reach",
    "markdown",
    "mean_curve",
    "paired_differences",
    "read_run_methods",
    "read_curves",
    "write_benchmark",
    "write_csv",
    "write_figure",
    "write_markdown",
]

log = logging.getLogger(__name__)

#: Columns :func:`collect` needs in the learning-curve tables it is given.
_CURVE_COLUMNS = ["run", "round", "labelled", "target", "test_mae"]
#: MAE columns :func:`collect` fills with NaN when the curves lack them (curves written before
#: :func:`pipeline.reports.runs.learning_curve` recorded them).
_OPTIONAL_MAE_COLUMNS = [c for c in LEARNING_CURVE_COLUMNS if c not in _CURVE_COLUMNS]
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
_RTOL = 1e-9
_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_DPI = 150


# --------------------------------------------------------------------------------------------------
# reading


def read_run_methods(paths: Iterable[str | Path]) -> dict[str, tuple[str, int]]:
    """Run name -> (method, seed) from the runs' ``run.json`` (:class:`pipeline.config.settings.RunConfig`);
    a run that is no benchmark's (no ``method``) is an error naming its file."""
    from pipeline.config.settings import RunConfig

    methods = {}
    for path in paths:
        cfg = RunConfig.read(path)
        if not cfg.method:
            raise ValueError(f"{path}: run {cfg.run!r} is no benchmark's run (its settings name no method)")
        methods[cfg.run] = (cfg.method, cfg.seed)
    return methods


def read_curves(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate learning-curve CSVs (``results/runs/{run}/learning_curve.csv``) into one table."""
    frames = [pd.read_csv(path) for path in paths]
    if not frames:
        raise ValueError("no learning curves given")
    return pd.concat(frames, ignore_index=True)


def collect(
    curves: pd.DataFrame,
    methods: Mapping[str, tuple[str, int]],
    derived: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Add ``method`` and ``seed`` columns to learning-curve tables of many runs, and derived methods.

    Args:
        curves: :func:`pipeline.reports.runs.learning_curve`'s long table for all runs of a benchmark,
            concatenated: at least ``run, round, labelled, target, test_mae``. ``val_mae``,
            ``teacher_val_mae`` and ``teacher_test_mae`` are NaN where missing (older curves).
        methods: run name -> (method, seed) of every run in ``curves`` (more runs may be named), as
            :func:`read_run_methods` reads them from the runs' settings.
        derived: new method -> source method. The new method has no runs of its own: its rows are
            the source method's, with ``test_mae`` and ``val_mae`` replaced by the teacher's
            (``teacher_test_mae``, ``teacher_val_mae``). So the ASGN-T ablation (ASGN's teacher,
            without fine-tuning a student) is read off ASGN's runs instead of being trained again.
            Derived rows keep the source rows' ``run`` (the run they were measured in), ``seed``
            and ``labelled``; rounds whose teacher MAE was not recorded are left out of it.

    Returns:
        The rows with ``method`` (str) and ``seed`` (int64) after ``run``, then the derived rows.
        Methods keep the order in which they first appear, a derived method right after its source,
        which every table and figure of this module follows. With ``derived``, rows are grouped by
        method in that order.

    Raises:
        ValueError: a missing column; a run ``methods`` lacks; two runs naming the same (method, seed); a
            (run, round, target) given twice (a curve passed twice); a derived method that has runs
            of its own, or whose source method has no runs or no teacher MAEs.
    """
    missing = [c for c in _CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise ValueError(f"learning curves lack columns {missing}; expected {_CURVE_COLUMNS}")
    df = curves.reset_index(drop=True).copy()
    df["run"] = df["run"].astype(str)
    for column in _OPTIONAL_MAE_COLUMNS:
        if column not in df.columns:
            df[column] = math.nan
    runs = list(dict.fromkeys(df["run"]))
    parsed = {run: _method_seed(run, methods) for run in runs}
    pairs: dict[tuple[str, int], str] = {}
    for run, pair in parsed.items():
        if pair in pairs:
            raise ValueError(f"runs {pairs[pair]!r} and {run!r} are both method {pair[0]!r}, seed {pair[1]}")
        pairs[pair] = run
    twice = df[df.duplicated(["run", "round", "target"])]
    if len(twice):
        row = twice.iloc[0]
        raise ValueError(
            f"run {row['run']!r} has round {row['round']} of target {row['target']!r} more than once: "
            "was a learning curve given twice?"
        )
    position = df.columns.get_loc("run") + 1
    df.insert(position, "method", df["run"].map(lambda run: parsed[run][0]))
    df.insert(position + 1, "seed", df["run"].map(lambda run: parsed[run][1]).astype("int64"))
    df["labelled"] = df["labelled"].astype("int64")
    for column in ("test_mae", *_OPTIONAL_MAE_COLUMNS):
        df[column] = df[column].astype(float)
    if derived:
        df = _add_derived(df, derived)
    return df


def _method_seed(run: str, methods: Mapping[str, tuple[str, int]]) -> tuple[str, int]:
    """(method, seed) of a run from an explicit mapping; a run it lacks is an error naming it."""
    if run not in methods:
        raise ValueError(
            f"run {run!r} has no method and seed: give its run.json (given for {sorted(methods)})"
        )
    method, seed = methods[run]
    if not str(method):
        raise ValueError(f"run {run!r}: empty method name")
    return str(method), int(seed)


def _add_derived(df: pd.DataFrame, derived: Mapping[str, str]) -> pd.DataFrame:
    """:func:`collect`'s table plus the rows of each derived method (teacher MAEs of its source)."""
    own = _methods(df)
    frames = {method: df[df["method"] == method] for method in own}
    after: dict[str, list[str]] = {method: [] for method in own}
    for new, source in derived.items():
        if new in frames:
            raise ValueError(
                f"derived method {new!r} has runs of its own; a derived method is made from another's"
            )
        if source not in after:
            raise ValueError(
                f"source method {source!r} of derived method {new!r} has no runs; the methods are {own}"
            )
        rows = frames[source][frames[source]["teacher_test_mae"].notna()].copy()
        if rows.empty:
            raise ValueError(
                f"source method {source!r} of derived method {new!r} has no teacher MAEs "
                "(teacher_test_mae): were its runs' student.json written before they were recorded?"
            )
        lacking = len(frames[source]) - len(rows)
        if lacking:
            log.warning(
                "derived method %r: %d of %d rows of %r have no teacher MAE and are left out",
                new,
                lacking,
                len(frames[source]),
                source,
            )
        rows["method"] = new
        rows["test_mae"] = rows["teacher_test_mae"]
        rows["val_mae"] = rows["teacher_val_mae"]
        frames[new] = rows
        after[source].append(new)
    order = [m for method in own for m in (method, *after[method])]
    return pd.concat([frames[m] for m in order], ignore_index=True)


def _methods(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["method"]))


def _targets(df: pd.DataFrame) -> list[str]:
    """Targets in canonical order (QM9's), then any others alphabetically."""
    present = set(df["target"])
    return [t for t in TARGETS if t in present] + sorted(present - set(TARGETS))


def _check_target(df: pd.DataFrame, target: str) -> None:
    if target not in set(df["target"]):
        raise ValueError(f"no results for target {target!r}; the runs have {_targets(df)}")


def _check_method(df: pd.DataFrame, method: str, role: str = "method") -> None:
    if method not in set(df["method"]):
        raise ValueError(f"{role} {method!r} has no runs; the methods are {_methods(df)}")


# --------------------------------------------------------------------------------------------------
# Table 1: test MAE at the final budget


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
    methods, targets = _methods(df), _targets(df)
    at = df[df["labelled"] == budget]
    stats = at.groupby(["method", "target"])["test_mae"].agg(["mean", "std", "count"])
    val = at.groupby(["method", "target"])["val_mae"].agg(["mean", "std"])
    table = pd.DataFrame({"method": methods})
    table["seeds"] = [df.loc[df["method"] == m, "seed"].nunique() for m in methods]
    table["labelled"] = budget
    numbers = {}
    for target in targets:
        cell = stats.xs(target, level="target").reindex(methods)
        table[target] = [_mean_std(m, s) for m, s in zip(cell["mean"], cell["std"], strict=True)]
        numbers[f"{target}_mean"] = cell["mean"].to_numpy(float)
        numbers[f"{target}_std"] = cell["std"].to_numpy(float)
        numbers[f"{target}_n_seeds"] = cell["count"].fillna(0).to_numpy("int64")
        val_cell = val.xs(target, level="target").reindex(methods)
        numbers[f"{target}_val_mean"] = val_cell["mean"].to_numpy(float)
        numbers[f"{target}_val_std"] = val_cell["std"].to_numpy(float)
    return pd.concat([table, pd.DataFrame(numbers)], axis=1)


def _table_targets(table: pd.DataFrame) -> list[str]:
    return [c.removesuffix("_n_seeds") for c in table.columns if c.endswith("_n_seeds")]


# --------------------------------------------------------------------------------------------------
# number formatting


def _decimals(x: float, sig: int) -> int:
    """Decimal places that show ``x`` to ``sig`` significant figures (after rounding: 0.0999.. -> 0.10)."""
    if not math.isfinite(x) or x == 0:
        return 0
    exponent = int(f"{abs(x):.{sig - 1}e}".split("e")[1])
    return min(max(sig - 1 - exponent, 0), 12)


def _number(x: float, sig: int = 3) -> str:
    """``x`` to ``sig`` significant figures, fixed point ("—" when missing)."""
    if not math.isfinite(x):
        return "—"
    return f"{x:.{_decimals(x, sig)}f}"


def _mean_std(mean: float, std: float) -> str:
    """``"mean ± std"`` at the precision that shows the std to 2 and the mean to 3 significant figures."""
    if not math.isfinite(mean):
        return "—"
    if not math.isfinite(std):
        return _number(mean)
    d = max(_decimals(mean, 3), _decimals(std, 2))
    return f"{mean:.{d}f} ± {std:.{d}f}"


def _unit(target: str) -> str | None:
    """A target's unit with exponents as superscripts (``bohr^3`` -> ``bohr³``), None if unknown."""
    unit = TARGET_UNITS.get(target)
    if unit is None:
        return None
    return re.sub(r"\^(-?\d+)", lambda m: m[1].translate(_SUPERSCRIPTS), unit)


def _with_unit(target: str) -> str:
    unit = _unit(target)
    return f"{target} ({unit})" if unit else target


# --------------------------------------------------------------------------------------------------
# label efficiency


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
    order = {m: k for k, m in enumerate(_methods(df))}
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
    below = np.flatnonzero(mae <= threshold * (1 + _RTOL))
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
    result = pd.Series(labels, name="labels", dtype=float).reindex(_methods(df))
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
    for target in targets or _targets(df):
        _check_target(df, target)
        threshold = float(table.loc[baseline, f"{target}_mean"])
        if not threshold > 0:
            raise ValueError(f"{baseline} has no positive mean test MAE for {target!r} at the final budget")
        labels = labels_to_reach(df, target, threshold)
        for method, n in labels.items():
            rows.append((target, threshold, baseline, method, n, 1.0 - n / labels[baseline]))
    frame = pd.DataFrame(rows, columns=EFFICIENCY_COLUMNS)
    return frame.astype({"threshold": float, "labels": float, "saving": float})


# --------------------------------------------------------------------------------------------------
# paired comparison


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
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
    others = [m for m in _methods(df) if m != baseline]
    rows = []
    for target in _targets(df):
        here = at[at["target"] == target]
        test, val = _by_seed(here, "test_mae"), _by_seed(here, "val_mae")
        for method in others:
            pair = test.reindex(columns=[method, baseline]).dropna()
            mae, base = pair[method].to_numpy(float), pair[baseline].to_numpy(float)
            mean_diff, std_diff, ci_low, ci_high = _t_interval(mae - base, confidence)
            ratio, _, ratio_low, ratio_high = _t_interval(mae / base, confidence)
            val_pair = val.reindex(columns=[method, baseline]).dropna()
            val_diff = val_pair[method].to_numpy(float) - val_pair[baseline].to_numpy(float)
            val_mean, _, val_low, val_high = _t_interval(val_diff, confidence)
            rows.append(
                (target, method, baseline, budget, len(pair), mean_diff, std_diff, ci_low, ci_high)
                + (ratio, ratio_low, ratio_high, val_mean, val_low, val_high)
            )
    frame = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    numbers = [c for c in PAIRED_COLUMNS if c not in ("target", "method", "baseline", "labelled", "n_pairs")]
    frame = frame.astype({"labelled": "int64", "n_pairs": "int64", **dict.fromkeys(numbers, float)})
    frame.attrs["confidence"] = confidence
    return frame


# --------------------------------------------------------------------------------------------------
# writing


def write_csv(table: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Write a table of this module to CSV atomically; returns it."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", *["--:"] * (len(header) - 1)]) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _labels_text(n: float) -> str:
    return "not reached" if not math.isfinite(n) else f"{n:,.0f}"


def _saving_text(s: float) -> str:
    return "—" if not math.isfinite(s) else f"{s:.0%}".replace("-", "−")


def _estimate_text(mean: float, low: float, high: float) -> str:
    """``"mean [low, high]"`` at the precision that shows the half-width to 2 and the mean to 3
    significant figures; ``"mean [—]"`` without an interval, "—" without a mean. A half-width within
    rounding of 0 (1e-9 relative) is shown at the mean's precision."""
    if not math.isfinite(mean):
        return "—"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{_number(mean)} [—]".replace("-", "−")
    d, half = _decimals(mean, 3), (high - low) / 2
    if half > _RTOL * abs(mean):
        d = max(d, _decimals(half, 2))
    return f"{mean:.{d}f} [{low:.{d}f}, {high:.{d}f}]".replace("-", "−")


def _mae_table(table: pd.DataFrame, targets: list[str], suffix: str) -> list[str]:
    """Markdown rows of ``{target}{suffix}_mean ± _std`` per method, the best mean per target in bold."""
    rows = []
    for k in range(len(table)):
        cells = [str(table["method"].iloc[k]), str(table["seeds"].iloc[k])]
        for target in targets:
            means, stds = table[f"{target}{suffix}_mean"], table[f"{target}{suffix}_std"]
            text = _mean_std(float(means.iloc[k]), float(stds.iloc[k]))
            best = len(table) > 1 and means.notna().any() and means.iloc[k] == means.min()
            cells.append(f"**{text}**" if best else text)
        rows.append(cells)
    return _markdown_table(["method", "seeds", *map(_with_unit, targets)], rows)


def _paired_lines(paired: pd.DataFrame, budget: int) -> list[str]:
    if paired.empty:
        return [
            "## Paired difference to the baseline",
            "",
            "Not computed: no runs of the baseline method (random, unless another was named), "
            "or no other method.",
        ]
    baseline = str(paired["baseline"].iloc[0])
    level = f"{paired.attrs.get('confidence', 0.95):.0%}"
    lines = [
        f"## Paired difference to {baseline}",
        "",
        f"Test MAE of each method minus {baseline}'s at {budget:,} labels, seed by seed: runs of the "
        "same seed share the data split and the initial labelled molecules, so each seed both have "
        f"is a pair. Mean over the pairs [{level} Student-t interval, n − 1 degrees of freedom]; "
        f"below 0 is a lower MAE than {baseline}. An interval that excludes 0 is a difference at "
        f"{level}. Ratio: MAE(method) / MAE({baseline}) per seed, averaged; an interval that excludes "
        "1 likewise. [—]: fewer than 2 pairs, no interval.",
        "",
    ]
    rows = [
        [
            _with_unit(str(row["target"])),
            str(row["method"]),
            str(row["n_pairs"]),
            _estimate_text(row["mean_diff"], row["ci_low"], row["ci_high"]),
            _estimate_text(row["ratio"], row["ratio_ci_low"], row["ratio_ci_high"]),
        ]
        for _, row in paired.iterrows()
    ]
    header = ["target", "method", "pairs", f"difference [{level} CI]", f"ratio [{level} CI]"]
    return lines + _markdown_table(header, rows)


def markdown(table: pd.DataFrame, efficiency: pd.DataFrame | None, paired: pd.DataFrame | None = None) -> str:
    """The benchmark as Markdown: Table 1 of test MAE (mean ± std, best mean per target in bold), the
    same of validation MAE, the paired difference to the baseline and label efficiency.

    ``paired`` (:func:`paired_differences`): None leaves its section out; an empty table says it was
    not computed.
    """
    targets = _table_targets(table)
    budget = int(table["labelled"].iloc[0]) if len(table) else 0
    lines = [
        f"# Benchmark: test MAE at {budget:,} labels",
        "",
        f"Test MAE at {budget:,} labelled molecules, mean ± standard deviation over seeds; "
        "the best mean per target is in bold.",
        "",
    ]
    lines += _mae_table(table, targets, "")
    lines += [
        "",
        "## Validation MAE",
        "",
        f"Validation MAE at {budget:,} labelled molecules, mean ± standard deviation over seeds; the "
        "best mean per target is in bold. Settings (hyperparameters, which variant to report) are "
        "chosen on this table, never on the test MAE above.",
        "",
    ]
    lines += _mae_table(table, targets, "_val")
    if paired is not None:
        lines += ["", *_paired_lines(paired, budget)]

    lines += ["", "## Label efficiency", ""]
    if efficiency is None or efficiency.empty:
        lines.append("Not computed: no runs of the baseline method (random, unless another was named).")
        return "\n".join(lines) + "\n"
    baseline = str(efficiency["baseline"].iloc[0])
    methods = list(dict.fromkeys(efficiency["method"]))
    others = [m for m in methods if m != baseline]
    lines += [
        f"Labels each method needs for its mean test MAE over seeds to reach the threshold: {baseline}'s "
        f"mean test MAE at {budget:,} labels. Between rounds, log(MAE) is interpolated linearly in the "
        f"number of labels. Saved = 1 − labels(method) / labels({baseline}): the fraction of labels a "
        f"method saves to match {baseline} at the full budget.",
        "",
    ]
    header = ["target", "threshold", *methods, *(f"{m}: saved vs {baseline}" for m in others)]
    rows = []
    for target, group in efficiency.groupby("target", sort=False):
        by_method = group.set_index("method")
        cells = [_with_unit(str(target)), _number(float(group["threshold"].iloc[0]))]
        cells += [_labels_text(by_method.loc[m, "labels"]) for m in methods]
        cells += [_saving_text(by_method.loc[m, "saving"]) for m in others]
        rows.append(cells)
    lines += _markdown_table(header, rows)
    return "\n".join(lines) + "\n"


def write_markdown(
    table: pd.DataFrame,
    efficiency: pd.DataFrame | None,
    path: str | Path,
    paired: pd.DataFrame | None = None,
) -> str:
    """Write :func:`markdown` of the final-budget table, label efficiency and paired differences
    atomically; returns the text.

    ``efficiency`` (:func:`label_efficiency`) may be None when the runs have no baseline method;
    ``paired`` (:func:`paired_differences`) None leaves its section out.
    """
    text = markdown(table, efficiency, paired)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return text


def write_figure(df: pd.DataFrame, png_path: str | Path, targets: Sequence[str] | None = None) -> Figure:
    """Test MAE against labels per method, one panel per target, like the paper's Figure 3.

    Each method has a mean line over seeds (a marker per round, :func:`mean_curve`) and a ±std band,
    in the same colour on every panel. A panel's y axis is logarithmic when its means span more than
    a decade. Returns the figure (already saved); each panel's lines and bands (collections) are the
    methods', in :func:`collect`'s order.
    """
    targets = list(targets) if targets is not None else _targets(df)
    methods = _methods(df)
    seeds = df.groupby("method")["seed"].nunique()
    fig, axes = panel_grid(len(targets), title_height=0.5)
    colours = {m: f"C{k % 10}" for k, m in enumerate(methods)}
    for ax, target in zip(axes, targets, strict=False):
        curve = mean_curve(df, target)
        for method in methods:
            c = curve[curve["method"] == method]
            x, mean, std = c["labelled"].to_numpy(), c["mean"].to_numpy(), c["std"].to_numpy()
            label = f"{method} ({seeds[method]} seed{'s' if seeds[method] != 1 else ''})"
            ax.plot(x, mean, marker="o", markersize=3.5, color=colours[method], label=label)
            ax.fill_between(x, mean - std, mean + std, color=colours[method], alpha=0.2, linewidth=0)
        positive = curve["mean"][curve["mean"] > 0]
        if len(positive) and positive.max() > 10 * positive.min():
            ax.set_yscale("log")
        ax.set_title(target)
        ax.set_xlabel("labelled molecules")
        unit = _unit(target)
        ax.set_ylabel(f"test MAE ({unit})" if unit else "test MAE (units as given)")
        ax.grid(True, which="both", alpha=0.3)
    if targets:
        axes[0].legend(title="method", fontsize="small")
    fig.suptitle("Test MAE against labels: mean ± std over seeds")
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return fig


def write_benchmark(
    df: pd.DataFrame,
    csv_path: str | Path,
    markdown_path: str | Path,
    png_path: str | Path,
    budget: int | None = None,
    baseline: str = "random",
    efficiency_csv: str | Path | None = None,
    paired_csv: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Write the final-budget table (CSV), the Markdown report and the figure of :func:`collect`'s table.

    Label efficiency and the paired differences (:func:`paired_differences`, 95% intervals) are
    computed against ``baseline`` when the runs have it (else skipped, with a warning; their CSVs
    then have a header only) and written to ``efficiency_csv`` and ``paired_csv`` if given.
    Returns (table, efficiency or None).
    """
    table = final_budget_table(df, budget)
    efficiency = None
    paired = pd.DataFrame(columns=PAIRED_COLUMNS)
    if baseline in set(df["method"]):
        efficiency = label_efficiency(df, baseline=baseline, budget=budget)
        paired = paired_differences(df, baseline=baseline, budget=budget)
    else:
        log.warning(
            "no runs of baseline %r among %s: label efficiency and paired differences skipped",
            baseline,
            _methods(df),
        )
    write_csv(table, csv_path)
    if efficiency_csv is not None:
        write_csv(
            efficiency if efficiency is not None else pd.DataFrame(columns=EFFICIENCY_COLUMNS), efficiency_csv
        )
    if paired_csv is not None:
        write_csv(paired, paired_csv)
    write_markdown(table, efficiency, markdown_path, paired)
    write_figure(df, png_path)
    return table, efficiency
