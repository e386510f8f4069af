"""Shared fixtures: small real QM9 inputs cut from the qm9pack CSVs, and one QM9 graph set per size
(the tiny model every network test starts from is :func:`tiny.tiny_model`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data.sources.qm9 import qm9_csvs


@pytest.fixture(scope="session")
def qm9_lines() -> list[str]:
    """Header plus the first 40 molecules of QM9 (CH4, NH3, H2O, ...), as raw CSV lines."""
    with open(qm9_csvs()[0]) as fh:
        return [next(fh) for _ in range(41)]


@pytest.fixture
def qm9_csv(tmp_path: Path, qm9_lines: list[str]):
    """Write a QM9-format CSV from (possibly edited) lines; returns a function(lines) -> path."""

    def write(lines: list[str] | None = None, name: str = "mini_qm9.csv") -> Path:
        path = tmp_path / name
        path.write_text("".join(lines if lines is not None else qm9_lines))
        return path

    return write


@pytest.fixture(scope="session")
def qm9_graphs(tmp_path_factory):
    """The seeded QM9 subset of ``limit`` molecules (full graphs, 30 Å cutoff), featurised once per
    session and size: a function(limit) -> (GraphSet, answer key DataFrame in the graphs' order).
    Read-only: every test that takes it shares the objects."""
    import pandas as pd

    from pipeline.data.featurise import FeaturiseSettings, featurise
    from pipeline.data.graphs import load_graphs

    made: dict[int, tuple] = {}

    def get(limit: int):
        if limit not in made:
            out = tmp_path_factory.mktemp(f"qm9-{limit}")
            featurise(FeaturiseSettings(source="qm9", limit=limit, seed=0), out)
            graphs = load_graphs(out)
            key = pd.read_parquet(out / "answer_key.parquet").set_index("mol_id").loc[list(graphs.mol_id)]
            made[limit] = (graphs, key)
        return made[limit]

    return get
