"""What every training and inference loop runs under: the device (:func:`resolve_device`), a global
RNG seeded for a block and restored after it (:func:`seeded_global_rng`: dropout masks and libraries
that take no generator), bfloat16 autocast on CUDA (:func:`autocast`), batches of positions
(:func:`batches`) and eval mode for a block (:func:`evaluating`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else the CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available on this machine")
    return device


@contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """The global RNG of the CPU (and of ``device`` if CUDA) seeded with ``seed``, restored on exit.

    nn.Dropout draws from these global generators (it takes no generator argument), and so do
    libraries that take no generator (bmdal-reg's k-means++): this makes their draws a function of
    ``seed`` without disturbing anyone else's random stream.
    """
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[index], device_type="cuda"):
            torch.random.default_generator.manual_seed(seed)
            torch.cuda.default_generators[index].manual_seed(seed)
            yield
    else:
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            yield


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when enabled; a no-op context on other devices."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda"
    )


def batches(
    index: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """Positions of ``index`` in batches; shuffled when a generator is given."""
    if generator is not None:
        index = index[torch.randperm(len(index), generator=generator).to(index.device)]
    yield from torch.split(index, batch_size)


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model`` in eval mode (no dropout) for the block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
