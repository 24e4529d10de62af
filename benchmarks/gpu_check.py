"""The GPU path, end to end: what no CPU test can show.

    python benchmarks/gpu_check.py [--json OUT]            # on a machine with CUDA
    python benchmarks/gpu_check.py --device cpu --quick    # the same checks, small, on a CPU

Each check runs the `tui-gpt` commands a user would (fresh run folders under a temporary
directory), on `--device` (default cuda):

1. **stop and resume**: `train` a model 20 updates in fp32, and again 10 updates, then
   `--resume` to 20: the step losses of the two agree (reported: the largest relative difference;
   GPU kernels with atomics may differ in the last bits).
2. **decoding**: the trained weights decode 32 tokens greedily on the device with the KV
   cache and on the CPU in fp32 without it: the same tokens; and the logits of the whole
   sequence (one forward each) within float tolerance.
3. with two or more GPUs: `torchrun` with `--strategy ddp` and `--strategy fsdp` over NCCL,
   each against one process with the same global batch.
4. **compile and speed**: GPT-2 124M (`gpt2-small`, context 1024; GPT-2's tokenizer where
   its vocabulary can be had, else byte tokens) trains with `--compile` under `--precision
   auto` (bf16 on a GPU that has it) on the bundled samples ten times over: the median
   tokens/s and MFU (against the GPU's published bf16 peak) of the steps after compiling.

Prints one line per check and, with `--json`, writes every figure. `--quick` shrinks every
model and run (nano, context 64, fewer steps; on a CPU, not compiled) for a smoke test;
its speed says nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_texts" / "the_night_kitchen.txt"


def tui_gpt(*args: str, torchrun: int = 0, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tui_gpt", *args]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={torchrun}", "-m", "tui_gpt", *args]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if check and out.returncode:
        raise SystemExit(f"failed: {' '.join(args)}\n{out.stderr[-3000:]}")
    return out


def events(run_dir: Path) -> list[dict]:
    [folder] = [p for p in run_dir.iterdir() if (p / "events.jsonl").is_file()]
    return [json.loads(line) for line in (folder / "events.jsonl").open()]


def run_id(run_dir: Path) -> str:
    [folder] = [p for p in run_dir.iterdir() if (p / "events.jsonl").is_file()]
    return folder.name


def losses(run_dir: Path) -> list[float]:
    return [e["loss"] for e in events(run_dir) if e["event"] == "step"]


def largest_difference(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        raise SystemExit(f"{len(a)} steps against {len(b)}")
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b, strict=True))


def small_run(device: str, steps: int) -> list[str]:
    return ["train", str(SAMPLE), "--preset", "nano", "--tokenizer", "byte", "--dropout", "0",
            "--precision", "fp32", "--device", device, "--epochs", "8", "--max-steps", str(steps),
            "--eval-freq", "5", "--sample-tokens", "8", "--batch-size", "4"]  # fmt: skip


def check_resume(work: Path, device: str) -> dict:
    whole, parts = work / "whole", work / "parts"
    tui_gpt("--run-dir", str(whole), *small_run(device, 20))
    tui_gpt("--run-dir", str(parts), *small_run(device, 10))
    tui_gpt("--run-dir", str(parts), "train", "--resume", run_id(parts), "--max-steps", "20")
    diff = largest_difference(losses(parts), losses(whole))
    return {"steps": len(losses(whole)), "largest_relative_difference": diff, "ok": diff < 1e-4}


def check_decoding(work: Path, device: str) -> dict:
    import torch

    from tui_gpt.core.checkpoint import Checkpoint
    from tui_gpt.core.generate import stream

    path = work / "whole" / run_id(work / "whole") / "checkpoints" / "latest.safetensors"
    ckpt = Checkpoint(path)
    prompt = torch.tensor([[ord(c) for c in "The night"]])
    picked = {}
    for label, where, cache in (("device", device, True), ("cpu", "cpu", False)):
        model = ckpt.build_model(where).eval()
        with torch.no_grad():
            new = list(stream(model, prompt.to(where), 32, use_cache=cache))
        picked[label] = torch.cat(new, dim=1).cpu()
    device_model, cpu_model = ckpt.build_model(device).eval(), ckpt.build_model("cpu").eval()
    sequence = torch.cat([prompt, picked["cpu"]], dim=1)
    with torch.no_grad():
        gap = (device_model(sequence.to(device)).cpu() - cpu_model(sequence)).abs().max().item()
    same = torch.equal(picked["device"], picked["cpu"])
    return {"same_tokens": same, "largest_logit_difference": gap, "ok": same and gap < 1e-3}


def speed_text(work: Path) -> Path:
    """Every bundled sample, ten times over (340 KB): enough windows of 1,024 tokens for a
    batch of 8 and a validation split, in any tokenizer (the speed check's text)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(SAMPLE.parent.glob("*.txt")))
    path = work / "speed.txt"
    path.write_text("\n".join([text] * 10), encoding="utf-8")
    return path


def check_speed(work: Path, device: str, quick: bool) -> dict:
    """GPT-2 124M with GPT-2's tokenizer where its vocabulary can be had (a machine with no
    network and no copy of it: byte tokens, an 85M model of the same blocks)."""
    text = speed_text(work)
    # Compiling for a CPU takes longer than the rest of a quick check: there it trains eager.
    compile_ = [] if quick and device == "cpu" else ["--compile"]
    steps = 8 if quick else 60
    common = [*compile_, "--device", device, "--batch-size", "2" if quick else "8",
              "--max-steps", str(steps), "--epochs", "1000", "--eval-freq", "1000",
              "--sample-tokens", "0"]  # fmt: skip
    shapes = ([("byte", ["--preset", "nano", "--context-length", "64"])] if quick else
              [(tok, ["--preset", "gpt2-small", "--context-length", "1024"]) for tok in ("gpt2", "byte")])  # fmt: skip
    for tokenizer, shape in shapes:
        runs = work / f"speed-{tokenizer}"
        done = tui_gpt("--run-dir", str(runs), "train", str(text), *shape, "--tokenizer", tokenizer,
                       *common, check=tokenizer == shapes[-1][0])  # fmt: skip
        if done.returncode == 0:
            break
    evs = events(runs)
    notes = [e["message"] for e in evs if e["event"] == "notice"]
    started = next(e for e in evs if e["event"] == "run_started")
    after = [e for e in evs if e["event"] == "step"][3:]  # past compiling and warm-up
    mfu = [e["mfu"] for e in after if e.get("mfu") is not None]
    return {
        "params": started["params"], "tokenizer": tokenizer, "precision": started["precision"],
        "peak_source": started["peak_source"],
        "compiled": bool(compile_) and not any("training eager" in n for n in notes),
        "tok_per_s": statistics.median(e["tok_per_s"] for e in after),
        "mfu": statistics.median(mfu) if mfu else None,
    }  # fmt: skip


def check_strategies(work: Path, device: str, gpus: int) -> dict:
    single = work / "single"
    tui_gpt("--run-dir", str(single), *small_run(device, 12)[:-1], str(4 * gpus))
    out = {}
    for strategy in ("ddp", "fsdp"):
        runs = work / strategy
        tui_gpt("--run-dir", str(runs), *small_run(device, 12), "--strategy", strategy, torchrun=gpus)
        diff = largest_difference(losses(runs), losses(single))
        out[strategy] = {"largest_relative_difference": diff, "ok": diff < 1e-4}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--quick", action="store_true", help="small models and runs: a smoke test")
    ap.add_argument("--json", metavar="OUT", help="write every figure here")
    args = ap.parse_args()
    gpus = 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("gpu_check: no CUDA device here (--device cpu runs the checks on the CPU)")
        gpus = torch.cuda.device_count()
        print(f"device: {torch.cuda.get_device_name(0)} x {gpus}, torch {torch.__version__}")
    report: dict = {"device": args.device, "gpus": gpus}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("TUI_GPT_DATA_DIR", str(work / "data"))
        report["resume"] = check_resume(work, args.device)
        print(f"stop and resume: {report['resume']}")
        report["decoding"] = check_decoding(work, args.device)
        print(f"decoding (cache on the device against the CPU, fp32): {report['decoding']}")
        if gpus >= 2:
            report["strategies"] = check_strategies(work, args.device, gpus)
            print(f"ddp and fsdp over NCCL: {report['strategies']}")
        report["speed"] = check_speed(work, args.device, args.quick)
        print(f"compile and speed: {report['speed']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    failed = [name for name, r in report.items() if isinstance(r, dict) and r.get("ok") is False]
    if failed:
        raise SystemExit(f"gpu_check: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
