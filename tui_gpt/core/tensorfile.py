"""The safetensors file format, written by tui-gpt itself, tensor by tensor to a stream.

Why not `safetensors.save_file`: it writes through a temporary file of its own beside the
target, which a killed process leaves behind in a run folder, and it cannot write into a
file tui-gpt opened. The format is small and fixed (8-byte little-endian header length,
the JSON header padded with spaces to a multiple of 8, then each tensor's bytes back to
back, in header order); files are read back with the safetensors library.
"""

from __future__ import annotations

import json
import struct
from typing import BinaryIO

import torch

DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}  # fmt: skip


def raw_bytes(t: torch.Tensor) -> memoryview:
    """A CPU tensor's bytes in memory order (little-endian on every machine torch runs on)."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().data if flat.numel() else memoryview(b"")


def write_safetensors(
    f: BinaryIO, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write `tensors` (in name order) and the text `metadata` as one safetensors file."""
    header: dict[str, object] = {"__metadata__": dict(metadata or {})}
    offset = 0
    names = sorted(tensors)
    for name in names:
        t = tensors[name]
        if t.dtype not in DTYPES:
            raise TypeError(f"{name}: no safetensors type for {t.dtype}")
        size = t.numel() * t.element_size()
        header[name] = {
            "dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size],
        }  # fmt: skip
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for name in names:
        f.write(raw_bytes(tensors[name]))
