"""The ``files`` source: molecules from xyz/extxyz, sdf, ASE db and other ASE formats; bad ones rejected."""

from __future__ import annotations

from pathlib import Path

import ase.db
import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from pipeline.data.sources import get_source
from pipeline.data.sources.files import FilesSource

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "sources"

WATER_Z = [8, 1, 1]
WATER_POS = [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]
AMMONIA_Z = [7, 1, 1, 1]
AMMONIA_POS = [[0.0, 0.0, 0.1], [0.0, 0.94, -0.27], [0.814, -0.47, -0.27], [-0.814, -0.47, -0.27]]
METHANE_Z = [6, 1, 1, 1, 1]


@pytest.fixture
def source() -> FilesSource:
    return FilesSource()


def build_all(source: FilesSource, inputs):
    """Catalogue ``inputs`` and materialise every row: (catalogue, molecules)."""
    catalogue = source.catalogue([Path(p) for p in inputs])
    molecules, rejects = source.materialise(catalogue, np.arange(len(catalogue.entries)), seed=0)
    assert rejects == []  # every problem of a file is found while cataloguing
    return catalogue, molecules


def molecule(molecules, mol_id: str):
    """(z, pos, properties row) of one molecule, looked up by id."""
    (i,) = np.flatnonzero(molecules.mol_id == mol_id)
    ptr = molecules.atom_ptr
    return molecules.z[ptr[i] : ptr[i + 1]], molecules.pos[ptr[i] : ptr[i + 1]], molecules.properties.iloc[i]


def only_reject(catalogue):
    assert len(catalogue.rejects) == 1, catalogue.rejects
    return catalogue.rejects[0]


def test_registered_under_its_name():
    assert isinstance(get_source("files"), FilesSource)
    assert FilesSource.name == "files"


def test_units_are_as_given(source):
    assert source.units["homo"] == "as given"
    assert source.units.get("anything") == "as given"


def test_unknown_element_frame_is_rejected_and_good_frame_kept(source):
    path = DATA / "unknown_element.xyz"
    catalogue, molecules = build_all(source, [path])
    assert list(molecules.mol_id) == ["unknown_element-0"]
    z, pos, _ = molecule(molecules, "unknown_element-0")
    assert z.tolist() == WATER_Z
    np.testing.assert_allclose(pos, WATER_POS)
    reject = only_reject(catalogue)
    assert (reject.origin, reject.index, reject.mol_id) == (str(path), 1, "unknown_element-1")
    assert "unknown element" in reject.reason and "'Xx'" in reject.reason


def test_truncated_last_frame_is_rejected_and_earlier_frames_kept(source):
    path = DATA / "truncated.xyz"
    catalogue, molecules = build_all(source, [path])
    assert list(molecules.mol_id) == ["truncated-0"]
    assert molecule(molecules, "truncated-0")[0].tolist() == METHANE_Z
    reject = only_reject(catalogue)
    assert (reject.origin, reject.index) == (str(path), 1)
    assert "truncated" in reject.reason
    assert "3 atoms" in reject.reason and "2 atom lines" in reject.reason


def test_count_mismatch_is_rejected_and_reading_resynchronises(source):
    path = DATA / "count_mismatch.xyz"
    catalogue, molecules = build_all(source, [path])
    reject = only_reject(catalogue)
    assert (reject.origin, reject.index) == (str(path), 0)
    assert "count line says 5 atoms but frame has 4 atom lines" in reject.reason
    # the frames after the bad one keep their positions in the file (and their default ids)
    assert list(molecules.mol_id) == ["count_mismatch-1", "count_mismatch-2"]
    assert molecules.index.tolist() == [1, 2]
    z, pos, _ = molecule(molecules, "count_mismatch-1")
    assert z.tolist() == AMMONIA_Z
    np.testing.assert_allclose(pos, AMMONIA_POS)
    assert molecule(molecules, "count_mismatch-2")[0].tolist() == WATER_Z


def test_too_many_atom_lines_is_a_count_mismatch(source, tmp_path):
    lines = (DATA / "count_mismatch.xyz").read_text().splitlines()
    # frame 0 says 2 atoms but has 4 atom lines; frames 1 (ammonia) and 2 (water) follow intact
    path = tmp_path / "extra.xyz"
    path.write_text("\n".join(["2", *lines[1:]]) + "\n")
    catalogue, molecules = build_all(source, [path])
    reject = only_reject(catalogue)
    assert reject.index == 0 and "count line says 2 atoms but frame has 4 atom lines" in reject.reason
    assert list(molecules.mol_id) == ["extra-1", "extra-2"]


