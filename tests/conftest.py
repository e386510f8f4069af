"""Shared fixtures: small real QM9 inputs cut from the qm9pack CSVs."""

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
