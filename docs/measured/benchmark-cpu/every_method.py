"""Every recorded benchmark-cpu method at 500, 1,000 and 2,500 labels, in one Markdown table.

    python docs/measured/benchmark-cpu/every_method.py [--parts ssl al] [--budgets 500 1000 2500]

For each run folder PART-METHOD-sSEED of docs/measured/benchmark-cpu/runs (the summaries that
outlived their machines), each round's test MAE per target from its student.json; per method and
budget, mean ± std over the seeds that reached it (n in brackets). The "cheap method" column says
what besides the labels a method uses (xTB or a pretrained potential, as delta base or helping
properties), from run.json. A cell marked † is over fewer test molecules: its delta base failed on
some (ANI knows no fluorine; student.json's baseline_missing), so compare it on the common molecules
(common_molecules.py).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

RUNS = Path(__file__).parent / "runs"
NAMES = {"homo": "HOMO", "u0": "U0"}


def cheap_method(settings: dict) -> str:
    """What a run uses besides its labels: its delta base's and helpers' sources."""
    used = []
    delta = settings.get("delta") or {}
    if delta.get("properties"):
        targets = ", ".join(NAMES.get(t, t) for t in delta["properties"])
        used.append(f"{delta['source']} (delta: {targets})")
    helpers = settings.get("helpers") or {}
    if helpers.get("properties"):
        used.append(f"{helpers['source']} (helpers)")
    return "; ".join(used) or "none"


def collect(parts: list[str]) -> tuple[dict, dict]:
    """(part, method) -> target -> labels -> [test MAE per seed], and (part, method) -> info."""
    values: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    info: dict = {}
    for folder in sorted(RUNS.iterdir()):
        match = re.fullmatch(r"([a-z0-9]+)-(.+)-s(\d+)", folder.name)
        if not match or match.group(1) not in parts:
            continue
        key = (match.group(1), match.group(2))
        settings = json.loads((folder / "run.json").read_text())
        delta = set((settings.get("delta") or {}).get("properties") or {})
        entry = info.setdefault(key, {"cheap": cheap_method(settings), "delta": delta, "missing": set()})
        for student in sorted(folder.glob("round_*/student.json")):
            record = json.loads(student.read_text())
            for target, mae in record["test_mae"].items():
                values[key][target][int(record["labelled"])].append(float(mae))
            if any((record.get("baseline_missing") or {}).values()):  # val / test molecules without one
                entry["missing"].add(int(record["labelled"]))
    return values, info


def cell(maes: list[float], mark: str) -> str:
    if not maes:
        return ""
    text = f"{np.mean(maes):.3f}" + (f" ± {np.std(maes, ddof=1):.3f}" if len(maes) > 1 else "")
    return f"{text} ({len(maes)}){mark}"


def table(parts: list[str], budgets: list[int]) -> str:
    values, info = collect(parts)
    targets = ["homo", "u0"]
    header = ["part", "method", "cheap method"]
    header += [f"{NAMES[t]} {b:,}" for t in targets for b in budgets]
    rule = ["---"] * 3 + ["--:"] * (len(header) - 3)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    for key in sorted(values, key=lambda k: (parts.index(k[0]), k[1])):
        cells = []
        for target in targets:
            for budget in budgets:
                missing = budget in info[key]["missing"] and target in info[key]["delta"]
                mark = "†" if missing else ""
                cells.append(cell(values[key][target].get(budget, []), mark))
        if any(cells):
            lines.append("| " + " | ".join([key[0], key[1], info[key]["cheap"], *cells]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["ssl", "al"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[500, 1000, 2500])
    args = parser.parse_args()
    print(table(args.parts, args.budgets))
