"""Quantum-chemistry oracles: label molecules by computing their properties at their given geometry.

Two engines, both optional (``pip install 'asgn-pipeline[qc]'``) and imported only when called:

- :func:`pyscf_single_point`: restricted Kohn-Sham DFT with PySCF. The default level is QM9's,
  B3LYP/6-31G(2df,p), with the Gaussian flavour of B3LYP (``B3LYPG``: VWN functional III, the RPA
  parametrisation of the local correlation, as in Gaussian 09 which computed QM9). The other common
  B3LYP (ORCA's, Turbomole's, PySCF's ``B3LYP5``) uses VWN5; for water at QM9's geometry the two differ
  by 0.1 eV in HOMO and LUMO and by 1.0 eV (0.037 Ha) in total energy: far more than QM9's rounding.
  PySCF's plain ``"B3LYP"`` has meant either over its history (VWN5 before 2.3, VWN-RPA since, and VWN5
  again whenever ``pyscf.__config__.B3LYP_WITH_VWN5`` is set), so the default names ``B3LYPG``, which
  is always Gaussian's. Spherical (5D, 7F) basis functions, PySCF's default: with them CH4 reproduces
  QM9's HOMO within 6 meV and LUMO within 24 meV (Cartesian functions are ~65 meV off).
- :func:`xtb_single_point`: GFN2-xTB (semi-empirical tight binding) with tblite: about a thousand
  times cheaper than DFT and much less accurate (its orbital energies are not on DFT's scale).

Both return energies in eV and the dipole moment in Debye (config.units.TARGET_UNITS). ``energy`` is the total
energy of the molecule at the given nuclear positions (electrons plus nuclear repulsion, what an SCF
program prints): it is **not** QM9's U0, which is that energy at the optimised geometry *plus the
zero-point vibrational energy* (U0 - energy ~ ZPVE, 0.045 Ha = 1.2 eV for CH4). No canonical target
is named ``energy``; an oracle that labels it labels a new target.

Both compute the species the dataset stores: its net charge and spin multiplicity (graph columns
``charge`` and ``multiplicity``, passed by :func:`pipeline.label.chunks.label_chunk`), so ``C[NH3+]`` is
the cation, not a neutral radical. An odd electron count is still refused unless the oracle setting
``allow_odd`` is on: in most datasets it means a broken input (a missing hydrogen), not a radical.

:func:`label_molecules` runs an engine over many molecules and records each failure (SCF not converged,
odd electron count, engine crash) with its reason instead of stopping, the way a labelling job on a
cluster must behave.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import registry
from pipeline.config.units import HARTREE_TO_EV

log = logging.getLogger(__name__)

#: CODATA 2018 Bohr radius in Å.
BOHR_TO_ANGSTROM = 0.529177210903
#: Atomic unit of electric dipole moment (e·bohr) in Debye (CODATA 2018).
EBOHR_TO_DEBYE = 2.541746473


class CalculationFailed(RuntimeError):
    """A calculation that ran but gave no usable result; ``reason`` says why, for a person."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidMolecule(ValueError):
    """An input no oracle should compute: malformed arrays, or an odd electron count not allowed."""


