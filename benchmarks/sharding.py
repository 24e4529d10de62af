"""What sharding saves: each rank's weights, gradients and optimizer state, and its peak
memory, with `--strategy ddp` and `--strategy fsdp` under torchrun, against one process.

    python benchmarks/sharding.py [--presets nano,micro,mini,gpt2-small] [--nproc 2]

For each preset and strategy a fresh `torchrun --standalone --nproc_per_node=N` runs this
file as a worker: the model built, wrapped and given its optimizer as the trainer does
(core/distributed.py, core/optim.py; AdamW, fp32, GPT-2's block, context 128, batch 1 per
rank), then three updates (a plain cross-entropy on fp32 logits, no clipping, no save) under
the trainer's allocator settings (core/process.py). Counted on rank 0 after the last
backward and step, before the gradients are cleared: the bytes of the parameters,
gradients and optimizer state this rank holds (a shard's own bytes under fsdp); its peak
resident memory over the process's before the model was built and after FSDP's modules
were imported (ru_maxrss); and the memory estimate per rank (core/memory.py).
The CPU, gloo and the thread count are the machine's: say which when you quote it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTEXT, BATCH, STEPS = 128, 1, 3


def local_bytes(t) -> int:
    from tui_gpt.core.distributed import is_shard

    local = t.to_local() if is_shard(t) else t
    return local.numel() * local.element_size()


def worker(preset: str, strategy: str) -> None:
    import torch

    from tui_gpt.core import distributed, memory, process
    from tui_gpt.core.config import TrainConfig, model_config
    from tui_gpt.core.device import Runtime
    from tui_gpt.core.model import GPT
    from tui_gpt.core.optim import make_optimizer

    dist = distributed.from_environment("cpu")
    dist = replace(dist, sharded=strategy == "fsdp")
    import torch.distributed.fsdp  # noqa: F401  (its code, 0.6 s of imports, is not the model's)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    torch.manual_seed(0)
    cfg = model_config(preset, 50257, CONTEXT, dropout=0.0)
    model = GPT(cfg)
    module = dist.wrap(model)
    train = TrainConfig(batch_size=BATCH, optimizer="adamw")
    runtime = Runtime(torch.device("cpu"), "fp32", torch.get_num_threads())
    optimizer = make_optimizer(model, train, runtime)
    times = []
    with process.training_memory(dist.sharded):  # as Trainer.run
        for _ in range(STEPS):
            optimizer.zero_grad(set_to_none=True)
            x = torch.randint(0, cfg.vocab_size, (BATCH, CONTEXT))
            started = time.perf_counter()
            logits = module(x)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), x.flatten())
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
    params = list(model.parameters())
    state = [v for fields in optimizer.state.values() for v in fields.values() if torch.is_tensor(v)]
    held = {
        "weights": sum(local_bytes(p) for p in params),
        "grads": sum(local_bytes(p.grad) for p in params if p.grad is not None),
        "optimizer": sum(local_bytes(v) for v in state),
    }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    shape = memory.Shape(batch_size=BATCH, context_length=CONTEXT, dropout=False, shards=dist.shards)
    if dist.is_main:
        print(json.dumps({"preset": preset, "strategy": dist.strategy, "world": dist.world,
                          "params": sum(p.numel() for p in params), **held,
                          "state": sum(held.values()), "peak": peak,
                          "estimate": memory.estimate(cfg, shape).total,
                          "step_s": statistics.median(times[1:])}))  # fmt: skip
    dist.close()


def launch(preset: str, strategy: str, nproc: int) -> dict:
    me = [str(Path(__file__).resolve()), "--worker", preset, strategy]
    if strategy == "single":
        cmd = [sys.executable, *me]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", *me]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{preset} {strategy} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="nano,micro,mini,gpt2-small")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--worker", nargs=2, metavar=("PRESET", "STRATEGY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    print("| preset | strategy | weights + grads + optimizer, MiB per rank | of one process's "
          "| peak RSS growth, MiB per rank | estimate, MiB | step, ms |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for preset in args.presets.split(","):
        alone = None
        for strategy in ("single", "ddp", "fsdp"):
            r = launch(preset, strategy, args.nproc)
            alone = alone or r["state"]
            name = strategy if strategy == "single" else f"{strategy} x {r['world']}"
            print(f"| {preset} | {name} | {mib(r['state'])} | {r['state'] / alone:.2f} "
                  f"| {mib(r['peak'])} | {mib(r['estimate'])} | {r['step_s'] * 1e3:,.0f} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
