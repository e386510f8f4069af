"""The ``pipeline`` command: every stage of the workflow, usable with or without Snakemake.

pipeline featurise --source qm9 --out results/data/qm9 [--limit N] [--shard-size N]
pipeline featurise --source files --input mols.xyz --num-shards 4 --shard 2
    --graphs DIR/graphs/shard-00002.parquet --answer-key ... --rejects ... --summary ...
pipeline featurise-merge --shard-graphs ... --shard-answer-keys ... --shard-rejects ...
    --shard-summaries ... --answer-key DIR/answer_key.parquet --rejects ... --manifest DIR/manifest.json
pipeline split --data DIR --out split.parquet --val 1000 --test 1000 --seed 0
pipeline run-config --json '{"run": "demo", ...}' --out results/runs/demo/run.json
pipeline teacher --run-json run.json --data DIR --split-path split.parquet --round 0 ...
pipeline label | label-holdout | label-chunk ...   (the oracles: pipeline.label.oracle)
pipeline learning-curve | embedding-map | round-table | benchmark-table ...   (reports)

Every option of every command has help text: ``pipeline COMMAND --help``. The per-round stages
(initial, teacher, embed, student, pseudo-label, select, share-round-0) are declared once in
:data:`pipeline.plan.commands.STAGES`, which the workflow's rules read too: each names its function in
:mod:`pipeline.stages.rounds` and its options (flag, type, whether required, help); the command passes
each option to the function as the keyword argparse names it (``--split-path`` -> ``split_path``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import __version__
from pipeline.config import registry
from pipeline.config.settings import (
    DEFAULT_DUPLICATES,
    DEFAULT_MISSING_BONDS,
    DUPLICATE_POLICIES,
    MISSING_BOND_POLICIES,
)
from pipeline.plan.commands import STAGES, Stage

log = logging.getLogger("pipeline")


_SHARD_FILES = ("graphs", "answer_key", "rejects", "summary")


def _json_object(text: str, option: str, what: str) -> dict:
    """The JSON object an option gives (``--ranges``, ``--settings``); an error names the option."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{option} is not a JSON object: {err}") from err
    if not isinstance(value, dict):
        raise ValueError(f"{option} must be a JSON object{what}, got {text!r}")
    return value


def _ranges(args: argparse.Namespace) -> dict:
    return _json_object(args.ranges, "--ranges", " (target -> [low, high])")


def _featurise(args: argparse.Namespace) -> None:
    from pipeline.data.featurise import FeaturiseSettings, ShardFiles, featurise, featurise_shard

    settings = FeaturiseSettings(
        source=args.source,
        inputs=[str(p) for p in args.input],
        cutoff=args.cutoff,
        limit=args.limit,
        seed=args.seed,
        num_shards=args.num_shards or 1,
        rbf_count=args.rbf_count,
        ranges=_ranges(args),
        duplicates=args.duplicates,
        missing_bonds=args.missing_bonds,
        **({"fragments": args.fragments} if args.fragments is not None else {}),
    )
    given = [f"--{name.replace('_', '-')}" for name in _SHARD_FILES if getattr(args, name) is not None]
    if args.shard is not None:
        if args.num_shards is None:
            raise ValueError("--shard needs --num-shards")
        absent = [f"--{name.replace('_', '-')}" for name in _SHARD_FILES if getattr(args, name) is None]
        if absent or args.out is not None:
            raise ValueError(
                "a shard job (--shard) is given the files it writes: --graphs, --answer-key, --rejects "
                f"and --summary, not --out (missing: {', '.join(absent) or 'none'})"
            )
        files = ShardFiles(*(getattr(args, n) for n in _SHARD_FILES))
        featurise_shard(settings, args.shard, files, inputs_sha256=args.inputs_sha256)
    else:
        if args.out is None:
            raise ValueError("without --shard, featurise writes a whole dataset folder: give --out DIR")
        if given:
            raise ValueError(f"{', '.join(given)}: files of a shard job, which needs --shard K")
        featurise(settings, args.out, shard_size=None if args.num_shards else args.shard_size)


