"""Config resolution shared by the workflow and the package: benchmark matrices -> runs, and the
checks across keys that the schema cannot make.

A benchmark in the config (``benchmarks: {name: ...}``) is a base run, one small override per
method, and a list of seeds. :func:`expand_benchmarks` turns it into the runs Snakemake schedules,
one per (method, seed), named ``{name}-{method}-s{seed}``; each is the base deep-merged with the
method's override, with ``seed`` set. Runs of one benchmark with the same seed therefore share the
split (``base.split``), the initial labels (drawn from the run seed) and the model's initialisation:
their test errors can be compared pair by pair.

This module imports no torch, so the workflow can import it when it parses the config.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "MIN_ATOM_DISTANCE",
    "BenchmarkRun",
    "check_config",
    "deep_merge",
    "duplicate_keys",
    "expand_benchmarks",
    "label_budget",
    "run_name",
]


def duplicate_keys(text: str) -> list[str]:
    """Every key that a YAML mapping of ``text`` states twice, as ``"line L: key 'k' in a.b (first at
    line F)"``; empty when there are none.

    YAML loaders keep the last of two equal keys without a word, so a config with ``train:`` twice
    in one run would train with settings the user did not choose. Merge keys (``<<: *base``) are
    not duplicates: keys stated beside them override the merged ones, as YAML intends.
    """
    import yaml  # PyYAML comes with Snakemake; imported here so this module loads without it

    found: list[str] = []
    seen: set[int] = set()

    def walk(node: yaml.Node, where: list[str]) -> None:
        if id(node) in seen:  # an alias of a node already checked
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                if key.tag != "tag:yaml.org,2002:merge":
                    if name in first:
                        path = ".".join(where) or "the top level"
                        found.append(
                            f"line {key.start_mark.line + 1}: key {name!r} in {path} "
                            f"(first at line {first[name]})"
                        )
                    first.setdefault(name, key.start_mark.line + 1)
                walk(value, [*where, name])
        elif isinstance(node, yaml.SequenceNode):
            for k, item in enumerate(node.value):
                walk(item, [*where, str(k)])

    for document in yaml.compose_all(text):
        if document is not None:
            walk(document, [])
    return found


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def run_name(benchmark: str, method: str, seed: int) -> str:
    """The run of ``method`` with ``seed`` in ``benchmark``: ``{benchmark}-{method}-s{seed}``."""
    return f"{benchmark}-{method}-s{seed}"


class BenchmarkRun(NamedTuple):
    """Which benchmark, method and seed an expanded run is."""

    benchmark: str
    method: str
    seed: int


def expand_benchmarks(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, BenchmarkRun]]:
    """The config's runs plus every benchmark's (method, seed) runs, and which run is which.

    Args:
        config: the workflow config, already validated (each benchmark has ``base``, ``methods``
            and ``seeds``; ``runs`` may be empty).

    Returns:
        (runs, members): ``runs`` is ``config["runs"]`` followed by the expanded runs (not yet
        validated: validate them as runs, which also fills in defaults); ``members`` maps each
        expanded run's name to its :class:`BenchmarkRun`.

    Raises:
        ValueError: an expanded run's name collides with a run of ``runs`` or of another
            benchmark, or a derived method names a method the benchmark does not have.
    """
    runs = copy.deepcopy(dict(config.get("runs") or {}))
    members: dict[str, BenchmarkRun] = {}
    for bench, spec in (config.get("benchmarks") or {}).items():
        methods = spec["methods"]
        for derived, source in (spec.get("derived") or {}).items():
            if source not in methods:
                raise ValueError(
                    f"benchmarks.{bench}.derived.{derived}: method {source!r} is not among "
                    f"benchmarks.{bench}.methods ({', '.join(methods)})"
                )
            if derived in methods:
                raise ValueError(f"benchmarks.{bench}.derived.{derived}: also a key of methods")
        baseline = spec.get("baseline")
        if baseline is not None and baseline not in methods and baseline not in (spec.get("derived") or {}):
            raise ValueError(
                f"benchmarks.{bench}.baseline: {baseline!r} is not a method of the benchmark "
                f"({', '.join(methods)})"
            )
        for method, override in methods.items():
            for seed in spec["seeds"]:
                name = run_name(bench, method, seed)
                if name in runs:
                    raise ValueError(f"benchmarks.{bench}: run {name!r} is already defined")
                runs[name] = deep_merge(deep_merge(spec["base"], override or {}), {"seed": seed})
                members[name] = BenchmarkRun(bench, method, seed)
    return runs, members


#: Two atoms closer than this (Å) mean a broken geometry, not a molecule; an edge cutoff must exceed it.
MIN_ATOM_DISTANCE = 0.1


def label_budget(run: Mapping[str, Any]) -> int:
    """Pool molecules a run labels over all its rounds: ``initial.size + (rounds - 1) * batch``."""
    return int(run["initial"]["size"]) + (int(run["rounds"]) - 1) * int(run["batch"])


def check_config(config: Mapping[str, Any]) -> list[str]:
    """What a validated config (benchmarks expanded, defaults filled in) asks that cannot work, as
    ``"at runs.a.targets: ..."`` lines; empty when nothing is wrong.

    These are the mistakes one key alone cannot show (the schema checks each key): they would
    otherwise surface only after hours of training, or never. What needs the featurised dataset
    (its molecule count, its answer key's targets) is checked by the split stage
    (:func:`pipeline.split.split_dataset`), before the first training job.
    """
    from .registry import ORACLES
    from .units import plausible_ranges

    datasets = config.get("datasets") or {}
    errors = []
    for name, dataset in datasets.items():
        ranges = dataset["oracle"].get("ranges") or {}
        for target in ranges:
            try:
                plausible_ranges([target], ranges)
            except ValueError as err:
                errors.append(f"at datasets.{name}.{err}")
        if not dataset["cutoff"] > MIN_ATOM_DISTANCE:
            errors.append(
                f"at datasets.{name}.cutoff: {dataset['cutoff']} Å; the featuriser needs a cutoff above "
                f"{MIN_ATOM_DISTANCE} Å (atoms closer than that are a broken geometry)"
            )
    for run_id, run in (config.get("runs") or {}).items():
        at = f"at runs.{run_id}"
        if run["dataset"] not in datasets:
            errors.append(
                f"{at}.dataset: '{run['dataset']}' is not declared under 'datasets' "
                f"(declared: {', '.join(datasets)})"
            )
            continue
        dataset = datasets[run["dataset"]]
        oracle = dataset["oracle"]["name"]
        can = ORACLES[oracle].targets
        cannot = sorted(set(run["targets"]) - set(can or run["targets"]))
        if cannot:
            errors.append(
                f"{at}.targets: the {oracle} oracle of dataset '{run['dataset']}' cannot label "
                f"{cannot} (it labels {', '.join(can or ())})"
            )
        if run["strategy"] == "mc_dropout" and not run["model"]["dropout"] > 0:
            errors.append(
                f"{at}.model.dropout: strategy mc_dropout samples the student's dropout, but dropout is "
                f"{run['model']['dropout']} (set e.g. model.dropout: 0.1)"
            )
        budget, split = label_budget(run), run["split"]
        rounds = f"initial.size {run['initial']['size']} + {run['rounds'] - 1} rounds x batch {run['batch']}"
        if split["pool"] is not None and budget > split["pool"]:
            errors.append(
                f"{at}.split.pool: {split['pool']} molecules, fewer than the {budget} to label ({rounds})"
            )
        if dataset["limit"] is not None:
            pool = split["pool"] if split["pool"] is not None else budget
            needed = split["val"] + split["test"] + pool
            if needed > dataset["limit"]:
                errors.append(
                    f"{at}: needs {needed} molecules (val {split['val']} + test {split['test']} + "
                    f"{'pool' if split['pool'] is not None else 'labels'} {pool}), but "
                    f"datasets.{run['dataset']}.limit is {dataset['limit']}"
                )
    return errors