@dataclass(frozen=True)
class Molecule:
    """A molecule (net charge, spin multiplicity) at a fixed geometry, as the oracles take it.

    Attributes:
        z: [n] atomic numbers.
        pos: [n, 3] Cartesian coordinates in Å.
        mol_id: name used in messages.
        charge: net charge (e); the electrons are ``sum(z) - charge``.
        multiplicity: spin multiplicity 2S + 1 (the dataset's ``multiplicity`` column). None: the
            lowest the electron count allows (1 for an even count, 2 for an odd one); after
            construction it always holds the multiplicity computed. One that the electron count
            cannot have (2S of the other parity, or more unpaired electrons than electrons) is
            refused.
        allow_odd: accept an odd number of electrons (an unrestricted doublet, or the multiplicity
            given). Off by default: in a closed-shell dataset such as QM9 an odd count means a
            broken input.
    """

    z: np.ndarray
    pos: np.ndarray
    mol_id: str = ""
    charge: int = 0
    allow_odd: bool = False
    multiplicity: int | None = None
    n_electrons: int = field(init=False)
    spin: int = field(init=False)  # number of unpaired electrons, 2S (PySCF's ``spin``, tblite's ``uhf``)

    def __post_init__(self) -> None:
        name = f"molecule {self.mol_id!r}" if self.mol_id else "molecule"
        z = np.asarray(self.z)
        pos = np.asarray(self.pos, dtype=np.float64)
        if z.ndim != 1 or len(z) == 0:
            raise InvalidMolecule(
                f"{name}: z must be a non-empty 1-D array of atomic numbers, got shape {z.shape}"
            )
        if not np.all(np.equal(np.mod(z, 1), 0)) or z.min() < 1 or z.max() > 118:
            raise InvalidMolecule(f"{name}: atomic numbers must be integers 1..118, got {z.tolist()}")
        z = z.astype(np.int64)
        if pos.shape != (len(z), 3):
            raise InvalidMolecule(
                f"{name}: pos must have shape ({len(z)}, 3) for {len(z)} atoms, got {pos.shape}"
            )
        if not np.isfinite(pos).all():
            raise InvalidMolecule(f"{name}: positions contain NaN or infinity")
        if int(self.charge) != self.charge:
            raise InvalidMolecule(f"{name}: charge must be a whole number, got {self.charge}")
        object.__setattr__(self, "charge", int(self.charge))
        n_electrons = int(z.sum()) - self.charge
        if n_electrons < 1:
            raise InvalidMolecule(f"{name}: charge {self.charge} leaves {n_electrons} electrons")
        spin = n_electrons % 2
        if self.multiplicity is not None:
            spin = int(self.multiplicity) - 1
            if spin < 0 or spin > n_electrons or (n_electrons - spin) % 2:
                raise InvalidMolecule(
                    f"{name}: multiplicity {self.multiplicity} is impossible with {n_electrons} electrons "
                    f"(charge {self.charge:+d}): 2S = multiplicity - 1 must have the parity of the "
                    "electron count"
                )
        if n_electrons % 2 and not self.allow_odd:
            raise InvalidMolecule(
                f"{name}: {n_electrons} electrons (odd) with charge {self.charge:+d}: a closed-shell "
                "singlet is impossible, so this is a radical or a broken input (missing hydrogen? wrong "
                "charge?); pass allow_odd=True to compute it as "
                + (f"multiplicity {self.multiplicity}" if self.multiplicity is not None else "a doublet")
            )
        object.__setattr__(self, "z", z)
        object.__setattr__(self, "pos", pos)
        object.__setattr__(self, "n_electrons", n_electrons)
        object.__setattr__(self, "spin", spin)
        object.__setattr__(self, "multiplicity", spin + 1)  # resolved: never None after init


# ---------------------------------------------------------------------------------------------- PySCF


@contextlib.contextmanager
def _pyscf_threads(threads: int) -> Iterator[None]:
    """Run PySCF's OpenMP code on ``threads`` threads, restoring the previous setting afterwards."""
    from pyscf import lib

    before = lib.num_threads()
    lib.num_threads(threads)
    try:
        yield
    finally:
        lib.num_threads(before)


def _use_gpu(device: str) -> bool:
    """Whether to run PySCF on a GPU: ``auto`` uses one when gpu4pyscf and CUDA are both available."""
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    if device == "cpu":
        return False
    try:
        import gpu4pyscf  # noqa: F401
        import torch

        available = torch.cuda.is_available()
    except ImportError:
        available = False
    if device == "gpu" and not available:
        raise RuntimeError(
            "device='gpu' needs the gpu4pyscf package and a CUDA device; neither is usable here"
        )
    return available


def _geometry_optimiser() -> tuple[str, Callable[..., tuple[bool, Any]]]:
    """PySCF's geometry optimiser interface (geomeTRIC, else PyBerny) or an error saying how to get one."""
    try:
        from pyscf.geomopt.geometric_solver import kernel

        return "geomeTRIC", kernel
    except ImportError:
        pass
    try:
        from pyscf.geomopt.berny_solver import kernel

        return "PyBerny", kernel
    except ImportError:
        pass
    raise RuntimeError(
        "optimise=True needs a geometry optimiser for PySCF: pip install geometric (or pyberny); "
        "neither is installed"
    )


