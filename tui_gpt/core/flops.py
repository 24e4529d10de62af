"""The peak a device could compute at, for model FLOPs utilisation (MFU): model FLOPs per
second achieved over this peak.

On a CPU the peak is measured (a large matmul in the training's precision, once per
process); on a GPU it comes from the vendor's published dense tensor-core figures below.
`--peak-tflops` overrides either.
"""

from __future__ import annotations

import functools
import time

import torch

# Published dense peaks, TFLOP/s: (bf16 tensor cores, fp32 without tensor cores). Matched by
# substring of torch.cuda.get_device_name(), most specific first.
GPU_PEAKS: tuple[tuple[str, float, float], ...] = (
    ("H200", 989.0, 67.0),
    ("H100 PCIe", 756.0, 51.0),
    ("H100", 989.0, 67.0),  # SXM
    ("A100", 312.0, 19.5),
    ("A10G", 70.0, 31.2),
    ("A10", 125.0, 31.2),
    ("L40S", 362.0, 91.6),
    ("L4", 121.0, 30.3),
    ("RTX 4090", 165.0, 82.6),
    ("RTX 3090", 71.0, 35.6),
    ("A6000", 155.0, 38.7),
    ("V100", 125.0, 15.7),  # fp16 tensor cores: V100 has no bf16
    ("T4", 65.0, 8.1),  # fp16 tensor cores: T4 has no bf16
)


def gpu_peak(name: str, precision: str) -> float | None:
    """FLOP/s of a GPU by its name, or None when it is not in the table."""
    for key, bf16, fp32 in GPU_PEAKS:
        if key.lower() in name.lower():
            return (bf16 if precision == "bf16" else fp32) * 1e12
    return None


def peak_matmul_flops(
    precision: str = "fp32", n: int = 1024, seconds: float = 0.4, bursts: int = 8
) -> float:
    """FLOP/s of a square matmul in this precision on the CPU, with the threads set now: the
    best of several short bursts, so a moment of a busy neighbour does not lower the peak."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    # A generator of its own: the global one is the training's, restored on resume.
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, dtype=dtype, generator=g) for _ in range(2))
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(bursts):
        iters, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / bursts:
            a @ b
            iters += 1
        best = max(best, 2 * n**3 * iters / (time.perf_counter() - start))
    return best


@functools.lru_cache(maxsize=8)
def _measured(precision: str, threads: int) -> float:
    return peak_matmul_flops(precision)


def device_peak(
    device: torch.device, precision: str, override_tflops: float | None = None
) -> tuple[float | None, str]:
    """(FLOP/s, where it comes from) of this device in this precision; None when unknown
    (a GPU not in the table, Apple's GPU) and not given."""
    if override_tflops:
        return override_tflops * 1e12, "given"
    if device.type == "cpu":
        return _measured(precision, torch.get_num_threads()), "measured"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = gpu_peak(name, precision)
        return peak, f"published for {name}" if peak else f"unknown for {name}"
    return None, f"unknown for {device.type}"


def mfu(flops_per_token: float, tok_per_s: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved model FLOP/s over the peak."""
    if not peak or tok_per_s <= 0:
        return None
    return flops_per_token * tok_per_s / peak