def test_non_numeric_coordinate_rejects_its_frame_and_extxyz_info_becomes_properties(source):
    path = DATA / "bad_coordinate.extxyz"
    catalogue, molecules = build_all(source, [path])
    reject = only_reject(catalogue)
    assert (reject.origin, reject.index, reject.mol_id) == (str(path), 1, "water-2")
    assert "non-numeric coordinate 'abc'" in reject.reason
    # frame 0 names itself (id=water-1); frame 2 has no id, so file stem + position in the file
    assert list(molecules.mol_id) == ["water-1", "bad_coordinate-2"]
    assert molecules.index.tolist() == [0, 2]
    z, pos, props = molecule(molecules, "water-1")
    assert z.tolist() == WATER_Z
    np.testing.assert_allclose(pos, WATER_POS)
    assert props["homo"] == -7.5
    assert props["energy"] == -76.4  # ASE moves energy= to a calculator: it must still come through
    z, _, props = molecule(molecules, "bad_coordinate-2")
    assert z.tolist() == AMMONIA_Z
    assert props["homo"] == -10.2 and np.isnan(props["energy"])
    # non-numeric info (note=gas-phase) and the id are not properties
    assert set(molecules.properties.columns) == {"homo", "energy"}
    assert molecules.properties.dtypes.eq(np.float64).all()


def test_count_line_that_is_not_an_integer_ends_the_file(source):
    path = DATA / "bad_count.xyz"
    catalogue, molecules = build_all(source, [path])
    assert list(molecules.mol_id) == ["bad_count-0"]
    reject = only_reject(catalogue)
    assert (reject.origin, reject.index) == (str(path), 1)
    assert "'three'" in reject.reason and "rest of the file" in reject.reason


def test_atomic_numbers_in_the_species_column_are_read(source, tmp_path):
    path = tmp_path / "numbers.xyz"
    path.write_text("3\n\n8 0.0 0.0 0.1173\n1 0.0 0.7572 -0.4692\n1 0.0 -0.7572 -0.4692\n")
    catalogue, molecules = build_all(source, [path])
    assert catalogue.rejects == []
    assert molecules.z.tolist() == WATER_Z


def test_dummy_atom_is_rejected(source, tmp_path):
    path = tmp_path / "dummy.xyz"
    path.write_text("2\n\nC 0 0 0\nX 0 0 1.5\n")
    catalogue, molecules = build_all(source, [path])
    assert len(molecules) == 0
    reject = only_reject(catalogue)
    assert reject.index == 0 and "unknown element 'X'" in reject.reason


def test_sdf_broken_record_rejected_tags_become_properties_and_ids(source):
    path = DATA / "mixed.sdf"
    catalogue, molecules = build_all(source, [path])
    reject = only_reject(catalogue)
    assert (reject.origin, reject.index) == (str(path), 1)
    assert reject.mol_id == "broken"  # RDKit could not parse the record, but its title names it
    assert "record 1" in reject.reason and "coordinates" in reject.reason
    # id tag wins over the title line; then the title line; then file stem + record position
    assert list(molecules.mol_id) == ["meoh-007", "water", "mixed-3"]
    assert molecules.index.tolist() == [0, 2, 3]
    z, pos, props = molecule(molecules, "meoh-007")
    assert z.tolist() == [6, 8, 1, 1, 1, 1]
    np.testing.assert_allclose(pos[1], [0.9596, -0.3767, -0.2602])
    assert props["homo"] == -7.1
    z, pos, props = molecule(molecules, "water")
    assert z.tolist() == WATER_Z
    np.testing.assert_allclose(pos, WATER_POS)
    assert props["homo"] == -7.5
    z, _, props = molecule(molecules, "mixed-3")
    assert z.tolist() == AMMONIA_Z and np.isnan(props["homo"])
    assert list(molecules.properties.columns) == ["homo"]  # not the text tag, not the id


def test_sdf_with_2d_coordinates_is_rejected(source, tmp_path):
    text = (DATA / "mixed.sdf").read_text().split("$$$$\n")[2]  # the water record
    flat = text.replace("hand-written   3D", "hand-written   2D").replace("0.1173", "0.0000")
    flat = flat.replace("-0.4692", " 0.0000")
    path = tmp_path / "flat.sdf"
    path.write_text(flat + "$$$$\n")
    catalogue, molecules = build_all(source, [path])
    assert len(molecules) == 0
    assert "2D" in only_reject(catalogue).reason


