"""ASGN: active semi-supervised graph neural networks for molecular property prediction.

The package is the engine behind the Snakemake workflow in ``workflow/``; every stage is also
reachable from the ``pipeline`` command (:mod:`pipeline.cli`). Its packages, each importing only
those before it in this list (``tests/test_layout.py`` checks it):

- :mod:`pipeline.config`: names, settings, resolution and checks (stdlib only);
- :mod:`pipeline.plan`: the path grammar and every job's inputs and options (for the workflow);
- :mod:`pipeline.data`: molecule sources, featurisation, graph shards, splits;
- :mod:`pipeline.label`: the oracles and the label stages (no torch);
- :mod:`pipeline.reports`: learning curves, tables, benchmark reports;
- :mod:`pipeline.model`: the representation and the heads;
- :mod:`pipeline.learn`: losses, training loops, inference, checkpoints;
- :mod:`pipeline.selection`: the strategies that pick what to label;
- :mod:`pipeline.stages`: the per-round stages;
- :mod:`pipeline.cli`: the ``pipeline`` command.
"""

__version__ = "0.1.0"
