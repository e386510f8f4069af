"""The same molecule under two ids (QM9 itself has such pairs: one geometry with its atoms in another
order, and identical labels), found when a featurised dataset's shards are merged, so that pairs in
different shards are found too.

Two molecules are the same

* where the source knows the molecule's identity (``smiles``: its canonical isomeric SMILES, after
  the fragment policy), when the identities are equal;
* otherwise (structure files, QM9), when they have the same elements and the same sorted interatomic
  distances within :data:`DISTANCE_TOLERANCE`, whatever the atom order. Such a geometry is the same
  structure or its mirror image (an enantiomer, whose properties are the same); two conformers of one
  molecule differ and are both kept.

The first in dataset order is kept; each later one is a duplicate of the first it matches. The
geometry comparison stays fast for a whole dataset (QM9: a few seconds): molecules are grouped by
their elements, ordered by the sum of their distances, and only those whose sums are close enough to
match are compared.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Largest difference (Å) between two molecules' sorted interatomic distances that still makes them
#: the same geometry: well above the rounding of coordinates in files (1e-5 Å and less), well below
#: what tells two conformers apart (tenths of an Å).
DISTANCE_TOLERANCE = 0.01


def find_duplicates(
    z: Sequence[np.ndarray],
    pos: Sequence[np.ndarray],
    identity: Sequence[str | None] | None = None,
    tolerance: float = DISTANCE_TOLERANCE,
) -> dict[int, int]:
    """Duplicates among molecules given in dataset order: {later index: index of the first it
    matches}. ``z[m]``, ``pos[m]`` are molecule m's atomic numbers and coordinates (Å);
    ``identity[m]`` its identity where its source knows it (then it is compared by identity alone)."""
    n = len(z)
    identity = list(identity) if identity is not None else [None] * n
    first: dict[int, int] = {}
    seen: dict[str, int] = {}
    groups: dict[bytes, list[int]] = {}
    for m in range(n):
        if identity[m] is not None:
            if identity[m] in seen:
                first[m] = seen[identity[m]]
            else:
                seen[identity[m]] = m
        else:
            groups.setdefault(np.sort(np.asarray(z[m], dtype=np.int64)).tobytes(), []).append(m)
    for members in groups.values():
        if len(members) > 1:
            first.update(_same_geometries(np.array(members), pos, tolerance))
    return dict(sorted(first.items()))


def _same_geometries(members: np.ndarray, pos: Sequence[np.ndarray], tolerance: float) -> dict[int, int]:
    """Within molecules of the same elements: {later: first match} by sorted interatomic distances."""
    coords = np.stack([np.asarray(pos[m], dtype=np.float64) for m in members])  # [B, n, 3]
    n_atoms = coords.shape[1]
    if n_atoms < 2:  # one atom of the same element: the same
        return {int(m): int(members[0]) for m in members[1:]}
    i, j = np.triu_indices(n_atoms, k=1)
    distances = np.sort(np.linalg.norm(coords[:, i] - coords[:, j], axis=-1), axis=1)  # [B, n(n-1)/2]
    sums = distances.sum(axis=1)
    order = np.argsort(sums, kind="stable")
    ordered_sums = sums[order]
    window = tolerance * distances.shape[1]  # all distances within tolerance: sums within this
    found: dict[int, int] = {}
    for a, k in enumerate(order):
        end = np.searchsorted(ordered_sums, sums[k] + window, side="right")
        others = order[a + 1 : end]
        if not len(others):
            continue
        close = others[np.abs(distances[others] - distances[k]).max(axis=1) <= tolerance]
        for c in close:
            early, late = sorted((int(members[k]), int(members[c])))
            found[late] = min(found.get(late, early), early)
    return found
