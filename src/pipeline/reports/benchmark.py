"""Benchmark of methods over seeds: read the runs' learning curves and write the comparison.

A benchmark config declares many runs, each one (method, seed) pair, which its ``run.json`` names
(:class:`pipeline.config.settings.RunConfig`, :func:`read_run_methods`). This module reads their
learning curves (:func:`pipeline.reports.runs.learning_curve`'s long table, one
``results/runs/{run}/learning_curve.csv`` per run) and compares the methods as the paper does:

- :func:`collect`: method and seed of every row; a *derived* method (the ASGN-T ablation: ASGN's
  teacher evaluated as is) is read off another method's runs, from the teacher MAEs they record;
- :mod:`pipeline.reports.stats`: Table 1 of Hao et al. (KDD 2020) (``final_budget_table``: test
  MAE, mean ± std over seeds, per method and target at the final label budget, with the validation
  MAE beside it: choose settings on validation, never on test); each method against a baseline seed
  by seed (``paired_differences``: runs of the same seed share the split and the initial labels;
  mean difference and ratio with Student-t intervals); how many labels a method needs to reach a test
  MAE and the fraction it saves against a baseline (``labels_to_reach``, ``label_savings``,
  ``label_efficiency`` at the baseline's mean test MAE at the final budget);
- :mod:`pipeline.reports.markdown` and :mod:`pipeline.reports.figures`: the report and Figure 3
  (test MAE against labels, mean line and ±std band per method).

:func:`write_benchmark` writes them all, atomically (:func:`pipeline.data.store.atomic_path`).
Standard deviations are sample standard deviations over seeds (ddof = 1): empty (NaN) for a method
with a single seed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from pipeline.data.store import atomic_path
from pipeline.reports.figures import write_figure
from pipeline.reports.markdown import write_markdown
from pipeline.reports.runs import LEARNING_CURVE_COLUMNS
from pipeline.reports.stats import (
    EFFICIENCY_COLUMNS,
    PAIRED_COLUMNS,
    final_budget_table,
    label_efficiency,
    methods_of,
    paired_differences,
)

__all__ = [
    "collect",
    "read_curves",
    "read_kernel_methods",
    "read_run_methods",
    "write_benchmark",
    "write_csv",
]

log = logging.getLogger(__name__)

#: Columns :func:`collect` needs in the learning-curve tables it is given.
_CURVE_COLUMNS = ["run", "round", "labelled", "target", "test_mae"]
#: MAE columns :func:`collect` fills with NaN when the curves lack them (curves written before
#: :func:`pipeline.reports.runs.learning_curve` recorded them).
_OPTIONAL_MAE_COLUMNS = [c for c in LEARNING_CURVE_COLUMNS if c not in _CURVE_COLUMNS]


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


def read_kernel_methods(paths: Iterable[str | Path]) -> set[str]:
    """The methods of the runs (their ``run.json``) whose student is a kernel (``student_kind`` other
    than network): the baselines the figure draws dashed."""
    from pipeline.config.settings import RunConfig

    return {cfg.method for cfg in map(RunConfig.read, paths) if cfg.method and cfg.student_kind != "network"}


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
    own = methods_of(df)
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


# --------------------------------------------------------------------------------------------------
# writing


def write_csv(table: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Write a table of this module to CSV atomically; returns it."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def write_benchmark(
    df: pd.DataFrame,
    csv_path: str | Path,
    markdown_path: str | Path,
    png_path: str | Path,
    budget: int | None = None,
    baseline: str = "random",
    efficiency_csv: str | Path | None = None,
    paired_csv: str | Path | None = None,
    dashed: Iterable[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Write the final-budget table (CSV), the Markdown report and the figure of :func:`collect`'s table
    (``dashed``: the methods drawn dashed, the kernel students: :func:`read_kernel_methods`).

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
            methods_of(df),
        )
    write_csv(table, csv_path)
    if efficiency_csv is not None:
        write_csv(
            efficiency if efficiency is not None else pd.DataFrame(columns=EFFICIENCY_COLUMNS), efficiency_csv
        )
    if paired_csv is not None:
        write_csv(paired, paired_csv)
    write_markdown(table, efficiency, markdown_path, paired)
    write_figure(df, png_path, dashed=dashed)
    return table, efficiency