#: geomeTRIC configures logging from an .ini file through ``logging.config.fileConfig``, which replaces
#: the *root* logger's handlers (the pipeline's log file included) and prints a banner and every step.
#: This configuration silences it; :func:`_keep_root_logging` puts the caller's root handlers back.
_GEOMETRIC_QUIET_INI = """\
[loggers]
keys=root

[handlers]
keys=null

[formatters]
keys=

[logger_root]
level=WARNING
handlers=null

[handler_null]
class=NullHandler
args=()
"""


@contextlib.contextmanager
def _keep_root_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level after code that reconfigures logging."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def _optimise(
    name: str, kernel: Callable[..., tuple[bool, Any]], mf: Any, max_steps: int
) -> tuple[bool, Any]:
    """Run PySCF's geometry optimiser ``kernel`` on ``mf``; returns (converged, optimised Mole)."""
    if name != "geomeTRIC":
        return kernel(mf, maxsteps=max_steps)
    with tempfile.TemporaryDirectory() as tmp, _keep_root_logging():
        ini = Path(tmp) / "log.ini"
        ini.write_text(_GEOMETRIC_QUIET_INI)
        return kernel(mf, maxsteps=max_steps, logIni=str(ini))


def _require(package: str, oracle: str) -> None:
    """Import ``package`` or fail once with how to install it (not as a per-molecule failure)."""
    try:
        __import__(package)
    except ImportError as err:
        raise ImportError(
            f"the {oracle} oracle needs {package}: pip install 'asgn-pipeline[qc]' (or pip install {package})"
        ) from err


def _one_line(err: BaseException) -> str:
    """An exception's message on one line (failure reasons end up in a table)."""
    return " ".join(str(err).split())


def _frontier(mo_energy: np.ndarray, mo_occ: np.ndarray, occupied: float) -> tuple[float, float]:
    """HOMO and LUMO (Ha) from orbital energies and occupations (restricted [norb] or spin [2, norb])."""
    energy = np.asarray(mo_energy, dtype=np.float64).ravel()
    occ = np.asarray(mo_occ, dtype=np.float64).ravel()
    occ_e, virt_e = energy[occ >= occupied], energy[occ < occupied]
    if len(occ_e) == 0 or len(virt_e) == 0:
        raise CalculationFailed("no occupied or no virtual orbital: cannot define HOMO and LUMO")
    return float(occ_e.max()), float(virt_e.min())


def pyscf_single_point(
    z: Sequence[int] | np.ndarray,
    pos: Sequence[Sequence[float]] | np.ndarray,
    method: str = "B3LYPG",
    basis: str = "6-31G(2df,p)",
    threads: int = 1,
    optimise: bool = False,
    max_cycle: int = 100,
    conv_tol: float = 1e-9,
    *,
    mol_id: str = "",
    charge: int = 0,
    multiplicity: int | None = None,
    allow_odd: bool = False,
    device: str = "auto",
    max_memory_mb: int = 4000,
    max_opt_steps: int = 100,
) -> dict[str, Any]:
    """Kohn-Sham DFT single point (restricted for a singlet; unrestricted for any other multiplicity).

    Args:
        z, pos: atomic numbers [n] and Cartesian coordinates [n, 3] in Å.
        charge, multiplicity: net charge and spin multiplicity 2S + 1 (PySCF's ``mol.charge``,
            ``mol.spin = multiplicity - 1``); multiplicity None: the lowest (see :class:`Molecule`).
        method: exchange-correlation functional as PySCF names it (see the module doc for B3LYPG).
        basis: basis set name (spherical functions).
        threads: OpenMP threads for PySCF (restored afterwards).
        optimise: optimise the geometry first (needs geomeTRIC or PyBerny; an error says so otherwise).
        max_cycle, conv_tol: SCF iteration limit and energy convergence threshold (Ha).
        device: ``auto`` (GPU when gpu4pyscf and CUDA are available), ``cpu`` or ``gpu``.

    Returns:
        homo, lumo, gap, energy (eV), mu (Debye), scf_cycles, seconds, device; with ``optimise``, also
        ``pos`` (the optimised coordinates, Å) and ``opt_optimiser``.

    Raises:
        InvalidMolecule (a ValueError): bad input (shapes, odd electron count without ``allow_odd``).
        CalculationFailed: SCF not converged, optimisation not converged, or PySCF failed.
    """
    _require("pyscf", "pyscf")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    molecule = Molecule(z, pos, mol_id=mol_id, charge=charge, multiplicity=multiplicity, allow_odd=allow_odd)
    optimiser = _geometry_optimiser() if optimise else None
    on_gpu = _use_gpu(device)
    start = time.perf_counter()
    try:
        with _pyscf_threads(threads):
            result = _pyscf_run(molecule, method, basis, max_cycle, conv_tol, on_gpu, max_memory_mb,
                                optimiser, max_opt_steps)  # fmt: skip
    except CalculationFailed:
        raise
    except Exception as err:  # a PySCF crash (bad basis for an element, out of memory, ...)
        raise CalculationFailed(f"PySCF failed: {type(err).__name__}: {_one_line(err)}") from err
    result["seconds"] = time.perf_counter() - start
    result["device"] = "gpu" if on_gpu else "cpu"
    return result


