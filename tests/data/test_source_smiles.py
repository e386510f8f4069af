"""The ``smiles`` source: CSV of id + SMILES [+ properties] -> seeded, bounded RDKit 3D conformers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.sources import get_source
from pipeline.data.sources.smiles import SmilesSource

CSV = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "molecules.csv"


@pytest.fixture
def source() -> SmilesSource:
    return SmilesSource()


@pytest.fixture
def catalogue(source):
    return source.catalogue([CSV])


def atoms_of(molecules, mol_id: str):
    (i,) = np.flatnonzero(molecules.mol_id == mol_id)
    ptr = molecules.atom_ptr
    return molecules.z[ptr[i] : ptr[i + 1]], molecules.pos[ptr[i] : ptr[i + 1]]


def bond_lengths(z, pos, a: int, b: int, cutoff: float = 1.7) -> np.ndarray:
    """Distances between atoms of elements a and b that are closer than ``cutoff`` (i.e. bonded)."""
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    mask = (z[:, None] == a) & (z[None] == b) & (d < cutoff) & (d > 0)
    return d[mask]


def test_registered_under_its_name():
    assert isinstance(get_source("smiles"), SmilesSource)
    assert SmilesSource.name == "smiles"
    assert SmilesSource().units["homo"] == "as given"


def test_catalogue_lists_rows_and_rejects_empty_cells(source, caplog):
    with caplog.at_level(logging.WARNING):
        catalogue = source.catalogue([CSV])
    entries = catalogue.entries
    assert entries["mol_id"].tolist() == ["ethanol", "methane", "broken-ring", "water"]
    assert entries["index"].tolist() == [0, 1, 2, 5]
    assert set(entries["origin"]) == {str(CSV)}
    rejects = {r.index: r for r in catalogue.rejects}
    assert set(rejects) == {3, 4}
    assert rejects[3].origin == str(CSV) and rejects[3].mol_id == "no-smiles"
    assert "empty SMILES" in rejects[3].reason
    assert rejects[4].mol_id is None and "empty id" in rejects[4].reason
    # the non-numeric 'note' column is ignored, loudly
    assert "note" in caplog.text and "ignored" in caplog.text


def test_missing_column_is_an_error_naming_file_and_column(source, tmp_path):
    path = tmp_path / "no_smiles.csv"
    path.write_text("id,structure\na,CCO\n")
    with pytest.raises(ValueError, match=r"no_smiles\.csv.*'smiles'"):
        source.catalogue([path])
    path = tmp_path / "no_id.csv"
    path.write_text("name,smiles\na,CCO\n")
    with pytest.raises(ValueError, match=r"no_id\.csv.*'id'"):
        source.catalogue([path])


def test_missing_file_is_a_reject_for_the_whole_input(source, tmp_path):
    catalogue = source.catalogue([tmp_path / "absent.csv", CSV])
    whole = [r for r in catalogue.rejects if r.index == -1]
    assert [(r.origin, "does not exist" in r.reason) for r in whole] == [(str(tmp_path / "absent.csv"), True)]
    assert len(catalogue.entries) == 4


def test_materialise_builds_good_molecules_and_rejects_invalid_smiles(source, catalogue):
    molecules, rejects = source.materialise(catalogue, np.arange(len(catalogue.entries)), seed=0)
    assert list(molecules.mol_id) == ["ethanol", "methane", "water"]
    assert molecules.index.tolist() == [0, 1, 5]
    assert len(rejects) == 1
    (reject,) = rejects
    assert (reject.origin, reject.index, reject.mol_id) == (str(CSV), 2, "broken-ring")
    assert "could not parse SMILES 'C1CC'" in reject.reason
    assert "unclosed ring" in reject.reason  # RDKit's own diagnosis comes through
    # hydrogens are added: ethanol is C2H6O, 9 atoms
    z, _ = atoms_of(molecules, "ethanol")
    assert len(z) == 9 and sorted(z.tolist()) == [1] * 6 + [6, 6, 8]
    assert molecules.n_atoms.tolist() == [9, 5, 3]
    # properties follow their molecules; empty / NA cells are missing labels
    props = molecules.properties
    assert list(props.columns) == ["homo", "gap"]
    assert props["homo"].tolist() == [-7.2, -10.7, -7.5]
    assert props["gap"].iloc[0] == 8.1 and props["gap"].iloc[1:].isna().all()


def test_conformer_geometry_is_chemically_sane(source, catalogue):
    molecules, _ = source.materialise(catalogue, np.array([0, 1]), seed=3)
    for mol_id in ("ethanol", "methane"):
        z, pos = atoms_of(molecules, mol_id)
        ch = bond_lengths(z, pos, 6, 1)
        assert len(ch) == {"ethanol": 5, "methane": 4}[mol_id]
        np.testing.assert_allclose(ch, 1.09, atol=0.02)
    z, pos = atoms_of(molecules, "ethanol")
    np.testing.assert_allclose(bond_lengths(z, pos, 6, 6), [1.51, 1.51], atol=0.03)
    np.testing.assert_allclose(bond_lengths(z, pos, 6, 8), [1.42], atol=0.03)
    np.testing.assert_allclose(bond_lengths(z, pos, 8, 1, cutoff=1.2), [0.97], atol=0.03)


def test_conformers_are_deterministic_per_seed_and_independent_of_sharding(source, catalogue):
    rows = np.arange(len(catalogue.entries))
    first, _ = source.materialise(catalogue, rows, seed=7)
    again, _ = source.materialise(catalogue, rows, seed=7)
    np.testing.assert_array_equal(first.pos, again.pos)
    other, _ = source.materialise(catalogue, rows, seed=8)
    assert first.z.tolist() == other.z.tolist()
    assert not np.allclose(first.pos, other.pos)
    # the same molecule built in another shard, at another position, gets the same coordinates
    shard, _ = source.materialise(catalogue, np.array([3, 0]), seed=7)
    for mol_id in ("ethanol", "water"):
        np.testing.assert_array_equal(atoms_of(shard, mol_id)[1], atoms_of(first, mol_id)[1])


def test_materialise_returns_requested_rows_in_that_order(source, catalogue):
    molecules, rejects = source.materialise(catalogue, np.array([3, 2, 0]), seed=0)
    assert list(molecules.mol_id) == ["water", "ethanol"]
    assert [r.mol_id for r in rejects] == ["broken-ring"]
    assert molecules.properties["homo"].tolist() == [-7.5, -7.2]
    assert molecules.z[:3].tolist() == [8, 1, 1]


def test_embedding_falls_back_to_random_coordinates_then_gives_up(source, catalogue, monkeypatch):
    from rdkit.Chem import AllChem

    real = AllChem.EmbedMolecule
    calls: list[bool] = []

    def failing_first_try(mol, params):
        calls.append(params.useRandomCoords)
        return -1 if not params.useRandomCoords else real(mol, params)

    monkeypatch.setattr(AllChem, "EmbedMolecule", failing_first_try)
    molecules, rejects = source.materialise(catalogue, np.array([0]), seed=0)
    assert calls == [False, True] and rejects == []
    assert list(molecules.mol_id) == ["ethanol"]

    calls.clear()
    monkeypatch.setattr(AllChem, "EmbedMolecule", lambda mol, params: calls.append(0) or -1)
    molecules, rejects = source.materialise(catalogue, np.array([0, 3]), seed=0)
    assert len(molecules) == 0 and len(calls) == 4
    assert [r.mol_id for r in rejects] == ["ethanol", "water"]
    assert all("conformer embedding failed after 2 attempts" in r.reason for r in rejects)


def test_embedding_is_bounded_by_iterations_not_by_the_clock(source, catalogue, monkeypatch):
    """The same SMILES and seed give the same coordinates, bit for bit, however busy the machine: the
    embedding is bounded by an iteration count (ETKDG maxIterations, seeded, one thread), not by time."""
    import time

    from rdkit.Chem import AllChem

    from pipeline.data.sources.smiles import conformer_seed

    quiet, _ = source.materialise(catalogue, np.array([0, 1]), seed=4)
    seen = []
    real = AllChem.EmbedMolecule

    def recording(mol, params):
        seen.append(params)
        return real(mol, params)

    monkeypatch.setattr(AllChem, "EmbedMolecule", recording)
    # A machine so loaded that hours pass between two clock readings.
    ticks = iter(range(10**6))
    for name in ("time", "monotonic", "perf_counter"):
        monkeypatch.setattr(time, name, lambda: 3600.0 * next(ticks))
    busy, rejects = source.materialise(catalogue, np.array([0, 1]), seed=4)
    assert rejects == [] and list(busy.mol_id) == ["ethanol", "methane"]
    np.testing.assert_array_equal(busy.pos, quiet.pos)
    assert [p.randomSeed for p in seen] == [conformer_seed(4, "ethanol"), conformer_seed(4, "methane")]
    assert all(p.maxIterations > 0 and p.numThreads == 1 for p in seen)
    assert all(p.timeout == 0 for p in seen)  # no wall-clock limit


def _built(tmp_path, rows: str, **options):
    """Materialise a CSV of ``id,smiles`` rows: (molecules, rejects by id)."""
    path = tmp_path / "ions.csv"
    path.write_text("id,smiles\n" + rows)
    source = SmilesSource(**options)
    catalogue = source.catalogue([path])
    molecules, rejects = source.materialise(catalogue, np.arange(len(catalogue.entries)), seed=0)
    return molecules, {r.mol_id: r.reason for r in rejects}


def test_charged_and_radical_smiles_keep_their_charge_and_spin(tmp_path):
    molecules, rejects = _built(
        tmp_path, "methylammonium,C[NH3+]\nacetate,CC(=O)[O-]\nethanol,CCO\nmethyl,[CH3]\noxygen,[O][O]\n"
    )
    assert rejects == {}
    assert list(molecules.mol_id) == ["methylammonium", "acetate", "ethanol", "methyl", "oxygen"]
    assert molecules.charge.tolist() == [1, -1, 0, 0, 0]
    # electrons: CH3NH3+ 19 protons - 1, acetate 31 + 1, ethanol 26, CH3 9, O2 16
    assert molecules.n_electrons().tolist() == [18, 32, 26, 9, 16]
    # the radicals state their multiplicity (high spin); closed shells leave it to the default
    assert molecules.multiplicity.tolist() == [0, 0, 0, 2, 3]
    assert molecules.spin_multiplicity().tolist() == [1, 1, 1, 2, 3]
    assert atoms_of(molecules, "methylammonium")[0].tolist().count(1) == 6  # NH3+ keeps 3 hydrogens


def min_distance(pos: np.ndarray) -> float:
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    return float(d[~np.eye(len(pos), dtype=bool)].min())


def test_salts_and_hydrates_keep_their_largest_fragment_with_its_charge(tmp_path):
    molecules, rejects = _built(tmp_path, "mea_hcl,C[NH3+].[Cl-]\nnaoac,CC(=O)[O-].[Na+]\nhydrate,CCO.O\n")
    assert rejects == {}
    z, pos = atoms_of(molecules, "mea_hcl")
    assert sorted(z.tolist()) == [1] * 6 + [6, 7]  # methylammonium, no chloride
    z, pos_ac = atoms_of(molecules, "naoac")
    assert 11 not in z.tolist() and sorted(z.tolist()) == [1] * 3 + [6, 6, 8, 8]
    assert atoms_of(molecules, "hydrate")[0].tolist().count(8) == 1  # ethanol, the water dropped
    assert molecules.charge.tolist() == [1, -1, 0]
    # one molecule, not fragments stacked on each other (a sodium 0.64 Å from a carbon was accepted)
    for p in (pos, pos_ac, atoms_of(molecules, "hydrate")[1]):
        assert min_distance(p) > 0.9


def test_fragments_reject_names_the_fragments(tmp_path):
    molecules, rejects = _built(tmp_path, "mea_hcl,C[NH3+].[Cl-]\nethanol,CCO\n", fragments="reject")
    assert list(molecules.mol_id) == ["ethanol"]
    assert "2 disconnected fragments" in rejects["mea_hcl"]
    assert "C[NH3+]" in rejects["mea_hcl"] and "[Cl-]" in rejects["mea_hcl"]


def test_binary_csv_is_rejected_with_a_readable_reason(tmp_path):
    path = tmp_path / "library.csv"
    path.write_bytes(bytes(range(256)) * 4)
    catalogue = SmilesSource().catalogue([path])
    (reject,) = catalogue.rejects
    assert (reject.origin, reject.index) == (str(path), -1)
    assert reject.reason == "not a text file (binary content)"


#: CSVs whose rows do not fit their header, and what the reject says. pandas would shift the columns
#: of the first two (the first field becoming the row's index) and speak of SMILES such as '-7.2'.
MISSHAPEN = [
    (
        "id,smiles,homo\nethanol,CCO,-7.2,\nwater,O,-7.9,\n",
        "every row has 4 fields, one more than the header (line 1), and the last is empty: a comma at "
        "the end of each row?",
    ),
    ("id,smiles,homo\nethanol,CCO,-7.2,x\nwater,O,-7.9\n", "line 2 has 4 fields, the header (line 1) has 3"),
    (
        "id,smiles,homo\nethanol,CCO\n\nwater,O,-7.9\nmethane,C\n",
        "line 2 has 2 fields, line 5 has 2 fields, the header (line 1) has 3",
    ),
    ("id,smiles,homo,\nethanol,CCO,-7.2,\n", "column 4 of the header (line 1) has no name"),
]


@pytest.mark.parametrize(("text", "named"), MISSHAPEN)
def test_a_csv_whose_rows_do_not_fit_its_header_is_rejected_naming_the_lines(source, tmp_path, text, named):
    path = tmp_path / "misshapen.csv"
    path.write_text(text)
    catalogue = source.catalogue([path, CSV])
    whole = [r for r in catalogue.rejects if r.index == -1]
    assert [r.origin for r in whole] == [str(path)]
    assert named in whole[0].reason, whole[0].reason
    assert set(catalogue.entries["origin"]) == {str(CSV)}  # the other file is read as before


def test_several_csvs_union_their_property_columns(source, tmp_path):
    extra = tmp_path / "extra.csv"
    extra.write_text("id,smiles,lumo\nammonia,N,1.5\n")
    catalogue = source.catalogue([CSV, extra])
    assert catalogue.entries["mol_id"].tolist()[-1] == "ammonia"
    assert catalogue.entries["index"].tolist()[-1] == 0
    molecules, _ = source.materialise(catalogue, np.array([4, 0]), seed=0)
    assert list(molecules.mol_id) == ["ammonia", "ethanol"]
    assert molecules.n_atoms.tolist() == [4, 9]
    props = molecules.properties
    assert props["lumo"].iloc[0] == 1.5 and np.isnan(props["homo"].iloc[0])
    assert props["homo"].iloc[1] == -7.2 and np.isnan(props["lumo"].iloc[1])


def test_conformer_seed_is_keyed_by_id_not_position():
    from pipeline.data.sources.smiles import conformer_seed

    assert conformer_seed(7, "ethanol") == conformer_seed(7, "ethanol")
    assert len({conformer_seed(7, "ethanol"), conformer_seed(8, "ethanol"), conformer_seed(7, "water")}) == 3