@pytest.fixture
def ase_db(tmp_path) -> Path:
    path = tmp_path / "x.db"
    db = ase.db.connect(path)
    water = Atoms("OH2", positions=WATER_POS)
    db.write(water, mol_id="w-17", homo=-7.5, solvent="none")
    ammonia = Atoms("NH3", positions=AMMONIA_POS)
    ammonia.calc = SinglePointCalculator(ammonia, energy=-56.5)
    db.write(ammonia, homo=-10.4)
    return path


def test_ase_db_rows_with_key_value_properties(source, ase_db):
    catalogue, molecules = build_all(source, [ase_db])
    assert catalogue.rejects == []
    assert list(molecules.mol_id) == ["w-17", "x-1"]
    assert molecules.origin.tolist() == [str(ase_db)] * 2
    z, pos, props = molecule(molecules, "w-17")
    assert z.tolist() == WATER_Z
    np.testing.assert_allclose(pos, WATER_POS)
    assert props["homo"] == -7.5 and np.isnan(props["energy"])
    z, pos, props = molecule(molecules, "x-1")
    assert z.tolist() == AMMONIA_Z
    np.testing.assert_allclose(pos, AMMONIA_POS)
    assert props["homo"] == -10.4 and props["energy"] == -56.5
    assert "solvent" not in molecules.properties.columns


def test_truncated_trajectory_keeps_the_frames_before_the_damage(source, tmp_path):
    frames = []
    for k in range(3):
        atoms = Atoms("OH2", positions=np.array(WATER_POS) + [0, 0, k])
        atoms.calc = SinglePointCalculator(atoms, energy=-76.0 - k)
        frames.append(atoms)
    whole = tmp_path / "whole.traj"
    ase.io.write(whole, frames)
    data = whole.read_bytes()
    cut = tmp_path / "cut.traj"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    catalogue, molecules = build_all(source, [cut])
    assert list(molecules.mol_id) == ["cut-0", "cut-1"]
    np.testing.assert_allclose(molecules.pos[3:6], np.array(WATER_POS) + [0, 0, 1])
    assert molecules.properties["energy"].tolist() == [-76.0, -77.0]
    reject = only_reject(catalogue)
    assert (reject.origin, reject.index) == (str(cut), 2)
    assert "truncated" in reject.reason


def test_missing_and_unreadable_files_are_rejects_and_good_files_are_kept(source, tmp_path):
    missing = tmp_path / "missing.xyz"
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database\n" * 5)
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    unknown = tmp_path / "notes.abc"
    unknown.write_text("hello\n")
    good = DATA / "unknown_element.xyz"
    catalogue, molecules = build_all(source, [missing, garbage, good, empty, unknown])
    assert list(molecules.mol_id) == ["unknown_element-0"]
    whole = {r.origin: r for r in catalogue.rejects if r.index == -1}
    assert set(whole) == {str(missing), str(garbage), str(empty), str(unknown)}
    assert "does not exist" in whole[str(missing)].reason
    assert "database" in whole[str(garbage)].reason
    assert "empty" in whole[str(empty)].reason
    assert "format" in whole[str(unknown)].reason
    assert garbage.read_text() == "not a database\n" * 5  # ASE must not write into a file it reads


def test_directory_input_takes_known_extensions_sorted_and_reports_the_rest(source, tmp_path, caplog):
    for name in ("b.xyz", "a.xyz"):
        (tmp_path / name).write_text((DATA / "unknown_element.xyz").read_text())
    (tmp_path / "README.md").write_text("# not molecules\n")
    (tmp_path / "d.xyx").write_text((DATA / "unknown_element.xyz").read_text())  # a typo
    (tmp_path / "c.sdf").write_text((DATA / "mixed.sdf").read_text())
    (tmp_path / "more.xyz").mkdir()  # a folder (even one named like a file) is not read, but named
    (tmp_path / "more.xyz" / "e.xyz").write_text((DATA / "unknown_element.xyz").read_text())
    with caplog.at_level("WARNING"):
        catalogue, molecules = build_all(source, [tmp_path])
    assert list(molecules.mol_id) == ["a-0", "b-0", "meoh-007", "water", "c-3"]
    names = {Path(r.origin).name for r in catalogue.rejects}
    assert names == {"a.xyz", "b.xyz", "c.sdf", "README.md", "d.xyx", "more.xyz"}
    # the files and folders not read are named: in the log, and in the rejects with why
    assert (
        "skipped 3 files or folders" in caplog.text and "README.md" in caplog.text and "d.xyx" in caplog.text
    )
    skipped = {Path(r.origin).name: r for r in catalogue.rejects if r.reason.startswith("skipped")}
    assert set(skipped) == {"README.md", "d.xyx", "more.xyz"} and {r.index for r in skipped.values()} == {-1}
    assert "'.xyx'" in skipped["d.xyx"].reason and ".xyz" in skipped["d.xyx"].reason
    assert "skipped: a folder; the folders inside an input folder are not read" in skipped["more.xyz"].reason


