"""The package's layout: each package imports only the packages below it (src/pipeline/__init__.py
lists them in order), selection never reaches the training loops, and the light packages stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "pipeline"

#: What each package may import from the others: the layers of docs/architecture.md.
ALLOWED = {
    "config": set(),
    "plan": {"config"},
    "data": {"config"},
    "label": {"config", "data"},
    "reports": {"config", "data"},
    "model": {"config", "data"},
    "learn": {"config", "data", "model"},
    "selection": {"config", "data", "model", "learn"},
    "stages": {"config", "plan", "data", "label", "model", "learn", "selection"},
    "cli": {"config", "plan", "data", "label", "reports", "model", "learn", "selection", "stages"},
}
#: Modules selection may use from learn: device and RNG utilities, not the training loops.
SELECTION_MAY_USE = {"pipeline.learn.runtime"}


def _package(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth (function-level ones included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "." * node.level + (node.module or "")))
            elif node.module:
                found += [(node.lineno, node.module)] + [
                    (node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "pipeline"
                ]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_package_is_in_the_layer_table_and_documents_its_rules():
    packages = {_package(p) for p in MODULES} - {"__init__"}
    assert packages == set(ALLOWED)
    for name in ALLOWED:
        init = PACKAGE / name / "__init__.py"
        if init.exists():
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            assert "May import" in doc, f"{init}: the docstring says what the package owns and may import"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_package_above_its_own(path):
    own = _package(path)
    bad = []
    for line, module in _imports(path):
        if module.startswith("."):
            bad.append(f"line {line}: relative import {module} (import pipeline.<package>... instead)")
            continue
        parts = module.split(".")
        if parts[0] != "pipeline" or len(parts) < 2 or parts[1] == "__version__" or own == "__init__":
            continue
        target = parts[1]
        if target != own and target not in ALLOWED[own]:
            bad.append(f"line {line}: {module} ({own} may import {sorted(ALLOWED[own]) or 'no package'})")
        if own == "selection" and target == "learn" and module not in SELECTION_MAY_USE:
            bad.append(f"line {line}: {module} (selection may use only {sorted(SELECTION_MAY_USE)} of learn)")
    assert not bad, f"{path.relative_to(SRC)}:\n" + "\n".join(bad)


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The check itself can fail: a config module importing the model is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from pipeline.model.asgn import ASGNModel\n    from . import x\n")
    modules = [m for _, m in _imports(bad)]
    assert modules == ["pipeline.model.asgn", "."]
    assert "model" not in ALLOWED["config"] and "learn" not in ALLOWED["selection"] - {"learn"}


@pytest.mark.parametrize(
    ("modules", "heavy"),
    [
        (  # what common.smk imports when Snakemake parses the config
            [
                "pipeline.config.registry",
                "pipeline.config.settings",
                "pipeline.config.digest",
                "pipeline.plan",
            ],
            ("torch", "numpy", "pandas", "pyarrow"),
        ),
        (
            ["pipeline.label.oracle", "pipeline.label.qc", "pipeline.reports.benchmark", "pipeline.cli"],
            ("torch",),
        ),
    ],
)
def test_light_packages_do_not_load_heavy_libraries(modules, heavy):
    """The workflow imports config and plan on every Snakemake call (the Snakemake process must not pay
    for torch, or need it, or pyarrow, at all); label jobs, reports and the command itself run without
    torch: importing them loads none of ``heavy``."""
    code = (
        f"import sys; sys.path.insert(0, {str(SRC)!r}); import {', '.join(modules)}; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