def _pyscf_run(
    molecule: Molecule,
    method: str,
    basis: str,
    max_cycle: int,
    conv_tol: float,
    on_gpu: bool,
    max_memory_mb: int,
    optimiser: tuple[str, Callable[..., tuple[bool, Any]]] | None,
    max_opt_steps: int,
) -> dict[str, Any]:
    from pyscf import dft, gto

    mol = gto.M(
        atom=[(int(zi), tuple(map(float, p))) for zi, p in zip(molecule.z, molecule.pos, strict=True)],
        unit="Angstrom",
        basis=basis,
        charge=molecule.charge,
        spin=molecule.spin,
        cart=False,
        verbose=0,
        max_memory=max_memory_mb,
    )
    mf = dft.RKS(mol) if molecule.spin == 0 else dft.UKS(mol)
    mf.xc = method
    mf.max_cycle = max_cycle
    mf.conv_tol = conv_tol
    mf.verbose = 0
    last: dict[str, float] = {}

    def watch(envs: dict[str, Any]) -> None:  # called by PySCF after every SCF cycle
        last["delta_e"] = float(envs["e_tot"] - envs["last_hf_e"])
        last["grad"] = float(envs["norm_gorb"])

    mf.callback = watch
    if on_gpu:
        mf = mf.to_gpu()

    out: dict[str, Any] = {}
    if optimiser is not None:
        name, kernel = optimiser
        try:
            converged, mol_eq = _optimise(name, kernel, mf, max_opt_steps)
        except RuntimeError as err:  # raised when an SCF inside the optimisation fails
            raise CalculationFailed(f"geometry optimisation ({name}) failed: {err}") from err
        if not converged:
            raise CalculationFailed(
                f"geometry optimisation ({name}) did not converge in {max_opt_steps} steps"
            )
        out["pos"] = np.asarray(mol_eq.atom_coords(unit="Angstrom"))
        out["opt_optimiser"] = name
        mf = mf.reset(mol_eq)
        mf.callback = watch

    mf.kernel()
    if not mf.converged:
        detail = ""
        if last:
            detail = f" (last energy change {last['delta_e']:.1e} Ha, orbital gradient {last['grad']:.1e})"
        raise CalculationFailed(f"SCF did not converge in {max_cycle} cycles{detail}")
    if on_gpu:
        mf = mf.to_cpu()
    occupied = 1.0 if molecule.spin == 0 else 0.5  # RKS occupations are 0/2, UKS 0/1 per spin
    homo, lumo = _frontier(mf.mo_energy, mf.mo_occ, occupied)
    dipole = np.asarray(mf.dip_moment(unit="Debye", verbose=0), dtype=np.float64)
    out.update(
        homo=homo * HARTREE_TO_EV,
        lumo=lumo * HARTREE_TO_EV,
        gap=(lumo - homo) * HARTREE_TO_EV,
        energy=float(mf.e_tot) * HARTREE_TO_EV,
        mu=float(np.linalg.norm(dipole)),
        scf_cycles=int(mf.cycles),
    )
    return out


