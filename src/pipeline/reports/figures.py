"""The benchmark's figure (the paper's Figure 3): test MAE against labels on log-log axes (the
learning curve's convention), mean line and ±std band per method, a panel per target."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from pipeline.data.store import atomic_path
from pipeline.reports.formatting import unit_of
from pipeline.reports.runs import panel_grid
from pipeline.reports.stats import mean_curve, methods_of, targets_of

_DPI = 150


def write_figure(
    df: pd.DataFrame, png_path: str | Path, targets: Sequence[str] | None = None, dashed: Iterable[str] = ()
) -> Figure:
    """Test MAE against labels per method, one panel per target, like the paper's Figure 3, on
    log-log axes (a power law, the usual learning curve, is then a line).

    Each method has a mean line over seeds (a marker per round, :func:`mean_curve`) and a ±std band,
    in the same colour on every panel; the methods in ``dashed`` (kernel baselines) are dashed.
    Returns the figure (already saved); each panel's lines and bands (collections) are the methods',
    in :func:`collect`'s order.
    """
    dashed = set(dashed)
    targets = list(targets) if targets is not None else targets_of(df)
    methods = methods_of(df)
    seeds = df.groupby("method")["seed"].nunique()
    fig, axes = panel_grid(len(targets), title_height=0.5)
    colours = {m: f"C{k % 10}" for k, m in enumerate(methods)}
    for ax, target in zip(axes, targets, strict=False):
        curve = mean_curve(df, target)
        for method in methods:
            c = curve[curve["method"] == method]
            x, mean, std = c["labelled"].to_numpy(), c["mean"].to_numpy(), c["std"].to_numpy()
            label = f"{method} ({seeds[method]} seed{'s' if seeds[method] != 1 else ''})"
            style = "--" if method in dashed else "-"
            ax.plot(x, mean, style, marker="o", markersize=3.5, color=colours[method], label=label)
            ax.fill_between(x, mean - std, mean + std, color=colours[method], alpha=0.2, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(target)
        ax.set_xlabel("labelled molecules")
        unit = unit_of(target)
        ax.set_ylabel(f"test MAE ({unit})" if unit else "test MAE (units as given)")
        ax.grid(True, which="both", alpha=0.3)
    if targets:
        axes[0].legend(title="method", fontsize="small")
    fig.suptitle("Test MAE against labels: mean ± std over seeds")
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return fig
