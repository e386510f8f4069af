"""Which molecules to label next: the strategies by name (:mod:`~pipeline.selection.strategies`),
k-center greedy (:mod:`~pipeline.selection.kcenter`) on exact, screened distances
(:mod:`~pipeline.selection.distances`), bmdal-reg's LCMD, BAIT and k-means++
(:mod:`~pipeline.selection.batch_al`), and the uncertainty scores (:mod:`~pipeline.selection.uncertainty`).
A strategy picks from arrays: embeddings, or predictions the select stage made; it never trains.

May import: :mod:`pipeline.config`, :mod:`pipeline.data`, :mod:`pipeline.model` and, of
:mod:`pipeline.learn`, the device/RNG utilities (:mod:`~pipeline.learn.runtime`); never the training
loops (``tests/test_layout.py`` checks it).
"""
