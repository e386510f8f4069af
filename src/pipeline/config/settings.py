"""Config resolution shared by the workflow and the package: the validated YAML -> every run's
settings (:class:`RunConfig`, written as ``run.json``), benchmark matrices -> runs, and the checks
across keys that the schema cannot make. :func:`resolve` does all of it, in that order.

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
import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.config.network import ModelConfig, ModelSettings
from pipeline.config.training import KernelSettings, LossWeights, TrainConfig
from pipeline.config.units import EXTENSIVE_TARGETS, TARGETS

__all__ = [
    "MIN_ATOM_DISTANCE",
    "BenchmarkRun",
    "Resolved",
    "RunConfig",
    "check_config",
    "deep_merge",
    "duplicate_keys",
    "expand_benchmarks",
    "helper_columns",
    "label_budget",
    "non_finite_numbers",
    "resolve",
    "round_0_sources",
    "config_file_error",
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


def _typed(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """``cls(**values)``, refusing a key ``cls`` does not have with an error naming it and ``where``."""
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"unknown {where} settings {unknown}")
    return cls(**values)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class RunConfig:
    """One run's resolved settings (``run.json``): what every stage of the run reads.

    The defaults are the schema's (``workflow/schemas/config.schema.yaml``; a test compares them).
    ``model`` and ``train`` are typed (:class:`~pipeline.config.network.ModelSettings`,
    :class:`~pipeline.config.training.TrainConfig` with the loss weights as ``train.weights``); given
    as dicts (a run.json, a JSON object), they are converted and an unknown key is an error naming
    it. :meth:`architecture` is the network they describe for a dataset.
    """

    run: str
    targets: list[str]
    strategy: str = "kcenter"  # selection strategy (pipeline.config.registry.STRATEGIES)
    initial_size: int = 100  # labelled molecules in round 0
    initial_strategy: str = "random"  # round 0: random, or kcenter on an untrained teacher's embeddings
    batch: int = 100  # molecules labelled per round (b)
    rounds: int = 3
    seed: int = 0
    device: str = "auto"
    student: bool = True  # False: ASGN-T (the teacher's own predictions are the result)
    # "network": the teacher's weights fine-tuned on the labels; "krr": kernel ridge regression on
    # FCHL19 (pipeline.config.registry.STUDENTS), with the grid of ``krr``
    student_kind: str = "network"
    krr: KernelSettings = field(default_factory=KernelSettings)
    pseudo_labels: bool = True  # the teacher learns the previous student's pseudo-labels
    committee: int = 4  # qbc: students in the committee (K)
    mc_samples: int = 20  # mc_dropout: stochastic forward passes per molecule
    # what kcenter, lcmd, bait, kmeanspp pick on: "embeddings" (the teacher's z_G) or
    # "student_gradients" (the round's student's last-layer gradient features)
    selection_features: str = "embeddings"
    # helping properties the teacher learns on every pool molecule: {"source", "properties"}
    helpers: dict[str, Any] = field(default_factory=lambda: {"source": "xtb", "properties": []})
    # delta learning: {"source", "properties": {target: the cheap method's property}}; every learner
    # learns those targets minus the cheap method's value (baseline.parquet), predicts it plus that
    delta: dict[str, Any] = field(default_factory=lambda: {"source": "xtb", "properties": {}})
    model: ModelSettings = field(default_factory=ModelSettings)  # the config's model section
    train: TrainConfig = field(default_factory=TrainConfig)  # train section; weights: the losses section
    benchmark: str | None = None  # the benchmark this run is a (method, seed) of, if any
    method: str | None = None  # its method in that benchmark

    @classmethod
    def from_config(cls, name: str, run: Mapping[str, Any], member: BenchmarkRun | None = None) -> RunConfig:
        """The settings of run ``name`` from its validated config section (defaults filled in)."""
        return cls(
            run=name,
            targets=list(run["targets"]),
            strategy=run["strategy"],
            initial_size=run["initial"]["size"],
            initial_strategy=run["initial"]["strategy"],
            batch=run["batch"],
            rounds=run["rounds"],
            seed=run["seed"],
            device=run["device"],
            student=run["student"],
            student_kind=run["student_kind"],
            krr=KernelSettings(**run["krr"]),
            pseudo_labels=run["pseudo_labels"],
            committee=run["committee"],
            mc_samples=run["mc_samples"],
            selection_features=run["selection_features"],
            helpers=dict(run["helpers"]),
            delta={"source": run["delta"]["source"], "properties": dict(run["delta"]["properties"])},
            model=ModelSettings(**run["model"]),
            train=TrainConfig(**run["train"], weights=LossWeights(**run["losses"])),
            benchmark=member.benchmark if member else None,
            method=member.method if member else None,
        )

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        """The settings in ``path`` (a run.json); unknown keys are an error naming them."""
        values = json.loads(Path(path).read_text())
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown run config keys {sorted(unknown)}")
        return cls(**values)

    def __post_init__(self) -> None:
        if isinstance(self.krr, Mapping):
            self.krr = _typed(KernelSettings, self.krr, "krr")
        if isinstance(self.model, Mapping):
            self.model = _typed(ModelSettings, self.model, "model")
        if isinstance(self.train, Mapping):
            values = dict(self.train)
            weights = values.pop("weights", {})
            self.train = _typed(TrainConfig, values, "train")
            self.train.weights = (
                weights if isinstance(weights, LossWeights) else _typed(LossWeights, weights, "train.weights")
            )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values: what run.json holds."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["model"], out["train"] = dataclasses.asdict(self.model), dataclasses.asdict(self.train)
        out["krr"] = dataclasses.asdict(self.krr)
        return out

    def architecture(self, cutoff: float, dist_range: tuple[float, float] = (0.0, 30.0)) -> ModelConfig:
        """The run's (teacher's) network for a dataset: RBF and filters up to the dataset's ``cutoff``
        and, unless the run sets ``model.dist_min``/``dist_max``, distance bins over ``dist_range``
        (the dataset's pair distances: :func:`pipeline.stages.context.dist_range`). Its outputs are the
        targets, then the helping properties (:attr:`helper_columns`, read out like the property they
        are: a sum for an extensive one); the student keeps only the targets
        (:func:`pipeline.learn.train.transfer`)."""
        values = {k: v for k, v in dataclasses.asdict(self.model).items() if v is not None}
        values.setdefault("dist_min", dist_range[0])
        values.setdefault("dist_max", max(dist_range[1], values["dist_min"] + 0.1))
        helpers = dict(zip(self.helper_columns, self.helpers.get("properties") or (), strict=True))
        readout = {col: "sum" if prop in EXTENSIVE_TARGETS else "mean" for col, prop in helpers.items()}
        return ModelConfig(
            **{"cutoff": cutoff, "rbf_stop": cutoff, **values},
            targets=(*self.targets, *helpers),
            readout=readout,
        )

    @property
    def delta_targets(self) -> dict[str, str]:
        """Target -> the cheap method's property it is learnt relative to (empty: no delta)."""
        return dict(self.delta.get("properties") or {})

    @property
    def helper_columns(self) -> list[str]:
        """The teacher's extra outputs for the helping properties (:func:`helper_columns`)."""
        return helper_columns(self.helpers)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


@dataclass(frozen=True)
class Resolved:
    """A resolved workflow config: what :func:`resolve` returns."""

    datasets: dict[str, Any]  # validated dataset sections
    runs: dict[str, Any]  # validated run sections, the benchmarks' (method, seed) runs included
    benchmarks: dict[str, Any]
    members: dict[str, BenchmarkRun]  # expanded run name -> which benchmark, method and seed it is
    settings: dict[str, RunConfig]  # run name -> its run.json
    round_0_from: dict[str, str] = field(default_factory=dict)  # run -> the run whose round 0 it copies

    def members_of(self, benchmark: str) -> dict[str, BenchmarkRun]:
        return {run: m for run, m in self.members.items() if m.benchmark == benchmark}


def resolve(config: dict[str, Any], validate: Callable[[dict[str, Any]], None]) -> Resolved:
    """The workflow config, validated, expanded and checked, with every run's settings.

    Args:
        config: the merged config files; changed in place: defaults filled in and benchmark runs
            added to ``runs`` (Snakemake's ``config`` stays the resolved one).
        validate: checks ``config`` against the schema and fills in its defaults, raising on the
            first invalid key (the workflow passes Snakemake's ``validate``).

    Raises:
        ValueError: ``"invalid config ..."``: a number that is not finite (:func:`non_finite_numbers`),
            what :func:`expand_benchmarks` and :func:`check_config` refuse, or no runs.
    """
    validate(config)
    errors = non_finite_numbers(config)  # before expanding: named where the user wrote them, once
    if errors:
        raise ValueError("invalid config " + "; ".join(errors))
    try:
        config["runs"], members = expand_benchmarks(config)
    except ValueError as err:
        raise ValueError(f"invalid config: {err}") from None
    validate(config)  # the expanded runs, as runs: their defaults filled in
    if not config["runs"]:
        raise ValueError("invalid config: no runs (declare some under 'runs' or 'benchmarks')")
    errors = check_config(config)
    if errors:
        raise ValueError("invalid config " + "; ".join(errors))
    runs = config["runs"]
    return Resolved(
        datasets=config["datasets"],
        runs=runs,
        benchmarks=config["benchmarks"],
        members=members,
        settings={name: RunConfig.from_config(name, run, members.get(name)) for name, run in runs.items()},
        round_0_from=round_0_sources(runs, members, config["benchmarks"]),
    )


#: Run settings round 0 does not read, as dotted paths of a run's config section: selection (its
#: strategy and that strategy's knobs: round 0's select job is the run's own), the rounds after it,
#: and the pseudo-labels (round 0's teacher has none). Runs equal in everything else do the same
#: round 0, bit for bit on the CPU (every seed derives from the run seed and the round).
NOT_READ_IN_ROUND_0 = (
    "strategy", "batch", "rounds", "committee", "mc_samples", "selection_features",
    "pseudo_labels", "losses.pseudo",
)  # fmt: skip


def run_json_path(path: str) -> str:
    """The place in run.json (:meth:`RunConfig.as_dict`) of a config section's dotted ``path``: the
    same, but the ``losses`` section lives at ``train.weights``."""
    return "train.weights." + path.removeprefix("losses.") if path.startswith("losses.") else path


def without_paths(values: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``values`` without the entries at the dotted ``paths`` (absent ones ignored)."""
    out = copy.deepcopy(dict(values))
    for path in paths:
        *parents, last = path.split(".")
        node = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def round_0_key(run: Mapping[str, Any]) -> str:
    """What round 0 of a run (its validated config section) depends on, as one string."""
    return json.dumps(without_paths(run, NOT_READ_IN_ROUND_0), sort_keys=True)


def round_0_sources(
    runs: Mapping[str, Any], members: Mapping[str, BenchmarkRun], benchmarks: Mapping[str, Any]
) -> dict[str, str]:
    """run -> the run whose round 0 it copies instead of training its own.

    Within each benchmark with ``share_round_0`` (the default), the runs of one seed whose config
    sections agree on everything but :data:`NOT_READ_IN_ROUND_0` share round 0: the first of
    them in method order trains it and the others copy it. Runs outside benchmarks never share.
    """
    sources: dict[str, str] = {}
    first: dict[tuple[str, int, str], str] = {}
    for name, member in members.items():
        if not benchmarks[member.benchmark].get("share_round_0", True):
            continue
        key = (member.benchmark, member.seed, round_0_key(runs[name]))
        if key in first:
            sources[name] = first[key]
        else:
            first[key] = name
    return sources


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


def helper_columns(helpers: Mapping[str, Any]) -> list[str]:
    """Names of a run's helping properties as the teacher's outputs and helpers.parquet's columns:
    ``{source}_{property}`` (``xtb_homo``), so a helper never shares a name with a target."""
    return [f"{helpers['source']}_{prop}" for prop in helpers.get("properties") or ()]


#: Two atoms closer than this (Å) mean a broken geometry, not a molecule; an edge cutoff must exceed it.
MIN_ATOM_DISTANCE = 0.1

#: The dataset setting ``duplicates`` (the same molecule under two ids, pipeline.data.duplicates):
#: "reject" the later ones (the first is kept), or "keep" both (counted in the manifest).
DUPLICATE_POLICIES = ("reject", "keep")
DEFAULT_DUPLICATES = "reject"

#: The dataset setting ``bonds.missing`` (a molecule whose bonds cannot be perceived from its geometry,
#: pipeline.data.sources.bonds): "keep" it with its 3D graph only (``has_bonds`` false; listed in the
#: manifest), or "reject" it.
MISSING_BOND_POLICIES = ("keep", "reject")
DEFAULT_MISSING_BONDS = "keep"


def label_budget(run: Mapping[str, Any]) -> int:
    """Pool molecules a run labels over all its rounds: ``initial.size + (rounds - 1) * batch``."""
    return int(run["initial"]["size"]) + (int(run["rounds"]) - 1) * int(run["batch"])


def non_finite_numbers(config: Any, where: str = "") -> list[str]:
    """Every number of ``config`` that is not finite (YAML's ``.inf``, ``-.inf``, ``.nan``), as
    ``"at runs.a.train.lr: inf is not a finite number ..."`` lines; empty when there is none.

    The schema's ``number`` takes them, and its bounds cannot refuse them all (NaN passes every
    comparison: ``minimum: 0`` lets ``.nan`` through, ``exclusiveMinimum: 0`` lets ``.inf`` through),
    yet no setting means anything with them: a learning rate of ``.inf`` would train to NaN losses
    for hours. So none is taken anywhere, in any section.
    """
    if isinstance(config, Mapping):
        items = [(f"{where}.{key}" if where else str(key), value) for key, value in config.items()]
    elif isinstance(config, list | tuple):
        items = [(f"{where}.{k}", value) for k, value in enumerate(config)]
    elif isinstance(config, float) and not math.isfinite(config):
        return [f"at {where}: {config} is not a finite number (every number in a config must be finite)"]
    else:
        return []
    return [error for path, value in items for error in non_finite_numbers(value, path)]


def check_config(config: Mapping[str, Any]) -> list[str]:
    """What a validated config (benchmarks expanded, defaults filled in) asks that cannot work, as
    ``"at runs.a.targets: ..."`` lines; empty when nothing is wrong.

    These are the mistakes one key alone cannot show (the schema checks each key): they would
    otherwise surface only after hours of training, or never. What needs the featurised dataset
    (its molecule count, its answer key's targets) is checked by the split stage
    (:func:`pipeline.data.split.split_dataset`), before the first training job.
    """
    from pipeline.config.registry import ORACLES, STRATEGIES
    from pipeline.config.units import plausible_ranges

    datasets = config.get("datasets") or {}
    runs = config.get("runs") or {}
    errors = []
    for name, dataset in datasets.items():
        ranges = dataset["oracle"].get("ranges") or {}
        # a range is read for a target a run on the dataset learns: the QM9 names, and the dataset's
        # own property names its runs ask for; any other key (a typo such as 'homoo') changes nothing
        own = [target for run in runs.values() if run["dataset"] == name for target in run["targets"]]
        known = list(dict.fromkeys([*TARGETS, *own]))
        for target in ranges:
            if target not in known:
                errors.append(
                    f"at datasets.{name}.oracle.ranges: unknown target {target!r} (known: {', '.join(known)})"
                )
                continue
            try:
                plausible_ranges([target], ranges)
            except ValueError as err:
                errors.append(f"at datasets.{name}.{err}")
        if not dataset["cutoff"] > MIN_ATOM_DISTANCE:
            errors.append(
                f"at datasets.{name}.cutoff: {dataset['cutoff']} Å; the featuriser needs a cutoff above "
                f"{MIN_ATOM_DISTANCE} Å (atoms closer than that are a broken geometry)"
            )
    for run_id, run in runs.items():
        at = f"at runs.{run_id}"
        if run["dataset"] not in datasets:
            errors.append(
                f"{at}.dataset: '{run['dataset']}' is not declared under 'datasets' "
                f"(declared: {', '.join(datasets)})"
            )
            continue
        dataset = datasets[run["dataset"]]
        oracle = dataset["oracle"]["name"]
        can = ORACLES[oracle].targets  # None: any target (the answer key, a labels file)
        cannot = sorted(set(run["targets"]) - set(run["targets"] if can is None else can))
        if cannot:
            labels = ", ".join(can) or "no target: it is a cheap method for helpers and delta"
            errors.append(
                f"{at}.targets: the {oracle} oracle of dataset '{run['dataset']}' cannot label "
                f"{cannot} (it labels {labels})"
            )
        helpers = run["helpers"]
        if helpers.get("properties"):
            if helpers["source"] == "dataset":
                leaked = sorted(set(helpers["properties"]) & set(run["targets"]))
                if leaked:
                    errors.append(
                        f"{at}.helpers.properties: {leaked} are targets of the run; a helping property "
                        "from the dataset must be another property (its labels are given for every pool "
                        "molecule, so a target among them would hand the teacher the answer)"
                    )
            else:
                can = ORACLES[helpers["source"]].columns
                unknown = sorted(set(helpers["properties"]) - set(can))
                if unknown:
                    errors.append(
                        f"{at}.helpers.properties: the {helpers['source']} oracle does not compute "
                        f"{unknown} (it computes {', '.join(can)})"
                    )
        delta = run["delta"]
        if delta["properties"]:
            strangers = sorted(set(delta["properties"]) - set(run["targets"]))
            if strangers:
                errors.append(
                    f"{at}.delta.properties: {strangers} are not targets of the run "
                    f"(its targets: {', '.join(run['targets'])})"
                )
            can = ORACLES[delta["source"]].columns
            unknown = sorted(set(delta["properties"].values()) - set(can))
            if unknown:
                errors.append(
                    f"{at}.delta.properties: the {delta['source']} oracle does not compute {unknown} "
                    f"(it computes {', '.join(can)})"
                )
        if run["selection_features"] != "embeddings" and not STRATEGIES[run["strategy"]].features:
            takers = ", ".join(name for name, info in STRATEGIES.items() if info.features)
            errors.append(
                f"{at}.selection_features: strategy {run['strategy']} picks on no feature map; "
                f"{run['selection_features']} is for {takers}"
            )
        if run["student_kind"] != "network":
            if not run["student"]:
                errors.append(
                    f"{at}.student: false evaluates the teacher itself, so student_kind "
                    f"{run['student_kind']} would never be fitted; set student: true or student_kind: network"
                )
            if (
                STRATEGIES[run["strategy"]].needs == "student"
                or run["selection_features"] == "student_gradients"
            ):
                what = "strategy mc_dropout" if run["strategy"] == "mc_dropout" else "selection_features"
                errors.append(
                    f"{at}.student_kind: {what} reads the network student's dropout or gradients, which "
                    f"the {run['student_kind']} student does not have"
                )
        if STRATEGIES[run["strategy"]].needs == "kernel" and run["student_kind"] != "krr":
            errors.append(
                f"{at}.strategy: {run['strategy']} reads the kernel student's Gaussian process; "
                f"set student_kind: krr (it is {run['student_kind']})"
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


def config_file_error(configfiles: Iterable[str]) -> str | None:
    """The error of the first config file that is not valid YAML (naming its line and column, which
    Snakemake's own message does not) or that states a key twice (YAML would keep the last one
    silently; naming every such key and its lines); None when none does. Files that do not exist
    are skipped (Snakemake reports them itself)."""
    import yaml

    for path in dict.fromkeys(map(str, configfiles)):
        if Path(path).exists():
            try:
                twice = duplicate_keys(Path(path).read_text())
            except yaml.MarkedYAMLError as err:
                mark = err.problem_mark or err.context_mark
                where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
                context = f" ({err.context} at line {err.context_mark.line + 1})" if err.context_mark else ""
                return f"invalid config {path}: not valid YAML: {where}{err.problem}{context}"
            except yaml.YAMLError as err:
                return f"invalid config {path}: not valid YAML: {err}"
            if twice:
                return (
                    f"invalid config {path}: a key is given twice, and only the last would count: "
                    + "; ".join(twice)
                )
    return None
