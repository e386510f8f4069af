"""Who labels the molecules: the oracles by kind (:mod:`~pipeline.label.base`): the answer-key
lookup (:mod:`~pipeline.label.lookup`), quantum chemistry in chunk jobs (:mod:`~pipeline.label.qc`,
:mod:`~pipeline.label.chunks`), a person or a lab (:mod:`~pipeline.label.external`); the label stages
(:mod:`~pipeline.label.oracle`) and the record of where labels came from
(:mod:`~pipeline.label.provenance`). The only package that reads the answer key.

May import: :mod:`pipeline.config`, :mod:`pipeline.data` (shards, splits, atomic writes). No torch at
import time, so a label job starts in about a second.
"""
