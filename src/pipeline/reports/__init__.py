"""What a person reads: per-run learning curves, round tables and embedding maps
(:mod:`~pipeline.reports.runs`), and benchmarks over methods and seeds (:mod:`~pipeline.reports.benchmark`
reads them; :mod:`~pipeline.reports.stats`, :mod:`~pipeline.reports.markdown`,
:mod:`~pipeline.reports.figures` and :mod:`~pipeline.reports.formatting` compute and write them).

May import: :mod:`pipeline.config`, :mod:`pipeline.data` (atomic writes). No torch.
"""
