"""Pretrained potentials as cheap methods (pipeline.label.ani): ANI-1x and ANI-1ccx from torchani 2.0.

Needs the ``ani`` extra (torchani 2.0); skipped without it.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config.registry import ORACLES
from pipeline.config.units import HARTREE_TO_EV
from pipeline.data.featurise import FeaturiseSettings, featurise
from pipeline.label import chunks
from pipeline.label.ani import ani_single_point
from pipeline.label.qc import CalculationFailed, label_molecules

torchani = pytest.importorskip("torchani")
torch = pytest.importorskip("torch")

# water at QM9's geometry (molecule 3), Å
WATER_Z = [8, 1, 1]
WATER_POS = [
    [-0.0343604951, 0.9775395708, 0.0076015923],
    [0.0647664923, 0.0205721989, 0.0015346341],
    [0.8717903737, 1.3007924048, 0.0006931336],
]
# fluoromethane (C-F 1.38 Å, C-H 1.09 Å, tetrahedral): fluorine is not an ANI-1x element
CH3F_Z = [6, 9, 1, 1, 1]
CH3F_POS = [[0, 0, 0], [0, 0, 1.38], [1.03, 0, -0.36], [-0.51, 0.89, -0.36], [-0.51, -0.89, -0.36]]
H3O_Z = [8, 1, 1, 1]
H3O_POS = [[0.0, 0.0, 0.12], [0.0, 0.94, -0.16], [0.81, -0.47, -0.16], [-0.81, -0.47, -0.16]]


@pytest.fixture(scope="module")
def qm9_40(tmp_path_factory: pytest.TempPathFactory, qm9_lines: list[str]):
    """QM9's first 40 molecules featurised: (data folder, their geometries, answer key by mol_id)."""
    tmp = tmp_path_factory.mktemp("ani")
    csv = tmp / "first40.csv"
    csv.write_text("".join(qm9_lines))
    out = tmp / "data"
    featurise(FeaturiseSettings(source="qm9", inputs=[str(csv)]), out)
    key = pq.read_table(out / "answer_key.parquet").to_pandas().set_index("mol_id")
    return out, chunks.read_geometries(out, key.index.to_numpy()), key


@pytest.mark.parametrize(("oracle", "cls"), [("ani1x", "ANI1x"), ("ani1ccx", "ANI1ccx")])
def test_the_energy_is_torchanis_ensemble_mean_in_ev(oracle, cls):
    model = getattr(torchani.models, cls)(periodic_table_index=True).double()
    species = torch.tensor([WATER_Z])
    with torch.no_grad():
        hartree = float(model((species, torch.tensor([WATER_POS], dtype=torch.float64))).energies[0])
    ours = ORACLES[oracle].single_point_function()(np.array(WATER_Z), np.array(WATER_POS))
    assert ours["energy"] == pytest.approx(hartree * HARTREE_TO_EV, abs=1e-9)
    # rotated and translated, the same energy
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    moved = np.array(WATER_POS) @ rot.T + np.array([3.0, -1.0, 2.0])
    assert ani_single_point(WATER_Z, moved, oracle)["energy"] == pytest.approx(ours["energy"], abs=1e-6)


def test_the_two_potentials_differ_and_the_model_name_is_checked():
    x = ani_single_point(WATER_Z, WATER_POS, "ani1x")["energy"]
    ccx = ani_single_point(WATER_Z, WATER_POS, "ani1ccx")["energy"]
    assert abs(x - ccx) > 0.01  # wB97x/6-31G(d) against CCSD(T)*/CBS
    with pytest.raises(ValueError, match="unknown ANI model 'ani2x'; choose one of ani1x, ani1ccx"):
        ani_single_point(WATER_Z, WATER_POS, "ani2x")


def test_the_difference_to_qm9s_u0_is_smooth(qm9_40):
    """What makes a delta base: QM9's U0 minus the potential's energy, after per-element references
    fitted by least squares, varies far less than U0 after the same references (on QM9's first 40,
    the tiniest molecules: 0.43 eV for U0; 0.12 eV ANI-1x, 0.08 eV ANI-1ccx, 0.19 eV GFN2-xTB)."""
    _, geometries, key = qm9_40
    u0 = key.loc[[g[0] for g in geometries], "u0"].to_numpy()
    counts = np.array([[np.sum(g[1] == e) for e in (1, 6, 7, 8)] for g in geometries], float)

    def residual(y):
        coef, *_ = np.linalg.lstsq(counts, y, rcond=None)
        return np.abs(y - counts @ coef).mean()

    for model in ("ani1x", "ani1ccx"):
        energies = np.array([ani_single_point(z, pos, model)["energy"] for _, z, pos, *_ in geometries])
        assert residual(u0 - energies) < 0.35 * residual(u0), model
        assert abs(u0[2] - energies[2]) / HARTREE_TO_EV < 0.2  # water: eV both (not Hartree)


def test_molecules_outside_the_potential_are_failures_with_their_reason():
    with pytest.raises(CalculationFailed, match="ani1x knows only H, C, N, O; this molecule has F"):
        ani_single_point(CH3F_Z, CH3F_POS, "ani1x")
    with pytest.raises(CalculationFailed, match=r"neutral closed-shell.*charge \+1"):
        ani_single_point(H3O_Z, H3O_POS, "ani1x", charge=1)
    with pytest.raises(CalculationFailed, match="multiplicity 3"):
        ani_single_point([8, 8], [[0, 0, 0], [0, 0, 1.21]], "ani1x", multiplicity=3)
    labels, failures = label_molecules(
        "ani1ccx", ["water", "ch3f", "h3o+"], [WATER_Z, CH3F_Z, H3O_Z], [WATER_POS, CH3F_POS, H3O_POS],
        charges=[0, 0, 1],
    )  # fmt: skip
    assert labels.mol_id.tolist() == ["water"] and list(labels.columns) == ["mol_id", "energy"]
    assert failures.mol_id.tolist() == ["ch3f", "h3o+"]
    assert "F" in failures.reason.iloc[0] and "charge +1" in failures.reason.iloc[1]
    with pytest.raises(ValueError, match=r"ani1x oracle: unknown settings \['model'\]"):
        label_molecules("ani1x", ["water"], [WATER_Z], [WATER_POS], {"model": "ani1ccx"})


def test_helper_chunks_label_the_dataset_with_the_energy(qm9_40, tmp_path):
    """The helper_chunk job as delta and helpers use it: every molecule's energy, none failed."""
    data, geometries, _ = qm9_40
    ids = np.array([g[0] for g in geometries[:6]])
    out, failed = tmp_path / "chunk.parquet", tmp_path / "failed.parquet"
    chunks.label_chunk("ani1x", data, ids, 0, 1, out, failed)
    labels = pq.read_table(out).to_pandas()
    assert labels.mol_id.tolist() == ids.tolist() and pq.read_table(failed).num_rows == 0
    _, z, pos, *_ = geometries[0]
    assert labels.energy.iloc[0] == pytest.approx(ani_single_point(z, pos, "ani1x")["energy"])
