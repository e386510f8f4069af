"""Config resolution shared by the workflow and the package: benchmark matrices -> runs.

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

__all__ = ["BenchmarkRun", "deep_merge", "expand_benchmarks", "run_name"]


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
