"""Throughput measurements: training and generation tokens/s, model FLOPs utilisation
against a peak measured in the same process, memory bandwidth, and tokenizing speed.

Timings on shared machines are noisy: callers repeat and interleave (benchmarks/), and
nothing here is ever asserted in tests.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from tui_gpt.core import estimate, flops, memory, process
from tui_gpt.core.config import ModelChoice, TrainConfig
from tui_gpt.core.data import BatchLoader, Loaders, TokenWindows
from tui_gpt.core.device import Runtime, resolve_device, resolve_precision, resolve_threads
from tui_gpt.core.generate import generate
from tui_gpt.core.model import GPT
from tui_gpt.core.quantize import quantize_int8
from tui_gpt.core.tokenizer import ByteTokenizer
from tui_gpt.core.trainer import Trainer


def peak_rss_mib() -> float:
    """The most resident memory this process has had. On Linux its address space's own high
    water mark (VmHWM): getrusage's ru_maxrss survives exec, so a process started by a big
    one (a test runner) would report its parent's size."""
    return _status_mib("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mib(field: str) -> float | None:
    """A memory line of /proc/self/status in MiB; None where there is none (not Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """Bytes/s of a large copy (read + write), the bound for reading weights per token."""
    src = torch.empty(mib * 2**20 // 4, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 / best


def current_rss_mib() -> float:
    """Resident memory of this process now (Linux; the peak so far elsewhere)."""
    return _status_mib("VmRSS:") or peak_rss_mib()


def bench_train(
    preset: str = "gpt2-small",
    context_length: int = 256,
    batch_size: int = 2,
    steps: int = 5,
    warmup: int = 2,
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    seed: int = 123,
    vocab_size: int = 50257,
    grad_accum: int = 1,
    checkpointing: bool = False,
    peak_tflops: float | None = None,
    arch: str = "gpt2",
    optimizer: str = "adamw",
) -> dict:
    """The trainer's own update step (its model, optimizer, autocast and memory reuse) on
    random tokens, in the runtime a training of this shape chooses (`estimate.fastest`:
    under `auto` on a CPU with bf16 units, the fastest of the runtimes it measures):
    tokens/s, seconds per step, MFU, and the memory estimate beside the measured peak."""
    dev = resolve_device(device)
    runtime = Runtime(dev, resolve_precision(precision, dev), resolve_threads(threads))
    cfg = TrainConfig(
        batch_size=batch_size, grad_accum=grad_accum, activation_checkpointing=checkpointing,
        optimizer=optimizer, precision=precision,
    )
    choice = ""
    if len(estimate.candidates(cfg, runtime)) > 1:
        shape = ModelChoice(preset, arch=arch).config(vocab_size, context_length)
        runtime, _, choice = estimate.fastest(shape, cfg, context_length, runtime)
    # The estimate counts tensors; the first step of any model also pages in torch's
    # kernels and sets up its thread pools (100+ MiB of a CPU process, whatever the model).
    # One step of a model far smaller than the one measured pays that first, so the
    # measured increase is what this model's training takes.
    tiny, tx, ty = random_batch_trainer(
        "nano", 8, replace(cfg, batch_size=1), runtime, seed, 256, arch
    )
    with process.reusing_memory():
        tiny.update(tx, ty)
    del tiny, tx, ty
    rss_before = current_rss_mib()
    trainer, x, y = random_batch_trainer(
        preset, context_length, cfg, runtime, seed, vocab_size, arch
    )
    model = trainer.model
    expected = memory.estimate(model.cfg, memory.shape(cfg, context_length, runtime, model.cfg))
    times = []
    with process.reusing_memory():
        for i in range(warmup + steps):
            start = time.perf_counter()
            trainer.update(x, y)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    tok_per_s = x.numel() / step_s
    peak, peak_source = flops.device_peak(dev, runtime.precision, peak_tflops)
    per_token = model.flops_per_token(context_length)
    peak_rss = peak_rss_mib()
    return {
        "mode": "train",
        "preset": preset,
        "arch": arch,
        "optimizer": optimizer,
        "vocab_size": vocab_size,
        "context_length": context_length,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "activation_checkpointing": checkpointing,
        "device": str(dev),
        "precision": runtime.precision,
        "runtime": runtime.label,
        "runtime_choice": choice,  # "auto: bf16 (fp32 attention) 29 ms a step; ..." or ""
        "threads": runtime.threads,
        "steps": steps,
        "step_s": step_s,
        "tok_per_s": tok_per_s,
        "model_flops_per_token": per_token,
        "peak_flops": peak,
        "peak_source": peak_source,
        "mfu": flops.mfu(per_token, tok_per_s, peak),
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss,
        "training_peak_mib": peak_rss - rss_before,
        "memory_estimate_mib": expected.total / memory.MIB,
        "memory_estimate": expected.to_dict(),
    }


def random_batch_trainer(
    preset: str, context_length: int, cfg: TrainConfig, runtime: Runtime, seed: int = 123,
    vocab_size: int = 50257, arch: str = "gpt2", dropout: float | None = None,
) -> tuple[Trainer, torch.Tensor, torch.Tensor]:  # fmt: skip
    """A real Trainer (the training defaults: lr 4e-4, weight decay 0.1, or `cfg`) on one
    update's batch of random tokens, and that batch: what speed measurements time
    `Trainer.update` on."""
    torch.manual_seed(seed)
    shape = ModelChoice(preset, arch=arch, dropout=dropout).config(vocab_size, context_length)
    model = GPT(shape).to(runtime.device).train()
    g = torch.Generator().manual_seed(seed)
    rows = cfg.batch_size * cfg.grad_accum
    ids = torch.randint(0, vocab_size, (rows * context_length + 1,), generator=g).numpy()
    windows = BatchLoader(TokenWindows(ids, context_length, context_length), rows)
    trainer = Trainer(model, Loaders(windows, windows), ByteTokenizer(), cfg, runtime)
    x, y = next(iter(windows))
    return trainer, x.to(runtime.device), y.to(runtime.device)


def bench_generate(
    preset: str = "gpt2-small",
    context_length: int = 256,
    new_tokens: int = 200,
    prompt_tokens: int = 4,
    device: str = "auto",
    precision: str = "fp32",
    threads: int | None = None,
    use_cache: bool = True,
    repeats: int = 2,
    vocab_size: int = 50257,
    arch: str = "gpt2",
) -> dict:
    """Greedy decoding of `new_tokens` after a `prompt_tokens` prompt: tokens/s, and how the
    bytes of weights read per token compare with the measured memory bandwidth."""
    dev = resolve_device(device)
    n_threads = resolve_threads(threads)
    torch.manual_seed(123)
    model = GPT(ModelChoice(preset, arch=arch).config(vocab_size, context_length)).to(dev).eval()
    if precision == "bf16":
        model = model.to(torch.bfloat16)
    elif precision == "int8":
        model = quantize_int8(model)
    idx = torch.randint(0, vocab_size, (1, prompt_tokens)).to(dev)
    generate(model, idx, 5, use_cache=use_cache)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        generate(model, idx, new_tokens, use_cache=use_cache)
        best = min(best, time.perf_counter() - start)
    tok_per_s = new_tokens / best
    # Per token the blocks, the final norm and the head are read; of the embeddings one row.
    tensors = [*model.named_parameters(), *model.named_buffers()]
    read = sum(t.numel() * t.element_size() for n, t in tensors if "emb" not in n)
    bandwidth = memory_bandwidth() if dev.type == "cpu" else float("nan")
    return {
        "mode": "generate",
        "preset": preset,
        "arch": arch,
        "vocab_size": vocab_size,
        "device": str(dev),
        "precision": precision,
        "threads": n_threads,
        "kv_cache": use_cache,
        "new_tokens": new_tokens,
        "prompt_tokens": prompt_tokens,
        "tok_per_s": tok_per_s,
        "weight_bytes_per_token": read,
        "weight_read_bytes_per_s": read * tok_per_s,
        "memory_bandwidth_bytes_per_s": bandwidth,
        "bandwidth_fraction": read * tok_per_s / bandwidth,
        "peak_rss_mib": peak_rss_mib(),
    }


def bench_data(path: str | Path, tokenizer_name: str = "gpt2", threads: int | None = None) -> dict:
    """Check and tokenize a corpus into a fresh cache, then open it again as a later run
    would (check, fingerprint, find the cache): seconds, tokens/s, peak memory."""
    import tempfile

    from tui_gpt.core.data import inspect_source, prepare
    from tui_gpt.core.device import cpu_count
    from tui_gpt.core.tokenizer import get_tokenizer

    tok = get_tokenizer(tokenizer_name)
    start = time.perf_counter()
    source = inspect_source(path)
    checked = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data = prepare(source, tok, cache_root=Path(tmp), num_threads=threads or cpu_count())
        seconds = checked + time.perf_counter() - start
        start = time.perf_counter()
        prepare(inspect_source(path), tok, cache_root=Path(tmp))
        reopen = time.perf_counter() - start
    return {
        "mode": "data",
        "chars": source.chars,
        "check_s": checked,
        "tokens": data.tokens,
        "seconds": seconds,
        "tok_per_s": data.tokens / seconds,
        "reopen_s": reopen,
        "token_array_mib": data.tokens * data.train_ids.dtype.itemsize / 2**20,
        "peak_rss_mib": peak_rss_mib(),
    }
