"""ASGN: active semi-supervised graph neural networks for molecular property prediction.

The package is the engine behind the Snakemake workflow in ``workflow/``; every stage is also
reachable from the ``pipeline`` command (see :mod:`pipeline.cli`).
"""

__version__ = "0.1.0"
