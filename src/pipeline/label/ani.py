"""Pretrained neural-network potentials as cheap methods: ANI-1x and ANI-1ccx (torchani).

Knowledge from abundant tasks, as the project's sources propose: both are ensembles of 8 networks
whose weights ship inside torchani 2.0's wheel (later torchani releases fetch them at run time,
which cannot work here), so nothing is downloaded. ANI-1x is fitted to ~5 million wB97x/6-31G(d)
DFT energies of organic molecules (Smith et al., J. Chem. Phys. 2018), ANI-1ccx transfer-learnt
from it to ~500,000 CCSD(T)*/CBS energies (Smith et al., Nat. Commun. 2019). They give a total
energy only (no orbitals, no dipole), for neutral closed-shell molecules of **H, C, N and O**: a
molecule with any other element (QM9's fluorine), a charge or unpaired electrons is refused with its
reason (a failure in the helper chunks, so it has no delta base and leaves the errors, counted in
student.json's ``baseline_missing``); torchani itself would return an energy for it without
complaint.

Their ``energy`` (eV) is the potential's total energy at the given geometry, including its own
per-element self energies: like xtb's, it is a delta base (``delta: {source: ani1x, properties:
{u0: energy}}``) or a helping property, not QM9's U0.

Optional: ``pip install 'asgn-pipeline[ani]'`` (torchani 2.0 imports ``pkg_resources`` to find
its weight files, so it needs ``setuptools<81``; the extra pins it).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase.data import chemical_symbols

from pipeline.config.units import HARTREE_TO_EV
from pipeline.label.qc import CalculationFailed, Molecule

#: oracle name -> torchani model class name
MODELS = {"ani1x": "ANI1x", "ani1ccx": "ANI1ccx"}


@functools.cache
def _model(name: str):
    """The ensemble of oracle ``name`` in float64 (loaded once per process: ~3 s)."""
    try:
        import torchani
    except ImportError as err:
        raise ImportError(
            f"the {name} oracle needs torchani 2.0 (which ships the ANI weights): "
            "pip install 'asgn-pipeline[ani]'"
        ) from err
    return getattr(torchani.models, MODELS[name])(periodic_table_index=True).double().eval()


def ani_single_point(
    z: Sequence[int] | np.ndarray,
    pos: Sequence[Sequence[float]] | np.ndarray,
    model: str = "ani1x",
    *,
    mol_id: str = "",
    charge: int = 0,
    multiplicity: int | None = None,
) -> dict[str, Any]:
    """Energy of one molecule with an ANI ensemble (``model``: ``ani1x`` or ``ani1ccx``).

    Returns:
        energy (eV, the ensemble's mean), seconds.

    Raises:
        InvalidMolecule (a ValueError): malformed input; CalculationFailed: an element other than H,
        C, N, O, a charge or an open shell (outside what the potential was trained on).
    """
    import torch

    if model not in MODELS:
        raise ValueError(f"unknown ANI model {model!r}; choose one of {', '.join(MODELS)}")
    molecule = Molecule(z, pos, mol_id=mol_id, charge=charge, multiplicity=multiplicity, allow_odd=True)
    net = _model(model)
    strangers = sorted({chemical_symbols[a] for a in molecule.z} - set(net.species))
    if strangers:  # torchani would compute them anyway, as if they were one of its elements
        raise CalculationFailed(
            f"{model} knows only {', '.join(net.species)}; this molecule has {', '.join(strangers)}"
        )
    if molecule.charge != 0 or molecule.spin != 0:
        raise CalculationFailed(
            f"{model} computes neutral closed-shell molecules; this one has charge "
            f"{molecule.charge:+d} and multiplicity {molecule.multiplicity}"
        )
    start = time.perf_counter()
    species = torch.as_tensor(molecule.z, dtype=torch.long)[None]
    coordinates = torch.as_tensor(molecule.pos, dtype=torch.float64)[None]
    with torch.no_grad():
        energy = float(net((species, coordinates)).energies[0])
    if not np.isfinite(energy):
        raise CalculationFailed(f"{model} returned a non-finite energy ({energy})")
    return {"energy": energy * HARTREE_TO_EV, "seconds": time.perf_counter() - start}


def ani1x_single_point(z, pos, *, mol_id: str = "", charge: int = 0, multiplicity: int | None = None):
    """:func:`ani_single_point` with ANI-1x (the ``ani1x`` oracle; it takes no settings)."""
    return ani_single_point(z, pos, "ani1x", mol_id=mol_id, charge=charge, multiplicity=multiplicity)


def ani1ccx_single_point(z, pos, *, mol_id: str = "", charge: int = 0, multiplicity: int | None = None):
    """:func:`ani_single_point` with ANI-1ccx (the ``ani1ccx`` oracle; it takes no settings)."""
    return ani_single_point(z, pos, "ani1ccx", mol_id=mol_id, charge=charge, multiplicity=multiplicity)