def _merge(args: argparse.Namespace) -> None:
    from pipeline.data.featurise import DatasetFiles, ShardFiles, merge_parts

    lists = [args.shard_graphs, args.shard_answer_keys, args.shard_rejects, args.shard_summaries]
    if len({len(x) for x in lists}) != 1:
        raise ValueError(
            "--shard-graphs, --shard-answer-keys, --shard-rejects and --shard-summaries must name "
            f"one file per shard each (got {', '.join(str(len(x)) for x in lists)})"
        )
    shards = [ShardFiles(*files) for files in zip(*lists, strict=True)]
    merge_parts(shards, DatasetFiles(args.answer_key, args.rejects, args.manifest))


def _split(args: argparse.Namespace) -> None:
    from pipeline.data.split import split_dataset

    split_dataset(
        args.data,
        args.out,
        val=args.val,
        test=args.test,
        seed=args.seed,
        pool=args.pool,
        targets=args.targets,
        budget=args.budget,
    )


def _write_run_config(args: argparse.Namespace) -> None:
    import json

    from pipeline.config.settings import RunConfig
    from pipeline.data.store import write_json

    values = json.loads(args.json)
    config = RunConfig(**values)  # unknown or missing keys fail here, naming them
    config.architecture(cutoff=30.0)  # the model settings' checks
    write_json(config.as_dict(), args.out)


def _stage(args: argparse.Namespace) -> None:
    from pipeline.stages import rounds as stages

    stage: Stage = args.stage
    getattr(stages, stage.function)(**{o.dest: getattr(args, o.dest) for o in stage.options})


def _label(args: argparse.Namespace) -> None:
    from pipeline.label.chunks import LabelChunk
    from pipeline.label.external import LabelRequest
    from pipeline.label.oracle import OracleInput, label_holdout, label_round

    ranges = _ranges(args)
    parts = None
    if args.parts is not None or args.part_failures is not None:
        labels, failures = args.parts or [], args.part_failures or []
        if len(labels) != len(failures):
            raise ValueError(
                f"--parts ({len(labels)} files) and --part-failures ({len(failures)}) must name the "
                "label chunks' two files each, in the same order"
            )
        parts = [LabelChunk(*pair) for pair in zip(labels, failures, strict=True)]
    request = None
    if args.request_xyz is not None or args.request_csv is not None:
        if args.request_xyz is None or args.request_csv is None:
            raise ValueError("--request-xyz and --request-csv go together: the request's two files")
        request = LabelRequest(args.request_xyz, args.request_csv)
    source = OracleInput(
        args.oracle,
        args.answer_key,
        parts,
        args.data,
        args.run_json,
        ranges=ranges,
        labels_sha256=args.labels_sha256,
        labels_file=args.labels_file,
        request=request,
    )
    if args.command == "label":
        label_round(
            args.selected, args.round, args.out, args.failures, source, args.previous, args.previous_failures
        )
    else:
        label_holdout(args.split_path, args.out, args.failures, source)


def _label_chunk(args: argparse.Namespace) -> None:
    import pyarrow.parquet as pq

    from pipeline.data.split import holdout_ids
    from pipeline.label.chunks import label_chunk

    if args.request is None:  # every molecule of the dataset (the helping properties' chunks)
        from pipeline.data.split import dataset_ids

        ids = dataset_ids(args.data)
    elif args.holdout:
        ids = holdout_ids(args.request).mol_id.to_numpy()
    else:
        ids = pq.read_table(args.request, columns=["mol_id"])["mol_id"].to_numpy()
    settings = _json_object(args.settings, "--settings", "")
    label_chunk(args.oracle, args.data, ids, args.chunk, args.chunks, args.out, args.failures, settings)