# ---------------------------------------------------------------------------------------------- tblite


def xtb_single_point(
    z: Sequence[int] | np.ndarray,
    pos: Sequence[Sequence[float]] | np.ndarray,
    method: str = "GFN2-xTB",
    *,
    mol_id: str = "",
    charge: int = 0,
    multiplicity: int | None = None,
    allow_odd: bool = False,
    max_iterations: int = 250,
    electronic_temperature: float = 300.0,
    accuracy: float = 1.0,
) -> dict[str, Any]:
    """Tight-binding single point with tblite (GFN2-xTB by default).

    Uses tblite's Python API (``tblite.interface.Calculator``) rather than its ASE calculator, which
    wraps the same library but does not expose orbital energies. HOMO and LUMO come from the orbital
    energies and occupations (Fermi smearing at ``electronic_temperature`` K: the HOMO is the highest
    orbital at least half occupied). ``charge`` and ``multiplicity`` (2S + 1; None: the lowest) set
    the species: tblite's ``charge`` and ``uhf`` = multiplicity - 1 unpaired electrons.

    Returns:
        homo, lumo, gap, energy (eV), mu (Debye), seconds.

    Raises:
        InvalidMolecule (a ValueError): bad input; CalculationFailed: SCC not converged or tblite failed.
    """
    _require("tblite", "xtb")
    molecule = Molecule(z, pos, mol_id=mol_id, charge=charge, multiplicity=multiplicity, allow_odd=allow_odd)
    from tblite.interface import Calculator

    start = time.perf_counter()
    try:
        calc = Calculator(
            method,
            molecule.z,
            molecule.pos / BOHR_TO_ANGSTROM,
            charge=float(molecule.charge),
            uhf=molecule.spin,
        )
        calc.set("verbosity", 0)
        calc.set("max-iter", int(max_iterations))
        calc.set("accuracy", float(accuracy))
        calc.set("temperature", electronic_temperature * 3.166811563e-6)  # K -> Ha (k_B, CODATA 2018)
        res = calc.singlepoint()
        energy = float(res.get("energy"))
        dipole = np.asarray(res.get("dipole"), dtype=np.float64)
        eps = np.asarray(res.get("orbital-energies"), dtype=np.float64)
        occ = np.asarray(res.get("orbital-occupations"), dtype=np.float64)
    except Exception as err:
        message = _one_line(err) or type(err).__name__
        if "converge" in message.lower():
            reason = f"xTB SCC did not converge in {max_iterations} iterations (tblite: {message})"
            raise CalculationFailed(reason) from err
        raise CalculationFailed(f"tblite failed: {type(err).__name__}: {message}") from err
    occupied = 1.0 if eps.ndim == 1 else 0.5  # restricted: 0..2 per orbital; spin-resolved [2, norb]: 0..1
    homo, lumo = _frontier(eps, occ, occupied)
    if not math.isfinite(energy):
        raise CalculationFailed(f"tblite returned a non-finite energy ({energy})")
    return {
        "homo": homo * HARTREE_TO_EV,
        "lumo": lumo * HARTREE_TO_EV,
        "gap": (lumo - homo) * HARTREE_TO_EV,
        "energy": energy * HARTREE_TO_EV,
        "mu": float(np.linalg.norm(dipole)) * EBOHR_TO_DEBYE,
        "seconds": time.perf_counter() - start,
    }


# ------------------------------------------------------------------------------------------- labelling

#: Single-point arguments that describe each molecule, not the calculation (label_molecules passes them).
_PER_MOLECULE = ("charge", "multiplicity")


