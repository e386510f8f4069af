"""Benchmark tables from the recorded runs (docs/measured/benchmark-cpu/runs), for any set of methods
and any baseline: the workflow's own benchmark-table (mean ± std over seeds, paired differences to the
baseline with 95% t-intervals, the figure), on the summaries that outlived their machines.

    python docs/measured/benchmark-cpu/compare.py PART BASELINE OUT_DIR METHOD [METHOD ...]

PART is the benchmark (ssl, al, pseudo, pretrain); the runs are PART-METHOD-s{seed}. Runs recorded
before run.json named its benchmark and method get them from their folder's name, and runs recorded
without a learning_curve.csv get one from their rounds' student.json (in temporary copies; the
records are not changed).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from pipeline.cli import main as pipeline
from pipeline.reports.runs import learning_curve

RUNS = Path(__file__).parent / "runs"


def seed_runs(part: str, method: str) -> dict[int, Path]:
    """Seed -> the recorded run folder PART-METHOD-s{seed}, in seed order."""
    runs = {}
    for folder in RUNS.glob(f"{part}-{method}-s*"):
        match = re.fullmatch(rf"{re.escape(part)}-{re.escape(method)}-s(\d+)", folder.name)
        if match:
            runs[int(match.group(1))] = folder
    return dict(sorted(runs.items()))


def compare(part: str, baseline: str, out: Path, methods: list[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    args: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            for seed, folder in seed_runs(part, method).items():
                curve = folder / "learning_curve.csv"
                if not curve.exists():  # recorded without one: made from its rounds' student.json
                    curve = Path(tmp) / f"{folder.name}.csv"
                    students = sorted(folder.glob("round_*/student.json"))
                    learning_curve({folder.name: students}).to_csv(curve, index=False)
                settings = json.loads((folder / "run.json").read_text())
                settings.update(benchmark=part, method=method, seed=seed)
                run_json = Path(tmp) / f"{folder.name}.json"
                run_json.write_text(json.dumps(settings))
                args += ["--run-json", str(run_json), "--curve", str(curve)]
        return pipeline(
            [
                "benchmark-table", *args, "--baseline", baseline,
                "--csv", str(out / "table.csv"), "--markdown", str(out / "table.md"),
                "--png", str(out / "figure.png"), "--paired-csv", str(out / "paired.csv"),
                "--efficiency-csv", str(out / "efficiency.csv"),
            ]
        )  # fmt: skip


if __name__ == "__main__":
    part, baseline, out, *methods = sys.argv[1:]
    sys.exit(compare(part, baseline, Path(out), methods))
