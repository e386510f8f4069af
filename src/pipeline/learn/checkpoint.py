"""Checkpoints: the state dict, the architecture, the run's name and settings, the round and RNG
states, written atomically and loadable with ``torch.load(weights_only=True)`` (:func:`save_checkpoint`);
:func:`load_checkpoint` refuses one of another pipeline version, of another run or round (a round's
``teacher.pt`` copied over another's), or made under other run settings, naming what differs
(:func:`check_made_for`, which the krr student's checkpoint shares)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.config.network import ModelConfig
from pipeline.model.asgn import ASGNModel

# 2: the atom embedding has a mask-token row; ModelConfig has the distance-bin range
# 3: the representation and the property head (with its scaling buffers) are submodules
CHECKPOINT_VERSION = 3


def save_checkpoint(
    path: str | Path,
    model: ASGNModel,
    config: dict[str, Any],
    round: int,
    generator: torch.Generator | None = None,
    **extra: Any,
) -> None:
    """State dict, model arguments, resolved config, round and RNG states, written atomically.

    Loadable with ``torch.load(weights_only=True)``: only tensors, numbers, strings, lists and dicts.
    """
    from pipeline.data.store import atomic_path

    payload = {
        "version": CHECKPOINT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": model.config.to_dict(),
        "config": config,
        "run": config.get("run"),
        "round": int(round),
        "rng": {
            "torch": torch.get_rng_state(),
            "generator": generator.get_state() if generator is not None else None,
        },
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(
    path: str | Path,
    config: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    round: int | None = None,
) -> tuple[ASGNModel, dict[str, Any]]:
    """The model stored at ``path`` and the checkpoint's other fields.

    With ``config``, the checkpoint must be of the same run, made with the same resolved config; with
    ``round``, of that round (:func:`check_made_for`); otherwise the error names what differs.
    """
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # pickle, zip or torch errors: a corrupt or foreign file
        raise ValueError(f"{path}: not a readable checkpoint ({err})") from err
    if isinstance(payload, dict) and payload.get("kind") == "krr":
        raise ValueError(f"{path}: a kernel student (student_kind krr), not a network checkpoint")
    if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
        found = payload.get("version") if isinstance(payload, dict) else None
        raise ValueError(
            f"{path}: not a checkpoint of this pipeline's version {CHECKPOINT_VERSION} (found: {found}); "
            "delete it and the files made from it to make them again"
        )
    check_made_for(path, payload, config, round)
    model = ASGNModel(ModelConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device), payload


def check_made_for(
    path: str | Path, payload: dict[str, Any], config: dict[str, Any] | None, round: int | None
) -> None:
    """Refuse a checkpoint's ``payload`` unless it is of ``config``'s run (the name it stores, or its
    config's), of ``round`` (where given) and made with ``config`` (where given), naming what differs:
    a checkpoint copied from another run or round is read by no one without a word."""
    made_run = payload.get("run", (payload.get("config") or {}).get("run"))
    if config is not None and made_run != config.get("run"):
        raise ValueError(
            f"{path}: a checkpoint of run {made_run!r} (round {payload.get('round')}), read by run "
            f"{config.get('run')!r}: copied from another run? delete it and the files made from it"
        )
    if round is not None and payload.get("round") != round:
        raise ValueError(
            f"{path}: the checkpoint of round {payload.get('round')} of run {made_run!r}, read as round "
            f"{round}'s: copied from another round? delete it and the files made from it"
        )
    if config is not None and payload["config"] != config:
        raise ValueError(
            f"{path} was made with a different config (differs at "
            f"{', '.join(config_differences(payload['config'], config))}); "
            "delete it or use the config it was made with"
        )


_MISSING = object()  # a key one config has and the other lacks (not the same as a None value)


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The dotted keys at which two resolved configs differ (``train.lr``), sorted."""
    return sorted(_diff_keys(a, b))


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff_keys(a.get(k, _MISSING), b.get(k, _MISSING), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".") or "<root>"]
