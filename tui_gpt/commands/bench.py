"""`tui-gpt bench [train|generate|data]`: tokens/s, MFU and memory on this machine."""

from __future__ import annotations

import argparse

from tui_gpt.commands.common import add_settings, positive_int, print_json
from tui_gpt.core.config import (
    DEVICES,
    PRESETS,
    SAMPLING_PRECISIONS,
    ModelChoice,
    TrainConfig,
    model_config,
)

SEED_CONTEXT = 256  # the reference trains GPT-2 124M at context 256


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="measure training / generation / tokenizing speed here",
        description="Measure tui-gpt's own paths on this machine. Defaults are the seed "
        "configuration: 124M model, context 256, batch 2 for train; greedy decoding of 200 "
        "tokens after a 4-token prompt for generate. For tui-gpt against the reference "
        "path, side by side, see benchmarks/compare.py.",
    )
    p.add_argument("what", nargs="?", choices=("train", "generate", "data"), default="train",
                   help="what to time: training steps, decoding, or tokenizing DATA (default train)")  # fmt: skip
    p.add_argument("data", nargs="?", help="text file or folder, for `bench data`")
    p.add_argument("--preset", choices=PRESETS, default="gpt2-small",
                   help="model shape (default gpt2-small)")  # fmt: skip
    p.add_argument("--context-length", type=positive_int,
                   help=f"tokens per window (default: the preset's; {SEED_CONTEXT} for gpt2-small, "
                   "the context the reference trains it at)")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=2,
                   help="windows per batch (default 2)")  # fmt: skip
    p.add_argument("--steps", type=positive_int, default=5, help="timed training steps (default 5)")
    p.add_argument(
        "--new-tokens", type=positive_int, default=200, help="tokens to generate (default 200)"
    )
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="auto picks CUDA, then MPS, then CPU (default auto)")  # fmt: skip
    p.add_argument(
        "--precision",
        choices=SAMPLING_PRECISIONS,
        default="auto",
        help="int8 applies to generate only",
    )
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: all allowed)")
    add_settings(p, ModelChoice, only=("tokenizer", "arch"))
    add_settings(p, TrainConfig, only=("grad_accum", "activation_checkpointing", "peak_tflops", "optimizer"))
    p.add_argument("--json", action="store_true", help="print the measurement as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui_gpt.core import bench
    from tui_gpt.core.errors import TuiGptError
    from tui_gpt.core.tokenizer import get_tokenizer

    tokenizer = args.tokenizer or "gpt2"
    if args.context_length is None:
        args.context_length = SEED_CONTEXT if args.preset == "gpt2-small" else model_config(args.preset).context_length
    vocab = (
        50257 if tokenizer == "gpt2" else get_tokenizer(tokenizer).vocab_size
    )  # the model's rows

    if args.what == "train":
        if args.precision == "int8":
            raise TuiGptError("--precision int8 is for decoding; train with auto, fp32 or bf16")
        result = bench.bench_train(
            args.preset, args.context_length, args.batch_size, args.steps,
            device=args.device, precision=args.precision, threads=args.threads, vocab_size=vocab,
            grad_accum=args.grad_accum or 1, checkpointing=bool(args.activation_checkpointing),
            peak_tflops=args.peak_tflops, arch=args.arch or ModelChoice.arch,
            optimizer=args.optimizer or TrainConfig.optimizer,
        )  # fmt: skip
    elif args.what == "generate":
        from tui_gpt.core.device import resolve_device, resolve_precision

        precision = args.precision
        if precision != "int8":
            precision = resolve_precision(precision, resolve_device(args.device))
        result = bench.bench_generate(
            args.preset, args.context_length, args.new_tokens,
            device=args.device, precision=precision, threads=args.threads, vocab_size=vocab,
            arch=args.arch or ModelChoice.arch,
        )  # fmt: skip
    else:
        if not args.data:
            raise TuiGptError("bench data needs a text file or folder")
        result = bench.bench_data(args.data, tokenizer, threads=args.threads)
    if args.json:
        print_json(result)
        return 0
    if args.what == "train":
        r = result
        accum = f" x {r['grad_accum']} micro-batches" if r["grad_accum"] > 1 else ""
        ckpt = ", activation checkpointing" if r["activation_checkpointing"] else ""
        mfu = (
            f"MFU {r['mfu']:.1%} of {r['peak_flops'] / 1e12:,.2f} TFLOP/s ({r['peak_source']})"
            if r["mfu"] is not None
            else f"MFU unknown: peak {r['peak_source']} (give --peak-tflops)"
        )
        print(
            f"train {r['preset']} ctx {r['context_length']} batch {r['batch_size']}{accum}{ckpt} "
            f"on {r['device']} ({r['runtime']}, {r['threads']} threads): "
            f"{r['tok_per_s']:,.0f} tok/s, {r['step_s']:.2f} s/step, {mfu}\n"
            + (f"{r['runtime_choice']}\n" if r["runtime_choice"] else "")
            + f"memory: training took {r['training_peak_mib']:,.0f} MiB at its peak "
            f"(estimated {r['memory_estimate_mib']:,.0f} MiB), process peak RSS "
            f"{r['peak_rss_mib']:,.0f} MiB"
        )
    elif args.what == "generate":
        print(
            f"generate {result['preset']} greedy {result['new_tokens']} tokens on {result['device']} "
            f"({result['precision']}, {result['threads']} threads, KV cache): {result['tok_per_s']:,.1f} tok/s; "
            f"reads {result['weight_bytes_per_token'] / 2**20:,.0f} MiB of weights per token = "
            f"{result['weight_read_bytes_per_s'] / 1e9:.1f} GB/s, {result['bandwidth_fraction']:.0%} of the "
            f"{result['memory_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s measured copy bandwidth"
        )
    else:
        print(
            f"data: {result['chars']:,} chars -> {result['tokens']:,} tokens in {result['seconds']:.2f} s "
            f"({result['tok_per_s']:,.0f} tok/s), reopen {result['reopen_s']:.3f} s, "
            f"token array {result['token_array_mib']:.1f} MiB, peak RSS {result['peak_rss_mib']:,.0f} MiB"
        )
    return 0
