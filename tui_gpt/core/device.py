"""Where and how to compute: device, numeric precision and CPU threads, picked automatically
from what this machine really offers, and always reported so the user sees the choice."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from tui_gpt import environment
from tui_gpt.core import process
from tui_gpt.core.config import DEVICES, PRECISIONS
from tui_gpt.core.errors import TuiGptError


@dataclass(frozen=True)
class Runtime:
    """Where and how a model computes: device, precision (fp32 | bf16) and CPU threads;
    under bf16, whether attention stays in fp32 (faster on some CPUs, measured per run)."""

    device: torch.device
    precision: str = "fp32"
    threads: int = 1
    fp32_attention: bool = False

    @property
    def label(self) -> str:
        """How a plan line names it: "fp32", "bf16", "bf16 (fp32 attention)"."""
        if self.precision == "bf16" and self.fp32_attention:
            return "bf16 (fp32 attention)"
        return self.precision

    def bf16_matmuls(self) -> bool:
        """Whether matrix products beside the model (Muon's iteration) should run in bf16:
        where the run computes in bf16 on hardware with bf16 units."""
        if self.precision != "bf16":
            return False
        return self.device.type == "cuda" or (self.device.type == "cpu" and cpu_has_bf16())


def cpu_count() -> int:
    """CPUs this process may use (affinity mask), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise TuiGptError("--device cuda: no CUDA GPU is available here (try --device cpu)")
    if kind == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise TuiGptError("--device mps: Apple's GPU backend is not available here")
    if kind not in DEVICES:
        raise TuiGptError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AVX512-BF16 or AMX), where bf16
    autocast runs several times faster than fp32 matmuls."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise TuiGptError(
            f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}"
        )
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def cpu_allowance() -> int:
    """CPUs this process may really use: the affinity mask, capped by a cgroup CPU quota."""
    n = cpu_count()
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


def resolve_threads(threads: int | None = None) -> int:
    n = threads or int(environment.number("TUI_GPT_THREADS") or 0) or cpu_allowance()
    return process.use_threads(n)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the forward pass; weights and optimizer stay fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