def label_molecules(
    oracle: str,
    mol_ids: Sequence[str],
    z_list: Sequence[Sequence[int] | np.ndarray],
    pos_list: Sequence[Sequence[Sequence[float]] | np.ndarray],
    settings: Mapping[str, Any] | None = None,
    *,
    charges: Sequence[int] | None = None,
    multiplicities: Sequence[int | None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Label every molecule with ``oracle`` ("pyscf" or "xtb"), one after the other.

    ``settings`` are keyword arguments of the oracle's single-point function (e.g. ``{"basis":
    "def2-SVP", "threads": 2}`` for pyscf); an unknown key is an error before anything runs.
    ``charges`` and ``multiplicities`` (one per molecule; default neutral and the lowest
    multiplicity) are each molecule's species, never settings: a ``charge`` setting is an error.

    A molecule whose calculation fails (or whose input is refused, e.g. an odd electron count) is
    recorded in ``failures`` with its reason and the others are still labelled. Each molecule's time is
    logged (logger ``pipeline.label.qc``).

    Returns:
        ``labels``: mol_id + the oracle's columns (``pipeline.config.registry.ORACLES[oracle].columns``:
        homo, lumo, gap in eV, mu in D, and ``energy`` in eV, the total energy at the given geometry,
        which is not QM9's u0), float64, the labelled molecules in input order;
        ``failures``: mol_id, reason, seconds.
    """
    info = registry.ORACLES.get(oracle)
    if info is None or info.single_point is None:
        raise ValueError(f"unknown QC oracle {oracle!r}; known: {list(registry.COMPUTING_ORACLES)}")
    charges = [0] * len(mol_ids) if charges is None else list(charges)
    multiplicities = [None] * len(mol_ids) if multiplicities is None else list(multiplicities)
    lengths = (len(mol_ids), len(z_list), len(pos_list), len(charges), len(multiplicities))
    if len(set(lengths)) != 1:
        raise ValueError(f"mol_ids, z_list, pos_list, charges and multiplicities differ in length {lengths}")
    settings = dict(settings or {})
    species = sorted(set(settings) & set(_PER_MOLECULE))
    if species:
        raise ValueError(
            f"{oracle} oracle: {species} cannot be settings: each molecule's charge and multiplicity "
            "come from the dataset (the source files or SMILES)"
        )
    func = info.single_point_function()
    params = inspect.signature(func).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = sorted(set(params) - {"z", "pos", "mol_id", *_PER_MOLECULE})
        unknown = sorted(set(settings) - set(allowed))
        if unknown:
            raise ValueError(f"{oracle} oracle: unknown settings {unknown}; allowed: {allowed}")
    if settings.get("optimise"):
        _geometry_optimiser()  # a missing optimiser is a setup error, not one failure per molecule

    targets = list(info.columns)
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    total = len(mol_ids)
    molecules = zip(mol_ids, z_list, pos_list, charges, multiplicities, strict=True)
    for i, (mol_id, z, pos, charge, mult) in enumerate(molecules):
        mol_id = str(mol_id)
        start = time.perf_counter()
        try:
            result = func(
                np.asarray(z),
                np.asarray(pos),
                mol_id=mol_id,
                charge=int(charge),
                multiplicity=None if mult is None else int(mult),
                **settings,
            )
        except (CalculationFailed, InvalidMolecule) as err:
            seconds = time.perf_counter() - start
            failures.append({"mol_id": mol_id, "reason": str(err), "seconds": seconds})
            log.warning("%s [%d/%d] %s: FAILED after %.1f s: %s", oracle, i + 1, total, mol_id, seconds, err)
            continue
        seconds = time.perf_counter() - start
        rows.append({"mol_id": mol_id, **{t: float(result[t]) for t in targets}})
        cycles = f", {result['scf_cycles']} SCF cycles" if "scf_cycles" in result else ""
        log.info("%s [%d/%d] %s: %d atoms, %.2f s%s", oracle, i + 1, total, mol_id, len(z), seconds, cycles)

    labels = pd.DataFrame(rows, columns=["mol_id", *targets]).astype({t: "float64" for t in targets})
    labels["mol_id"] = labels["mol_id"].astype(object)
    fail = pd.DataFrame(failures, columns=["mol_id", "reason", "seconds"]).astype({"seconds": "float64"})
    return labels, fail
