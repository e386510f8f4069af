"""The per-round stages, file in -> file out (:mod:`~pipeline.stages.rounds`: initial picks,
teacher, embed, student, pseudo-label, select, share round 0), each starting from the round's
context (:mod:`~pipeline.stages.context`: settings, seeds, device, split, graphs).

May import: every package below it (config, plan, data, label, model, learn, selection); only
:mod:`pipeline.cli` imports it.
"""
