"""Helpers shared by the benchmark scripts (run as `python benchmarks/NAME.py`, this imports as `_common`)."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name, for the record next to every figure."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn, device: torch.device):
    """(fn(), seconds), waiting for queued GPU work before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start
