"""Side by side, in one process: the reference code path against tui-gpt's, lever by lever.

    python benchmarks/compare.py                 # everything (about 35 minutes on 2 cores)
    python benchmarks/compare.py --only train    # or: generate, loss

Variants are interleaved round by round (A B C ... A B C ...) so a noisy neighbour slows all
of them alike; each result is the median over rounds. Each training measurement runs in a
fresh process. Prints markdown tables with ratios to
the reference path. Seed configuration: 124M shape, context 256, batch 2, AdamW lr 4e-4 /
weight decay 0.1.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_path import ReferenceGPT, config_124m, copy_into_tui_gpt, generate_text_simple  # noqa: E402

from tui_gpt.core.config import model_config, padded  # noqa: E402
from tui_gpt.core.device import autocast  # noqa: E402
from tui_gpt.core.generate import generate  # noqa: E402
from tui_gpt.core.model import GPT  # noqa: E402
from tui_gpt.core.quantize import quantize_int8  # noqa: E402

CTX, BATCH = 256, 2
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- training


def reference(sdpa=False, torch_norms=False):
    def build():
        torch.manual_seed(123)
        model = ReferenceGPT(config_124m(CTX), sdpa=sdpa, torch_norms=torch_norms).train()
        return model, torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1), "fp32"

    return build


def tui(precision="bf16", fused=True, pad=False, compile_model=False):
    def build():
        torch.manual_seed(123)
        rows = padded(50257) if pad else None
        model = GPT(model_config("gpt2-small", 50257, CTX, padded_vocab_size=rows)).train()
        opt = torch.optim.AdamW(
            model.parameters(),
            lr=4e-4,
            weight_decay=0.1,
            fused=fused,
            foreach=None if fused else True,
        )
        if compile_model:
            model = torch.compile(model)
        return model, opt, precision

    return build


def trainer_update(precision="bf16"):
    """tui-gpt's own `Trainer.update`, exactly what `tui-gpt train` runs per step."""

    def build():
        from tui_gpt.core.bench import random_batch_trainer
        from tui_gpt.core.config import TrainConfig
        from tui_gpt.core.device import Runtime

        trainer, _, _ = random_batch_trainer(
            "gpt2-small",
            CTX,
            TrainConfig(batch_size=BATCH),
            Runtime(CPU, precision, torch.get_num_threads()),
        )
        return trainer, None, "trainer"

    return build


# name: (build, environment of the process it runs in). Every measurement runs in a fresh
# Python process, as a user's training would: what one variant allocates or switches on
# (memory reuse is process-wide) cannot help or hurt the next.
PLAIN = {"TUI_GPT_MALLOC": "default"}
BEFORE = {"BEFORE_ATTENTION": "1"}  # tui-gpt's model with SDPA's fallback and F.dropout
TRAIN_VARIANTS = {
    "reference path (fp32, masked-matmul attention, hand LayerNorm/GELU, foreach AdamW)": (
        reference(),
        PLAIN,
    ),
    "reference + scaled_dot_product_attention": (reference(sdpa=True), PLAIN),
    "reference + torch LayerNorm/GELU": (reference(torch_norms=True), PLAIN),
    "reference + memory reuse (tui-gpt's process settings)": (reference(), {}),
    "tui-gpt fp32, foreach AdamW": (tui("fp32", fused=False), {**PLAIN, **BEFORE}),
    "+ fused AdamW": (tui("fp32"), {**PLAIN, **BEFORE}),
    "+ bf16 autocast": (tui("bf16"), {**PLAIN, **BEFORE}),
    "+ chunked cross-entropy": (tui("bf16"), {**PLAIN, **BEFORE, "LOSS": "tui"}),
    "+ memory reuse (Trainer.update)": (trainer_update(), BEFORE),
    "+ CPU attention and dropout = the default: Trainer.update, what `tui-gpt train` runs": (
        trainer_update(),
        {},
    ),
    "tui-gpt default without memory reuse (TUI_GPT_MALLOC=default)": (trainer_update(), PLAIN),
    "tui-gpt default, fp32 (CPUs without bf16 units)": (trainer_update("fp32"), {}),
}
OPTIONAL_VARIANTS = {
    "1 thread": (
        "tui-gpt default on 1 thread (thread-count lever)",
        trainer_update(),
        {"THREADS": "1"},
    ),
    "compile": (
        "tui-gpt default model and loss + memory reuse + torch.compile (--compile)",
        tui("bf16", compile_model=True),
        {"LOSS": "tui"},
    ),
    "pad": (
        "tui-gpt default model and loss + memory reuse, vocabulary rows padded to 50304 (option, off)",
        tui("bf16", pad=True),
        {"LOSS": "tui"},
    ),
}


