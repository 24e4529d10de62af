"""Corpus preparation at gigabyte scale: a generated text of 100 MB and of 1 GB, and the 1 GB
as compressed JSONL (.jsonl.zst), each tokenized into a fresh cache by `tui-gpt bench data`
in a process of its own: MB/s, peak RSS and the time to reopen the cache. Peak RSS must stay
flat as the corpus grows. Also the time `tui-gpt tokenizer train` takes on the 100 MB.

    python benchmarks/data_scale.py [--sizes 100,1000] [--tokenizer gpt2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def words() -> list[str]:
    text = " ".join(p.read_text() for p in sorted((ROOT / "sample_texts").glob("*.txt")))
    return sorted(set(text.split()))


def write_corpus(path: Path, megabytes: int, seed: int = 0) -> None:
    """Paragraphs of the sample texts' words in a seeded random order: text-like, plenty of
    distinct tokens, and the same bytes every time."""
    rng, vocab = random.Random(seed), words()
    target = megabytes * 1_000_000
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target:
            para = " ".join(rng.choices(vocab, k=rng.randint(40, 160))) + "\n\n"
            written += f.write(para)


def to_jsonl_zst(src: Path, dst: Path) -> None:
    import zstandard

    with (
        open(src, encoding="utf-8") as f,
        open(dst, "wb") as raw,
        zstandard.ZstdCompressor(level=3).stream_writer(raw) as out,
    ):
        for line in f:  # one paragraph a line, then a blank line: one record each
            if line.strip():
                out.write((json.dumps({"text": line.rstrip("\n")}) + "\n").encode())


def bench(path: Path, tokenizer: str) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "tui_gpt",
        "bench",
        "data",
        str(path),
        "--tokenizer",
        tokenizer,
        "--json",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        raise SystemExit(result.stderr)
    facts = json.loads(result.stdout)
    facts["bytes"] = path.stat().st_size
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000", help="corpus sizes in MB")
    parser.add_argument("--tokenizer", default="gpt2")
    parser.add_argument("--keep", help="keep the generated corpora in this folder")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="tui-gpt-corpus-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    sizes = [int(s) for s in args.sizes.split(",")]
    for mb in sizes:
        txt = folder / f"corpus-{mb}mb.txt"
        if not txt.exists():
            write_corpus(txt, mb)
        rows.append((f"{mb} MB .txt", bench(txt, args.tokenizer)))
    big = folder / f"corpus-{sizes[-1]}mb.txt"
    zst = folder / f"corpus-{sizes[-1]}mb.jsonl.zst"
    if not zst.exists():
        to_jsonl_zst(big, zst)
    rows.append(
        (
            f"{sizes[-1]} MB as .jsonl.zst ({zst.stat().st_size / 1e6:,.0f} MB on disk)",
            bench(zst, args.tokenizer),
        )
    )
    started = time.perf_counter()
    small = folder / f"corpus-{sizes[0]}mb.txt"
    trained = subprocess.run(
        [sys.executable, "-m", "tui_gpt", "tokenizer", "train", str(small), "--vocab-size", "4096",
         "--out", str(folder / "tok.json"), "--json"], capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    tok_seconds = time.perf_counter() - started
    print(f"\n### Corpus preparation, tokenizer {args.tokenizer}\n")
    print("| corpus | tokens | seconds | MB/s (text) | peak RSS | reopen |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, f in rows:
        mb_per_s = f["chars"] / 1e6 / f["seconds"]
        print(f"| {name} | {f['tokens']:,} | {f['seconds']:.1f} | {mb_per_s:.1f} | "
              f"{f['peak_rss_mib']:,.0f} MiB | {f['reopen_s']:.3f} s |")  # fmt: skip
    info = json.loads(trained.stdout) if trained.returncode == 0 else {"seconds": float("nan")}
    print(f"\n`tokenizer train` on the {sizes[0]} MB corpus, vocabulary 4,096: "
          f"{info['seconds']:.1f} s inside the trainer, {tok_seconds:.1f} s with start-up")  # fmt: skip


if __name__ == "__main__":
    main()
