"""The ``pipeline`` command: every stage of the workflow, usable with or without Snakemake.

pipeline featurise --source qm9 --out results/data/qm9 [--limit N] [--shard-size N]
pipeline featurise --source files --input mols.xyz --out DIR --num-shards 4 --shard 2
pipeline featurise-merge --out DIR --num-shards 4
pipeline split --data DIR --out split.parquet --val 1000 --test 1000 --seed 0
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__

log = logging.getLogger("pipeline")


def _featurise(args: argparse.Namespace) -> None:
    from .featurise import FeaturiseSettings, featurise, featurise_shard

    settings = FeaturiseSettings(
        source=args.source,
        inputs=[str(p) for p in args.input],
        cutoff=args.cutoff,
        limit=args.limit,
        seed=args.seed,
        num_shards=args.num_shards or 1,
        rbf_count=args.rbf_count,
    )
    if args.shard is not None:
        if args.num_shards is None:
            raise ValueError("--shard needs --num-shards")
        featurise_shard(settings, args.out, args.shard)
    else:
        featurise(settings, args.out, shard_size=None if args.num_shards else args.shard_size)


def _merge(args: argparse.Namespace) -> None:
    from .featurise import merge_parts

    merge_parts(args.out, args.num_shards)


def _split(args: argparse.Namespace) -> None:
    from .split import split_dataset

    split_dataset(args.data, args.out, val=args.val, test=args.test, seed=args.seed, pool=args.pool)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (give a job exactly its share: more oversubscribes)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("featurise", help="molecules -> Parquet graph shards, answer key, rejects, manifest")
    p.add_argument("--source", required=True, choices=["qm9", "files", "smiles"], help="molecule source")
    p.add_argument("--input", nargs="*", type=Path, default=[], help="input files or folders (files, smiles)")
    p.add_argument("--out", required=True, type=Path, help="dataset folder, e.g. results/data/qm9")
    p.add_argument("--cutoff", type=float, default=30.0, help="edge cutoff in Å (default: 30, a full graph)")
    p.add_argument("--limit", type=int, help="featurise a seeded random subset of this many molecules")
    p.add_argument("--seed", type=int, default=0, help="seed for --limit and conformer generation")
    p.add_argument("--shard-size", type=int, default=20_000, help="molecules per shard (one-process mode)")
    p.add_argument("--num-shards", type=int, help="fixed number of shards (with --shard: one shard job)")
    p.add_argument("--shard", type=int, help="featurise only this shard (0-based); merge later")
    p.add_argument("--rbf-count", type=int, default=300, help="Gaussian RBF centres recorded in the metadata")
    p.set_defaults(func=_featurise)

    p = sub.add_parser("featurise-merge", help="join shard parts into answer key, rejects and manifest")
    p.add_argument("--out", required=True, type=Path, help="dataset folder the shard jobs wrote to")
    p.add_argument("--num-shards", required=True, type=int)
    p.set_defaults(func=_merge)

    p = sub.add_parser("split", help="seeded pool / val / test split of a featurised dataset")
    p.add_argument("--data", required=True, type=Path, help="featurised dataset folder")
    p.add_argument("--out", required=True, type=Path, help="split Parquet to write")
    p.add_argument("--val", required=True, type=int, help="validation molecules")
    p.add_argument("--test", required=True, type=int, help="test molecules")
    p.add_argument("--pool", type=int, help="cap the pool at this many molecules (default: all the rest)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_split)
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

        torch.set_num_threads(args.threads)
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
