"""Molecules in, graphs out: the sources that read molecules (:mod:`~pipeline.data.sources`: QM9,
structure files, SMILES), featurisation into Parquet graph shards with an answer key, rejects and a
manifest (:mod:`~pipeline.data.featurise`), atomic writes and the shard schema
(:mod:`~pipeline.data.store`), the packed graphs the network reads (:mod:`~pipeline.data.graphs`),
and a run's seeded pool/val/test split (:mod:`~pipeline.data.split`).

May import: :mod:`pipeline.config`. Only featurisation and :mod:`~pipeline.data.graphs` import torch,
so the label jobs that read shards and splits stay free of it.
"""
