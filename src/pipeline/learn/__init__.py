"""Training and using networks: the teacher's losses (:mod:`~pipeline.learn.losses`), Sinkhorn
clustering (:mod:`~pipeline.learn.clustering`), target scaling (:mod:`~pipeline.learn.scaling`), the
training loops of the teachers and the student (:mod:`~pipeline.learn.train`), inference
(:mod:`~pipeline.learn.inference`), MC-dropout and committee predictions
(:mod:`~pipeline.learn.uncertainty`), kernel ridge regression on FCHL19
(:mod:`~pipeline.learn.kernel_ridge`), checkpoints (:mod:`~pipeline.learn.checkpoint`), and the
device and RNG utilities everything runs under (:mod:`~pipeline.learn.runtime`).

May import: :mod:`pipeline.config`, :mod:`pipeline.data`, :mod:`pipeline.model`.
"""
