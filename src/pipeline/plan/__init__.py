"""What the workflow plans: the path grammar (:mod:`pipeline.plan.paths`), the per-round stage
commands' declarations (:mod:`pipeline.plan.commands`), and every job's inputs, options and resources
(:class:`~pipeline.plan.jobs.Plan`), as plain functions of the resolved config.

May import: :mod:`pipeline.config` and the standard library only (no torch, NumPy, pandas or
pyarrow): ``workflow/rules/common.smk`` imports it on every Snakemake invocation, ``-n`` included.
"""

from pipeline.plan.jobs import Plan
from pipeline.plan.paths import PATHS, ROUND_0_COPIED, ROUND_0_SHARED, ROUND_FILES, ROUND_OUTPUTS

__all__ = ["PATHS", "ROUND_0_COPIED", "ROUND_0_SHARED", "ROUND_FILES", "ROUND_OUTPUTS", "Plan"]
