"""Settings and names, shared by the workflow and the jobs: the registries of every name a config
may choose (:mod:`~pipeline.config.registry`: strategies, oracles, teachers, sources), config
resolution and the checks across keys (:mod:`~pipeline.config.settings`: ``resolve``, ``RunConfig``,
``config_file_error``), targets and units (:mod:`~pipeline.config.units`) and file digests
(:mod:`~pipeline.config.digest`).

May import: the standard library only (PyYAML lazily). No torch, NumPy, pandas or pyarrow: Snakemake
imports it on every invocation, ``-n`` included, on a login node that may lack them.
"""