def time_steps(build, steps: int) -> float:
    """Median seconds per training step, after one warm-up step."""
    from tui_gpt.core import process
    from tui_gpt.core.loss import cross_entropy

    if os.environ.get("THREADS"):
        torch.set_num_threads(int(os.environ["THREADS"]))
    model, opt, precision = build()
    loss_fn = (
        cross_entropy if os.environ.get("LOSS") == "tui" else torch.nn.functional.cross_entropy
    )
    vocab = 50257
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (BATCH, CTX), generator=g)
    y = torch.randint(0, vocab, (BATCH, CTX), generator=g)
    times = []
    with process.reusing_memory():  # a no-op under TUI_GPT_MALLOC=default
        for i in range(steps + 1):
            start = time.perf_counter()
            if precision == "trainer":
                model.update(x, y)
            else:
                opt.zero_grad(set_to_none=True)
                with autocast(CPU, precision):
                    logits = model(x)
                loss = loss_fn(logits.flatten(0, 1).float(), y.flatten())
                loss.backward()
                opt.step()
                loss.item()
            if i:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_in_child(name: str, steps: int, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", name, "--steps", str(steps)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def all_train_variants(optional: list[str]) -> dict[str, tuple]:
    variants = dict(TRAIN_VARIANTS)
    for key in optional:
        name, build, env = OPTIONAL_VARIANTS[key]
        variants[name] = (build, env)
    return variants


def bench_training(rounds: int, steps: int, optional: list[str], match: list[str]) -> None:
    variants = all_train_variants(optional)
    if match:  # the reference (first) and the variants named
        first = next(iter(variants))
        variants = {n: v for n, v in variants.items() if n == first or any(m in n for m in match)}
    results: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        for name, (_, env) in variants.items():
            results[name].append(measure_in_child(name, steps, env))
            print(
                f"  round {r + 1}: {name}: {BATCH * CTX / results[name][-1]:.0f} tok/s",
                file=sys.stderr,
            )
    ref = results[next(iter(variants))]
    base = statistics.median(ref)
    print(f"\n### Training: 124M, context {CTX}, batch {BATCH}, {torch.get_num_threads()} threads")
    print(f"median over {rounds} interleaved rounds of {steps} steps, each in a fresh process;")
    print("conservative: this variant's slowest round against the reference's fastest\n")
    print("| variant | tokens/s | s/step | vs reference | conservative |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, ts in results.items():
        med = statistics.median(ts)
        print(
            f"| {name} | {BATCH * CTX / med:,.0f} | {med:.2f} | {base / med:.2f}x "
            f"| {min(ref) / max(ts):.2f}x |"
        )


# ----------------------------------------------------------------------------- generation


def bench_generation(rounds: int, new_tokens: int) -> None:
    torch.manual_seed(123)
    ref = ReferenceGPT(config_124m(CTX)).eval()
    ours = GPT(model_config("gpt2-small", 50257, CTX)).eval()
    copy_into_tui_gpt(ref, ours)
    ours_bf16 = GPT(model_config("gpt2-small", 50257, CTX)).eval()
    ours_bf16.load_state_dict(ours.state_dict())
    ours_bf16 = ours_bf16.to(torch.bfloat16)
    ours_int8 = GPT(model_config("gpt2-small", 50257, CTX)).eval()
    ours_int8.load_state_dict(ours.state_dict())
    ours_int8 = quantize_int8(ours_int8)
    idx = torch.tensor([[6109, 3626, 6100, 345]])  # "Every effort moves you"

    variants = {
        "reference generate_text_simple (fp32, full recompute)": lambda: generate_text_simple(
            ref, idx, new_tokens, CTX
        ),
        "tui-gpt without KV cache (fp32)": lambda: generate(ours, idx, new_tokens, use_cache=False),
        "tui-gpt KV cache, fp32 weights": lambda: generate(ours, idx, new_tokens),
        "tui-gpt KV cache, bf16 weights, oneDNN kernels (before)": lambda: generate(
            ours_bf16, idx, new_tokens, aten_gemv=False
        ),
        "tui-gpt KV cache, bf16 weights (default: ATen matrix-vector kernels)": lambda: generate(
            ours_bf16, idx, new_tokens
        ),
        "tui-gpt KV cache, int8 weights (opt-in)": lambda: generate(ours_int8, idx, new_tokens),
    }
    same = torch.equal(generate(ours, idx, 30), generate_text_simple(ref, idx, 30, CTX))
    print(f"  greedy tokens identical to the reference's (30 tokens): {same}", file=sys.stderr)
    results: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        for name, fn in variants.items():
            with torch.inference_mode():
                start = time.perf_counter()
                fn()
                results[name].append(time.perf_counter() - start)
            print(
                f"  round {r + 1}: {name}: {new_tokens / results[name][-1]:.1f} tok/s",
                file=sys.stderr,
            )
    weights = sum(p.numel() * 4 for n, p in ours.named_parameters() if "emb" not in n)
    from tui_gpt.core.bench import memory_bandwidth

    bw = memory_bandwidth()
    base = statistics.median(results[next(iter(variants))])
    print(
        f"\n### Generation: greedy, {new_tokens} new tokens after a 4-token prompt, 124M (untied head)"
    )
    print(f"median over {rounds} interleaved rounds; measured copy bandwidth {bw / 1e9:.1f} GB/s\n")
    print("| variant | tokens/s | vs reference | weight bytes read/s | of bandwidth |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, ts in results.items():
        med = statistics.median(ts)
        rate = new_tokens / med
        per_token = weights // 2 if "bf16" in name else weights // 4 if "int8" in name else weights
        read = per_token * rate if name.startswith("tui-gpt KV cache") else float("nan")
        cells = f"{read / 1e9:.1f} GB/s | {read / bw:.0%}" if not math.isnan(read) else "- | -"
        print(f"| {name} | {rate:,.1f} | {base / med:.1f}x | {cells} |")


# ----------------------------------------------------------------------------- loss parity


def loss_parity(steps: int = 20) -> None:
    """The same initial weights and batches through the reference path (fp32), tui-gpt fp32
    and tui-gpt's default bf16 path; the loss over the training split after `steps` updates."""
    from tui_gpt.core.data import make_loaders, prepare
    from tui_gpt.core.loss import loader_loss
    from tui_gpt.core.tokenizer import get_tokenizer

    verdict = Path(__file__).resolve().parents[2] / "shared" / "data" / "the-verdict.txt"
    data = prepare(verdict, get_tokenizer("gpt2"), 0.9)
    train, val = make_loaders(data, CTX, BATCH, seed=123)
    torch.manual_seed(123)
    ref = ReferenceGPT(config_124m(CTX))
    rows = []
    for name, precision in (
        ("reference path, fp32", None),
        ("tui-gpt fp32", "fp32"),
        ("tui-gpt bf16 (default)", "bf16"),
    ):
        if precision is None:
            model = ReferenceGPT(config_124m(CTX))
            model.load_state_dict(ref.state_dict())
            opt = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
        else:
            model = GPT(model_config("gpt2-small", 50257, CTX))
            copy_into_tui_gpt(ref, model)
            opt = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1, fused=True)
        torch.manual_seed(7)  # the same dropout stream for each path
        model.train()
        done, epoch = 0, 0
        start = time.perf_counter()
        while done < steps:
            for x, y in train.iter_epoch(epoch):
                opt.zero_grad()
                with autocast(CPU, precision or "fp32"):
                    logits = model(x)
                torch.nn.functional.cross_entropy(
                    logits.flatten(0, 1).float(), y.flatten()
                ).backward()
                opt.step()
                done += 1
                if done == steps:
                    break
            epoch += 1
        seconds = time.perf_counter() - start
        model.eval()
        with autocast(CPU, precision or "fp32"):
            tl, vl = loader_loss(model, train.iter_epoch(0), CPU), loader_loss(model, val, CPU)
        rows.append((name, tl, vl, seconds))
        print(f"  {name}: train {tl:.4f} val {vl:.4f} ({seconds:.0f} s)", file=sys.stderr)
    print(f"\n### Loss after {steps} steps on The Verdict (same initial weights and batches)\n")
    print("| path | train loss | val loss | train loss vs tui-gpt fp32 | wall time |")
    print("| --- | ---: | ---: | ---: | ---: |")
    fp32 = rows[1][1]
    for name, tl, vl, s in rows:
        print(f"| {name} | {tl:.4f} | {vl:.4f} | {(tl - fp32) / fp32:+.2%} | {s:.0f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("train", "generate", "loss"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        choices=tuple(OPTIONAL_VARIANTS),
        help="also measure this training variant (compile: slow to compile)",
    )
    parser.add_argument(
        "--match", action="append", default=[], help="only training variants naming this"
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one variant, in a child
    args = parser.parse_args()
    if args.measure:
        build = all_train_variants(list(OPTIONAL_VARIANTS))[args.measure][0]
        print(time_steps(build, args.steps))
        return
    os.environ.setdefault(
        "TIKTOKEN_CACHE_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "tiktoken")
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    if args.only in (None, "train"):
        bench_training(args.rounds, args.steps, args.also, args.match)
    if args.only in (None, "generate"):
        bench_generation(max(2, args.rounds - 1), args.new_tokens)
    if args.only in (None, "loss"):
        loss_parity()


if __name__ == "__main__":
    main()
