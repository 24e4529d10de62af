"""How fast can a `micro` step get on this CPU? tui-gpt's update step and nanoGPT's, at
nanoGPT's CPU recipe shape (4 layers x 128, context 64, batch 12, byte/char vocabulary), in
one process, interleaved, each profiled: its wall time per step and the time its matrix
multiplications alone take. In fp32 a matrix multiplication of a given shape costs what the
BLAS library makes it cost, whoever calls it; so the step time of a loop can fall at most to
its matmul time (less with lower precision or fewer FLOPs). nanoGPT's step time over
tui-gpt's matmul time bounds what tui-gpt's fp32 loop can gain over nanoGPT's.

    python benchmarks/step_ceiling.py --nanogpt PATH [--steps 30] [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tui_gpt.core import process  # noqa: E402
from tui_gpt.core.bench import random_batch_trainer  # noqa: E402
from tui_gpt.core.config import TrainConfig  # noqa: E402
from tui_gpt.core.device import Runtime, resolve_threads  # noqa: E402

MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul_out"}
CTX, BATCH, VOCAB = 64, 12, 256


def nanogpt_step(checkout: Path):
    """nanoGPT's model and optimizer as its train.py makes them on a CPU (fp32, AdamW
    without fusion, grad clip 1.0), on random tokens: a function doing one iteration."""
    sys.path.insert(0, str(checkout))
    from model import GPT, GPTConfig  # nanoGPT's model.py

    torch.manual_seed(1337)
    model = GPT(GPTConfig(block_size=CTX, vocab_size=VOCAB, n_layer=4, n_head=4, n_embd=128,
                          dropout=0.0, bias=False))  # fmt: skip
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    x = torch.randint(0, VOCAB, (BATCH, CTX))
    y = torch.randint(0, VOCAB, (BATCH, CTX))

    def step() -> None:
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def tui_step():
    runtime = Runtime(torch.device("cpu"), "fp32", resolve_threads(None))
    cfg = TrainConfig(batch_size=BATCH, lr=1e-3)
    trainer, x, y = random_batch_trainer("micro", CTX, cfg, runtime, vocab_size=VOCAB, dropout=0.0)
    return lambda: trainer.update(x, y)


def measure(step, steps: int) -> tuple[float, float]:
    """(seconds per step, timed without the profiler; matmul seconds per step, from a
    profile of as many steps)."""
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    wall = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    mm = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATMULS) / 1e6
    return wall / steps, mm / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nanogpt", type=Path, required=True, help="a nanoGPT checkout")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    loops = {"nanoGPT": nanogpt_step(args.nanogpt), "tui-gpt": tui_step()}
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in loops}
    with process.reusing_memory():
        for _ in range(args.rounds):
            for name, step in loops.items():
                results[name].append(measure(step, args.steps))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; micro, context {CTX}, "
          f"batch {BATCH}, vocabulary {VOCAB}; median of {args.rounds} interleaved rounds of "
          f"{args.steps} profiled steps\n")  # fmt: skip
    print("| loop | ms/step | of which matmuls | other | tokens/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    summary = {}
    for name, rows in results.items():
        wall = statistics.median(w for w, _ in rows)
        mm = statistics.median(m for _, m in rows)
        summary[name] = {"step_s": wall, "matmul_s": mm, "tok_per_s": BATCH * CTX / wall}
        print(f"| {name} | {wall * 1e3:.1f} | {mm * 1e3:.1f} ({mm / wall:.0%}) | "
              f"{(wall - mm) * 1e3:.1f} | {BATCH * CTX / wall:,.0f} |")  # fmt: skip
    nano, ours = summary["nanoGPT"], summary["tui-gpt"]
    bound = nano["step_s"] / ours["matmul_s"]
    print(f"\ntui-gpt / nanoGPT tokens/s: {ours['tok_per_s'] / nano['tok_per_s']:.2f}x; with no "
          f"work but its matmuls tui-gpt's step could reach at most {bound:.2f}x (nanoGPT's "
          "step time over tui-gpt's matmul time)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({**summary, "fp32_bound": bound}, indent=1))


if __name__ == "__main__":
    main()