def _helper_chunks(args: argparse.Namespace) -> list:
    """The dataset's helper chunks given as ``--parts`` and ``--part-failures``, paired in order."""
    from pipeline.label.chunks import LabelChunk

    labels, failures = args.parts or [], args.part_failures or []
    if len(labels) != len(failures):
        raise ValueError(f"--parts ({len(labels)} files) and --part-failures ({len(failures)}) must pair up")
    return [LabelChunk(a, b) for a, b in zip(labels, failures, strict=True)]


def _helpers(args: argparse.Namespace) -> None:
    from pipeline.config.settings import RunConfig
    from pipeline.label.oracle import helper_labels

    cfg = RunConfig.read(args.run_json)
    helper_labels(
        args.split_path, cfg.helpers, cfg.targets, args.out, answer_key=args.answer_key,
        parts=_helper_chunks(args),
    )  # fmt: skip


def _baseline(args: argparse.Namespace) -> None:
    from pipeline.config.settings import RunConfig
    from pipeline.label.oracle import baseline_values

    baseline_values(args.split_path, RunConfig.read(args.run_json).delta, args.out, _helper_chunks(args))


def _named_file(text: str) -> tuple[str, Path]:
    """``RUN=FILE`` (of ``--student``) -> (run, file)."""
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError(f"expected RUN=FILE, got {text!r}")
    return name, Path(path)


def _learning_curve(args: argparse.Namespace) -> None:
    from pipeline.reports.runs import learning_curve, write_learning_curve

    runs: dict[str, list[Path]] = {}
    for run, path in args.student:
        runs.setdefault(run, []).append(path)
    table = learning_curve(runs)
    write_learning_curve(table, args.csv, args.png, title=args.title)
    log.info("learning curve: %d runs, %d rounds", len(runs), len(args.student))


def _embedding_map(args: argparse.Namespace) -> None:
    from pipeline.reports.runs import embedding_map

    round_dir = args.embeddings.parent  # results/runs/{run}/round_XX
    title = args.title or f"{round_dir.parent.name} {round_dir.name}: pool embeddings (PCA)"
    embedding_map(args.embeddings, args.labelled, args.selected, args.png, title=title)


def _round_table(args: argparse.Namespace) -> None:
    from pipeline.reports.runs import round_table, write_round_table

    write_round_table(round_table(args.teacher, args.student), args.csv)


def _derived_method(text: str) -> tuple[str, str]:
    """``NEW=SOURCE`` (of ``--derived``) -> (new method, source method)."""
    new, sep, source = text.partition("=")
    if not (sep and new and source):
        raise argparse.ArgumentTypeError(f"expected NEW=SOURCE, got {text!r}")
    return new, source


