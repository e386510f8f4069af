"""The benchmark's Markdown report: Table 1 (test and validation MAE), the paired differences and
the label efficiency, with numbers to their significant digits (:mod:`pipeline.reports.formatting`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pipeline.data.store import atomic_path
from pipeline.reports.formatting import decimals, mean_std_text, number_text, with_unit
from pipeline.reports.stats import RTOL


def _table_targets(table: pd.DataFrame) -> list[str]:
    return [c.removesuffix("_n_seeds") for c in table.columns if c.endswith("_n_seeds")]


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
        return f"{number_text(mean)} [—]".replace("-", "−")
    d, half = decimals(mean, 3), (high - low) / 2
    if half > RTOL * abs(mean):
        d = max(d, decimals(half, 2))
    return f"{mean:.{d}f} [{low:.{d}f}, {high:.{d}f}]".replace("-", "−")


def _mae_table(table: pd.DataFrame, targets: list[str], suffix: str) -> list[str]:
    """Markdown rows of ``{target}{suffix}_mean ± _std`` per method, the best mean per target in bold."""
    rows = []
    for k in range(len(table)):
        cells = [str(table["method"].iloc[k]), str(table["seeds"].iloc[k])]
        for target in targets:
            means, stds = table[f"{target}{suffix}_mean"], table[f"{target}{suffix}_std"]
            text = mean_std_text(float(means.iloc[k]), float(stds.iloc[k]))
            best = len(table) > 1 and means.notna().any() and means.iloc[k] == means.min()
            cells.append(f"**{text}**" if best else text)
        rows.append(cells)
    return _markdown_table(["method", "seeds", *map(with_unit, targets)], rows)


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
            with_unit(str(row["target"])),
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
        cells = [with_unit(str(target)), number_text(float(group["threshold"].iloc[0]))]
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
