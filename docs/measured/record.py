"""Copy finished runs' summaries from a results folder into docs/measured, so they outlive the machine.

    python docs/measured/record.py RESULTS_DIR DEST_DIR RUN [RUN ...]

For each run: run.json, every round's student.json, teacher.json and predictions.parquet (where the
round has one) and selected.parquet (the picks), and learning_curve.csv (written from the
student.json files, as the workflow's learning_curve rule does, when the run folder has none). A run
whose last round has no student.json yet is skipped with a message: record it when it has finished.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pipeline.config.settings import RunConfig
from pipeline.reports.runs import learning_curve

COPIED = ("student.json", "teacher.json", "selected.parquet", "predictions.parquet")


def record(results: Path, dest: Path, run: str) -> bool:
    source = results / "runs" / run
    cfg = RunConfig.read(source / "run.json")
    last = source / f"round_{cfg.rounds - 1:02d}" / "student.json"
    if not last.exists():
        print(f"{run}: not finished ({last} missing), skipped")
        return False
    out = dest / run
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "run.json", out / "run.json")
    students = []
    for r in range(cfg.rounds):
        name = f"round_{r:02d}"
        (out / name).mkdir(exist_ok=True)
        for file in COPIED:
            if (source / name / file).exists():
                shutil.copyfile(source / name / file, out / name / file)
        students.append(out / name / "student.json")
    curve = source / "learning_curve.csv"
    if curve.exists():
        shutil.copyfile(curve, out / "learning_curve.csv")
    else:
        learning_curve({run: students}).to_csv(out / "learning_curve.csv", index=False)
    print(f"{run}: recorded in {out}")
    return True


if __name__ == "__main__":
    results, dest, *runs = sys.argv[1:]
    for run in runs:
        record(Path(results), Path(dest), run)
