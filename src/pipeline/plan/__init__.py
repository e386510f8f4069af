"""What the workflow plans: the path grammar (:mod:`pipeline.plan.paths`) and every job's inputs,
options and resources (:class:`~pipeline.plan.jobs.Plan`), as plain functions of the resolved config.

May import: :mod:`pipeline.config` and the standard library only (no torch, NumPy, pandas or
pyarrow): ``workflow/rules/common.smk`` imports it on every Snakemake invocation, ``-n`` included.
"""

from pipeline.plan.jobs import Plan
from pipeline.plan.paths import BENCHMARK_FILES, DATA_DIR, ROUND_0_COPIED, ROUND_DIR, ROUND_FILES, RUN_DIR

__all__ = ["BENCHMARK_FILES", "DATA_DIR", "ROUND_0_COPIED", "ROUND_DIR", "ROUND_FILES", "RUN_DIR", "Plan"]