def test_materialise_returns_the_requested_rows_in_that_order(source):
    catalogue = source.catalogue([DATA])
    entries = catalogue.entries
    assert len(entries) == 10
    everything, _ = source.materialise(catalogue, np.arange(len(entries)), seed=0)
    rows = np.array([7, 0, 4])
    subset, rejects = source.materialise(catalogue, rows, seed=0)
    assert rejects == []
    assert list(subset.mol_id) == list(entries["mol_id"].to_numpy()[rows])
    assert subset.origin.tolist() == entries["origin"].to_numpy()[rows].tolist()
    assert subset.index.tolist() == entries["index"].to_numpy()[rows].tolist()
    for k, row in enumerate(rows):
        z, pos, props = molecule(everything, entries["mol_id"].iat[row])
        sz, spos, sprops = molecule(subset, subset.mol_id[k])
        assert sz.tolist() == z.tolist()
        np.testing.assert_array_equal(spos, pos)
        assert sprops.equals(props)
    assert subset.n_atoms.sum() == len(subset.z) == len(subset.pos)


def test_equally_named_files_in_different_folders_get_distinct_ids(source, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mols.xyz").write_text((DATA / "count_mismatch.xyz").read_text())
    (tmp_path / "other.xyz").write_text((DATA / "unknown_element.xyz").read_text())
    catalogue, molecules = build_all(
        source, [tmp_path / "a", tmp_path / "b" / "mols.xyz", tmp_path / "other.xyz"]
    )
    ids = list(molecules.mol_id)
    assert ids == ["a/mols-1", "a/mols-2", "b/mols-1", "b/mols-2", "other-0"]  # a name without a clash stays
    assert len(set(ids)) == len(ids)
    assert {r.mol_id for r in catalogue.rejects if r.index == 0} >= {"a/mols-0", "b/mols-0"}
    # the same stem side by side in one folder: the file name tells them apart
    (tmp_path / "a" / "mols.extxyz").write_text((DATA / "unknown_element.xyz").read_text())
    _, molecules = build_all(source, [tmp_path / "a"])
    assert list(molecules.mol_id) == ["mols.extxyz-0", "mols.xyz-1", "mols.xyz-2"]


H3O_POS = [[0.0, 0.0, 0.12], [0.0, 0.94, -0.16], [0.81, -0.47, -0.16], [-0.81, -0.47, -0.16]]


def test_extxyz_charge_and_multiplicity_are_read_and_are_not_properties(source, tmp_path):
    frames = [
        Atoms("OH3", positions=H3O_POS, info={"mol_id": "hydronium", "charge": 1, "homo": -20.0}),
        Atoms("OH", positions=WATER_POS[:2], info={"mol_id": "hydroxyl", "spin": 2}),
        Atoms("O2", positions=[[0, 0, 0], [0, 0, 1.21]], info={"mol_id": "dioxygen", "multiplicity": 3}),
        Atoms("OH2", positions=WATER_POS, info={"mol_id": "water"}),
        Atoms("OH2", positions=WATER_POS, info={"mol_id": "half", "charge": 0.5}),
    ]
    path = tmp_path / "ions.extxyz"
    ase.io.write(path, frames, format="extxyz")
    catalogue, molecules = build_all(source, [path])
    assert list(molecules.mol_id) == ["hydronium", "hydroxyl", "dioxygen", "water"]
    assert molecules.charge.tolist() == [1, 0, 0, 0]
    assert molecules.multiplicity.tolist() == [0, 2, 3, 0]  # 0: the file does not say
    assert molecules.spin_multiplicity().tolist() == [1, 2, 3, 1]
    assert list(molecules.properties.columns) == ["homo"]  # charge and spin are not targets
    reject = only_reject(catalogue)
    assert reject.mol_id == "half" and "charge=0.5 is not a whole number" in reject.reason


def _salt_sdf(path: Path, records: list[tuple[str, str, float]]) -> Path:
    """An SDF of RDKit conformers: (name, SMILES, distance in Å between fragments) per record."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    writer = Chem.SDWriter(str(path))
    for name, smiles, apart in records:
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        conformer = mol.GetConformer()
        for k, frag in enumerate(Chem.GetMolFrags(mol)[1:], start=1):  # move the counter-ions away
            for atom in frag:
                p = conformer.GetAtomPosition(atom)
                conformer.SetAtomPosition(atom, (p.x + apart * k, p.y, p.z))
        mol.SetProp("_Name", name)
        writer.write(mol)
    writer.close()
    return path


def test_sdf_formal_charges_radicals_and_salts(tmp_path):
    path = _salt_sdf(
        tmp_path / "salts.sdf",
        [("mea_hcl", "C[NH3+].[Cl-]", 4.0), ("acetate", "CC(=O)[O-]", 0.0), ("methyl", "[CH3]", 0.0)],
    )
    catalogue, molecules = build_all(FilesSource(), [path])
    assert catalogue.rejects == []
    assert list(molecules.mol_id) == ["mea_hcl", "acetate", "methyl"]
    z, pos, _ = molecule(molecules, "mea_hcl")
    assert sorted(z.tolist()) == [1] * 6 + [6, 7]  # the largest fragment, methylammonium
    assert molecules.charge.tolist() == [1, -1, 0]  # that fragment's charge
    assert molecules.multiplicity.tolist() == [0, 0, 2]  # M  RAD
    catalogue, molecules = build_all(FilesSource(fragments="reject"), [path])
    assert list(molecules.mol_id) == ["acetate", "methyl"]
    reject = only_reject(catalogue)
    assert (reject.index, reject.mol_id) == (0, "mea_hcl")
    assert "2 disconnected fragments (CH6N+, Cl-)" in reject.reason


def test_sdf_record_without_bonds_is_taken_whole(tmp_path):
    """No bond block (as some programs write SDF): no connectivity to split by, so no atom is dropped."""
    ase.io.write(tmp_path / "nobonds.sdf", Atoms("OH2", positions=WATER_POS))
    _, molecules = build_all(FilesSource(fragments="reject"), [tmp_path / "nobonds.sdf"])
    assert molecules.z.tolist() == WATER_Z


@pytest.mark.parametrize("name", ["junk.xyz", "junk.sdf", "junk.extxyz", "junk.pdb", "junk.xyz.gz"])
def test_binary_file_is_rejected_with_a_readable_reason(source, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)))
    catalogue = source.catalogue([path])
    reject = only_reject(catalogue)
    assert (reject.origin, reject.index, reject.mol_id) == (str(path), -1, None)
    if name.endswith(".gz"):
        assert reject.reason == "not a valid .gz file (damaged, or not compressed with gz)"
    else:
        assert reject.reason == "not a text file (binary content)"


def test_a_pdb_with_the_placeholder_cell_of_a_non_crystal_is_a_molecule(source, tmp_path):
    """CRYST1 1 1 1 90 90 90 is the PDB's way of saying "not a crystal" (ASE reads it as periodic):
    the molecule is kept; a real cell is a periodic structure, rejected."""
    atoms = (
        "ATOM      1  O   HOH A   1       0.000   0.000   0.117  1.00  0.00           O\n"
        "ATOM      2  H1  HOH A   1       0.000   0.757  -0.469  1.00  0.00           H\n"
        "ATOM      3  H2  HOH A   1       0.000  -0.757  -0.469  1.00  0.00           H\n"
        "END\n"
    )
    cryst = "CRYST1{0:9.3f}{0:9.3f}{0:9.3f}  90.00  90.00  90.00 P 1           1\n"
    (tmp_path / "placeholder.pdb").write_text(cryst.format(1.0) + atoms)
    (tmp_path / "crystal.pdb").write_text(cryst.format(12.0) + atoms)
    catalogue = source.catalogue([tmp_path / "placeholder.pdb", tmp_path / "crystal.pdb"])
    assert catalogue.entries.mol_id.tolist() == ["placeholder-0"]
    (reject,) = catalogue.rejects
    assert reject.mol_id == "crystal-0" and "periodic structure" in reject.reason
