"""The network: a representation (:mod:`~pipeline.model.schnet`, with the RBF expansion of
:mod:`~pipeline.model.rbf`) that turns atoms and distances into node features, the output heads that
read them (:mod:`~pipeline.model.heads`: the property head owns its targets' scale, shift and
atomref), and the ASGN model that composes them with its settings (:mod:`~pipeline.model.asgn`).
A new backbone is a representation with the same ``forward(z, edge_index, dist) -> h``.

May import: :mod:`pipeline.config`, :mod:`pipeline.data` (the graph batch it reads).
"""