def _unique(pairs: list[tuple[str, object]], option: str) -> dict:
    """``pairs`` as a dict; a name given twice is an error naming it."""
    names = [name for name, _ in pairs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{option} given more than once for {twice}")
    return dict(pairs)


def _benchmark_table(args: argparse.Namespace) -> None:
    from pipeline.reports.benchmark import (
        collect,
        read_curves,
        read_kernel_methods,
        read_run_methods,
        write_benchmark,
    )

    methods = read_run_methods(args.run_json)
    derived = _unique(args.derived, "--derived") if args.derived else None
    df = collect(read_curves(args.curve), methods=methods, derived=derived)
    table, _ = write_benchmark(
        df,
        args.csv,
        args.markdown,
        args.png,
        budget=args.budget,
        baseline=args.baseline,
        efficiency_csv=args.efficiency_csv,
        paired_csv=args.paired_csv,
        dashed=read_kernel_methods(args.run_json),
    )
    log.info(
        "benchmark: %d methods, %d runs, at %d labels", len(table), df["run"].nunique(), table["labelled"][0]
    )


class Arg:
    """One argument of a command: ``argparse``'s ``add_argument(flag, **kwargs)``, as data."""

    def __init__(self, flag: str, **kwargs: object) -> None:
        self.flag, self.kwargs = flag, kwargs


@dataclass(frozen=True)
class Command:
    """A ``pipeline`` command: its one-line help, the function that runs it, its arguments."""

    help: str
    run: Callable[[argparse.Namespace], None]
    args: tuple[Arg, ...]
    defaults: dict[str, object] = field(default_factory=dict)


def _stage_command(stage: Stage) -> Command:
    """A per-round stage's command, from its declaration (pipeline.plan.commands)."""
    args = tuple(
        Arg(o.flag, dest=o.dest, type=o.type, required=o.required, metavar=o.metavar, help=o.help)
        for o in stage.options
    )
    return Command(stage.help, _stage, args, {"stage": stage})


#: The dataset's ``oracle.ranges``: featurisation checks the dataset's own values against them, the
#: label commands the oracle's.
RANGES_ARG = Arg(
    "--ranges",
    default="{}",
    help="JSON object: target -> [low, high] plausible range (null: unchecked), over "
    "config.units.PLAUSIBLE_RANGES",
)


ORACLE_ARGS = (
    Arg("--oracle", default="answer_key", choices=list(registry.ORACLES), help="who labels (%(default)s)"),
    Arg("--failures", required=True, type=Path, help="molecules the oracle could not label"),
    Arg("--answer-key", type=Path, help="answer_key: the dataset's answer_key.parquet"),
    Arg("--parts", nargs="+", type=Path, help="pyscf, xtb: the label chunks' labels files"),
    Arg("--part-failures", nargs="+", type=Path, help="pyscf, xtb: their failures files, in the same order"),
    Arg("--data", type=Path, help="external: dataset folder (geometries of the request)"),
    Arg(
        "--labels-file",
        type=Path,
        help="external: the labels file to read, the request's form filled in (e.g. round_XX/labels.csv)",
    ),
    Arg(
        "--request-xyz",
        type=Path,
        help="external: while --labels-file is missing, write the molecules to label here (extended XYZ)",
    ),
    Arg(
        "--request-csv",
        type=Path,
        help="external: ... and the form to fill in and save as --labels-file here (CSV)",
    ),
    Arg("--run-json", type=Path, help="run.json: the targets every label must have (external: to ask for)"),
    RANGES_ARG,
    Arg("--labels-sha256", help="external: the SHA-256 the labels file must have"),
)

#: Every command but the per-round stages (those come from pipeline.plan.commands.STAGES): name ->
#: its help, handler and arguments.
COMMANDS: dict[str, Command] = {
    "featurise": Command(
        "molecules -> Parquet graph shards, answer key, rejects, manifest",
        _featurise,
        (
            Arg("--source", required=True, choices=list(registry.SOURCES), help="molecule source"),
            Arg("--input", nargs="*", type=Path, default=[], help="input files or folders (files, smiles)"),
            Arg(
                "--out",
                type=Path,
                help="one-process mode: the dataset folder to write, e.g. results/data/qm9",
            ),
            Arg("--cutoff", type=float, default=30.0, help="edge cutoff in Å (default: 30, a full graph)"),
            Arg("--limit", type=int, help="featurise a seeded random subset of this many molecules"),
            Arg("--seed", type=int, default=0, help="seed for --limit and conformer generation"),
            Arg("--shard-size", type=int, default=20_000, help="molecules per shard (one-process mode)"),
            Arg("--num-shards", type=int, help="fixed number of shards (with --shard: one shard job)"),
            Arg("--shard", type=int, help="featurise only this shard (0-based) into the four files below"),
            Arg("--graphs", type=Path, help="shard job: the graph shard to write (Parquet)"),
            Arg("--answer-key", type=Path, help="shard job: its answer-key part to write (Parquet)"),
            Arg("--rejects", type=Path, help="shard job: its rejects part to write (Parquet)"),
            Arg("--summary", type=Path, help="shard job: its summary to write (JSON; the merge reads it)"),
            Arg("--rbf-count", type=int, default=300, help="Gaussian RBF centres recorded in the metadata"),
            Arg(
                "--fragments",
                help="a SMILES or SDF record of several fragments (salt, hydrate): 'largest' (default) "
                "keeps the largest fragment, 'reject' rejects it "
                "(pipeline.data.sources.base.FRAGMENT_POLICIES)",
            ),
            RANGES_ARG,
            Arg(
                "--duplicates",
                choices=list(DUPLICATE_POLICIES),
                default=DEFAULT_DUPLICATES,
                help="the same molecule under two ids: 'reject' the later ones (default), or 'keep' both",
            ),
            Arg(
                "--missing-bonds",
                choices=list(MISSING_BOND_POLICIES),
                default=DEFAULT_MISSING_BONDS,
                help="a molecule whose bonds cannot be perceived from its geometry: 'keep' it with its 3D "
                "graph only (default; has_bonds false, listed in the manifest), or 'reject' it",
            ),
            Arg(
                "--inputs-sha256",
                help="shard job: the checksum the inputs must have (config.digest.inputs_sha256: the "
                "workflow's plan of the job); inputs changed since are refused",
            ),
        ),
    ),
    "featurise-merge": Command(
        "join shard parts into answer key, rejects and manifest",
        _merge,
        (
            Arg(
                "--shard-graphs",
                required=True,
                nargs="+",
                type=Path,
                help="the shard jobs' graph shards, in shard order",
            ),
            Arg(
                "--shard-answer-keys",
                required=True,
                nargs="+",
                type=Path,
                help="the shard jobs' answer-key parts, in shard order",
            ),
            Arg(
                "--shard-rejects",
                required=True,
                nargs="+",
                type=Path,
                help="the shard jobs' reject parts, in shard order",
            ),
            Arg(
                "--shard-summaries",
                required=True,
                nargs="+",
                type=Path,
                help="the shard jobs' summaries, in shard order",
            ),
            Arg("--answer-key", required=True, type=Path, help="the dataset's answer key to write"),
            Arg("--rejects", required=True, type=Path, help="the dataset's rejects to write"),
            Arg(
                "--manifest",
                required=True,
                type=Path,
                help="the manifest to write; its folder is the dataset's, and it names the shards "
                "relative to it",
            ),
        ),
    ),
    "split": Command(
        "seeded pool / val / test split of a featurised dataset",
        _split,
        (
            Arg("--data", required=True, type=Path, metavar="DIR", help="featurised dataset folder"),
            Arg(
                "--out",
                required=True,
                type=Path,
                metavar="FILE",
                help="split to write (Parquet: mol_id, split)",
            ),
            Arg("--val", required=True, type=int, metavar="N", help="molecules in the validation set"),
            Arg("--test", required=True, type=int, metavar="N", help="molecules in the test set"),
            Arg("--pool", type=int, metavar="N", help="cap the pool at N molecules (default: all the rest)"),
            Arg("--seed", type=int, default=0, help="seed of the random assignment (default: %(default)s)"),
            Arg(
                "--targets",
                nargs="+",
                metavar="TARGET",
                help="targets the run learns, e.g. homo gap: each must be in the dataset's answer key",
            ),
            Arg(
                "--budget",
                type=int,
                metavar="N",
                help="pool molecules the run labels: the pool must hold them",
            ),
        ),
    ),
    "run-config": Command(
        "validate a run's settings (JSON) and write run.json",
        _write_run_config,
        (
            Arg(
                "--json",
                required=True,
                metavar="OBJECT",
                help="the run's resolved settings as a JSON object; an unknown or missing key is refused",
            ),
            Arg("--out", required=True, type=Path, metavar="FILE", help="run.json to write"),
        ),
    ),
    **{name: _stage_command(stage) for name, stage in STAGES.items()},
    "label": Command(
        "oracle: L_r = L_{r-1} + labels of the selected molecules",
        _label,
        (
            Arg(
                "--selected",
                required=True,
                type=Path,
                help="initial.parquet or the previous selected.parquet",
            ),
            Arg("--round", required=True, type=int, help="the round r the labels are for (0-based integer)"),
            Arg("--out", required=True, type=Path, help="round_XX/labelled.parquet"),
            Arg("--previous", type=Path, help="the previous round's labelled.parquet"),
            Arg("--previous-failures", type=Path, help="the previous round's label_failures.parquet"),
            *ORACLE_ARGS,
        ),
    ),
    "label-holdout": Command(
        "oracle: labels of the val and test molecules",
        _label,
        (
            Arg("--split-path", required=True, type=Path, help="the run's split.parquet"),
            Arg("--out", required=True, type=Path, help="holdout_labels.parquet"),
            *ORACLE_ARGS,
        ),
    ),
    "label-chunk": Command(
        "computing oracle (pyscf, xtb, ani1x, ani1ccx): label one chunk of the requested molecules",
        _label_chunk,
        (
            Arg(
                "--oracle",
                required=True,
                choices=registry.COMPUTING_ORACLES,
                help="the computing oracle",
            ),
            Arg("--data", required=True, type=Path, help="dataset folder (the geometries)"),
            Arg(
                "--request",
                type=Path,
                help="Parquet with a mol_id column, or split.parquet (default: every molecule of --data)",
            ),
            Arg("--holdout", action="store_true", help="--request is split.parquet: label its val and test"),
            Arg("--chunk", required=True, type=int, help="0-based chunk number"),
            Arg("--chunks", required=True, type=int, help="number of chunks the request is split into"),
            Arg("--settings", default="{}", help="JSON object of single-point settings (pipeline.label.qc)"),
            Arg("--out", required=True, type=Path, help="labels of the chunk (Parquet)"),
            Arg("--failures", required=True, type=Path, help="failures of the chunk (Parquet)"),
        ),
    ),
    "helpers": Command(
        "every pool molecule's helping properties (run key helpers)",
        _helpers,
        (
            Arg("--run-json", required=True, type=Path, help="the run's settings (run.json)"),
            Arg("--split-path", required=True, type=Path, help="the run's split.parquet (its pool)"),
            Arg("--answer-key", type=Path, help="helpers.source dataset: the dataset's answer_key.parquet"),
            Arg("--parts", nargs="+", type=Path, help="helpers.source xtb: the helper chunks' labels"),
            Arg("--part-failures", nargs="+", type=Path, help="their failures files, in the same order"),
            Arg("--out", required=True, type=Path, help="helpers.parquet to write"),
        ),
    ),
    "baseline": Command(
        "the cheap method's value of each delta target for every pool, val and test molecule (run key delta)",
        _baseline,
        (
            Arg("--run-json", required=True, type=Path, help="the run's settings (run.json)"),
            Arg("--split-path", required=True, type=Path, help="the run's split.parquet (its molecules)"),
            Arg("--parts", required=True, nargs="+", type=Path, help="the dataset's helper chunks' labels"),
            Arg(
                "--part-failures", required=True, nargs="+", type=Path, help="their failures files, in order"
            ),
            Arg("--out", required=True, type=Path, help="baseline.parquet to write"),
        ),
    ),
    "learning-curve": Command(
        "test MAE against labels, per run and target: CSV + PNG",
        _learning_curve,
        (
            Arg(
                "--student",
                required=True,
                action="append",
                type=_named_file,
                metavar="RUN=FILE",
                help="a run's name and one round's student.json; repeat for each round and each run "
                "to compare",
            ),
            Arg(
                "--csv",
                required=True,
                type=Path,
                metavar="FILE",
                help="long table to write (CSV: run, round, labelled, target, MAEs)",
            ),
            Arg("--png", required=True, type=Path, metavar="FILE", help="figure to write (PNG)"),
            Arg("--title", default="Learning curve", help="figure title (default: %(default)s)"),
        ),
    ),
    "embedding-map": Command(
        "2D PCA of a round's pool embeddings: labelled and selected",
        _embedding_map,
        (
            Arg(
                "--embeddings",
                required=True,
                type=Path,
                metavar="FILE",
                help="the round's round_XX/embeddings.parquet",
            ),
            Arg(
                "--labelled",
                required=True,
                type=Path,
                metavar="FILE",
                help="the round's round_XX/labelled.parquet",
            ),
            Arg(
                "--selected",
                required=True,
                type=Path,
                metavar="FILE",
                help="the round's round_XX/selected.parquet",
            ),
            Arg("--png", required=True, type=Path, metavar="FILE", help="figure to write (PNG)"),
            Arg("--title", help="figure title (default: the run and round, from the embeddings path)"),
        ),
    ),
    "round-table": Command(
        "per-round summary of a run (labels, losses, epochs, times, MAE)",
        _round_table,
        (
            Arg(
                "--teacher",
                nargs="*",
                default=[],
                type=Path,
                metavar="FILE",
                help="the rounds' teacher.json files",
            ),
            Arg(
                "--student",
                nargs="*",
                default=[],
                type=Path,
                metavar="FILE",
                help="the rounds' student.json files",
            ),
            Arg(
                "--csv",
                required=True,
                type=Path,
                metavar="FILE",
                help="table to write (CSV: a row per round)",
            ),
        ),
    ),
    "benchmark-table": Command(
        "test MAE at the final budget (mean ± std over seeds), label savings, figure",
        _benchmark_table,
        (
            Arg(
                "--curve",
                required=True,
                action="append",
                type=Path,
                metavar="CSV",
                help="a run's learning_curve.csv; repeat for each",
            ),
            Arg(
                "--run-json",
                required=True,
                action="append",
                type=Path,
                metavar="JSON",
                help="a run's run.json, which says its method and seed in the benchmark; repeat for each",
            ),
            Arg(
                "--derived",
                action="append",
                default=[],
                type=_derived_method,
                metavar="NEW=SOURCE",
                help="a method read off SOURCE's runs from their teacher MAEs (e.g. asgn-t=asgn); repeatable",
            ),
            Arg(
                "--csv",
                required=True,
                type=Path,
                metavar="FILE",
                help="final-budget table to write (CSV: a row per method)",
            ),
            Arg(
                "--markdown",
                required=True,
                type=Path,
                metavar="FILE",
                help="report to write (Markdown: Table 1 (test, val), paired differences, efficiency)",
            ),
            Arg(
                "--png",
                required=True,
                type=Path,
                metavar="FILE",
                help="figure to write (PNG: test MAE against labels, mean ± std per method)",
            ),
            Arg(
                "--budget",
                type=int,
                metavar="N",
                help="labels to compare at (default: the largest number all runs reached)",
            ),
            Arg(
                "--baseline",
                default="random",
                metavar="METHOD",
                help="method the label savings are measured against (default: %(default)s)",
            ),
            Arg(
                "--efficiency-csv",
                type=Path,
                metavar="FILE",
                help="also write the label-efficiency table here (CSV)",
            ),
            Arg(
                "--paired-csv",
                type=Path,
                metavar="FILE",
                help="also write the paired differences to the baseline, per seed, here (CSV)",
            ),
        ),
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``pipeline`` command's parser: the global options, then one subcommand per :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version and exit"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for torch (give a job exactly its share: more oversubscribes)",
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="a stage or report; `pipeline COMMAND --help` lists its options",
    )
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help)
        for arg in command.args:
            p.add_argument(arg.flag, **arg.kwargs)
        p.set_defaults(func=command.run, **command.defaults)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)  # NumPy's BLAS too (the krr student's kernels and solves)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        # User-facing errors (bad input, bad settings): one clear line, no traceback.
        log.debug("traceback", exc_info=True)
        log.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
