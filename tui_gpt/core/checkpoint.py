"""Checkpoints in safetensors: weights, optionally the AdamW state, RNG states and where the
trainer stood, with the configuration in the header so a file describes itself.

Tensor names: `model.<param>` for weights, `optim.<index>.<field>` for the optimizer state,
`rng.<device>` for random-number generator states. The JSON header (safetensors metadata)
holds `format`, `model_config`, and for training checkpoints `train_state` and
`param_groups`. Loading reads tensors only: no pickle, so an untrusted file cannot run code.
Writes go through `fsutil.atomic_write`: a kill during a save leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError, safe_open

from tui_gpt.core.distributed import placed_like
from tui_gpt.core.errors import DamagedFile, TuiGptError
from tui_gpt.core.fsutil import atomic_write, disk_reason, file_identity, sweep_temporaries
from tui_gpt.core.model import GPT
from tui_gpt.core.reading import open_plain, parse_json
from tui_gpt.core.shape import GPTConfig, parse_model_config
from tui_gpt.core.tensorfile import raw_bytes, write_safetensors


class Optimizer(Protocol):
    """What a checkpoint needs of an optimizer (torch's, or core/optim.py's pair)."""

    @property
    def param_groups(self) -> list[dict[str, Any]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


FORMAT = "tui-gpt/1"


def _model_tensors(model: GPT) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if model.cfg.tie_weights:
        state.pop("out_head.weight")  # the same storage as tok_emb.weight
    return {f"model.{k}": v.detach().contiguous() for k, v in state.items()}


def save(
    path: str | Path,
    model: GPT,
    optimizer: Optimizer | None = None,
    train_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically. Weights only unless an optimizer is given."""
    tensors, meta = contents(model, optimizer, train_state, extra)
    return write(path, tensors, meta)


def contents(
    model: GPT,
    optimizer: Optimizer | None = None,
    train_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """What a checkpoint holds, before it is written: the tensors (a sharded model's as its
    shards: core/distributed.py gathers them) and the header."""
    tensors = _model_tensors(model)
    meta: dict[str, str] = {"format": FORMAT, "model_config": json.dumps(model.cfg.to_dict())}
    if optimizer is not None:
        opt = optimizer.state_dict()
        for index, fields in opt["state"].items():
            for name, value in fields.items():
                if torch.is_tensor(value):
                    tensors[f"optim.{index}.{name}"] = value.detach().contiguous()
        meta["param_groups"] = json.dumps(opt["param_groups"])
        tensors["rng.cpu"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if train_state is not None:
        meta["train_state"] = json.dumps(train_state)
    for key, value in (extra or {}).items():
        meta[key] = json.dumps(value)
    return tensors, meta


def write(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    """Write what `contents` made (whole tensors), checksummed, atomically."""
    path = Path(path)
    cpu = {k: v.cpu() for k, v in tensors.items()}
    meta = {**meta, "checksum": _checksum(cpu)}
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(path.parent)
    try:
        atomic_write(path, lambda f: write_safetensors(f, cpu, meta))
    except OSError as exc:
        kept = " (the previous one is intact)" if path.is_file() else ""
        raise TuiGptError(f"cannot save checkpoint {path}: {disk_reason(exc)}{kept}") from None
    return path


def _checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, shape, dtype and bytes, in name order: a damaged
    file (a bad sector, a partial copy, bytes overwritten) no longer matches."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        digest.update(f"{key}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(raw_bytes(t))
    return digest.hexdigest()


def _model_config(meta: dict[str, str], path: Path) -> GPTConfig:
    if "model_config" not in meta:
        raise TuiGptError(f"{path}: damaged model configuration (none in the header)")
    return parse_model_config(parse_json(meta["model_config"], f"{path}: model_config"), path)


def _opened_path(fd: int, path: Path) -> str:
    """A name for the file open at `fd` that a library can open again (the same file, even
    if `path` was replaced since): /proc/self/fd/N on Linux, /dev/fd/N elsewhere."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            return f"{folder}/{fd}"
    return str(path)


class Checkpoint:
    """An opened checkpoint file; tensors are read lazily from the memory-mapped file."""

    def __init__(self, path: str | Path, follow_links: bool = False) -> None:
        """Open `path`: a plain file, not through a symbolic link unless `follow_links` (a
        path the user typed; a run folder's checkpoints are never links)."""
        self.path = Path(path)
        try:
            fd = open_plain(self.path, follow_links)
        except FileNotFoundError:
            raise TuiGptError(f"{self.path}: no such checkpoint") from None
        try:
            st = os.fstat(fd)
            # The identity of the bytes actually read (a score is stored under it): taken
            # from the open file, so a save that replaces the path meanwhile cannot lend
            # its identity to these weights.
            self.identity = file_identity(st)
            self._file = safe_open(_opened_path(fd, self.path), framework="pt", device="cpu")
            meta = self._file.metadata() or {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise TuiGptError(f"{self.path}: not a readable checkpoint ({exc})") from None
        finally:
            os.close(fd)
        if meta.get("format") != FORMAT:
            raise TuiGptError(
                f"{self.path}: not a tui-gpt checkpoint (format {meta.get('format')!r})"
            )
        self.meta = meta
        self.keys = set(self._file.keys())
        self.model_config = _model_config(meta, self.path)

    def verify(self) -> None:
        """Read every tensor: the checksum must match (files from before checksums have
        none) and the weights be finite. A damaged file is one error naming it."""
        tensors = {k: self.tensor(k) for k in self.keys}
        expected = self.meta.get("checksum")
        if expected is not None and _checksum(tensors) != expected:
            raise TuiGptError(f"{self.path}: damaged (its checksum does not match its contents)")
        for key, t in tensors.items():
            if key.startswith("model.") and t.is_floating_point() and not torch.isfinite(t).all():
                raise TuiGptError(f"{self.path}: damaged ({key[6:]} holds NaN or infinite values)")

    def json(self, key: str, default: Any = None) -> Any:
        if key not in self.meta:
            return default
        try:
            return parse_json(self.meta[key], key)
        except DamagedFile as exc:
            raise DamagedFile(f"{self.path}: damaged {key} in the header ({exc})") from None

    def check_tokenizer(self, name: str) -> None:
        """These weights were trained with the tokenizer called `name` (bpe-<hash of its
        file>, gpt2, byte), as far as the header says: other token ids would decode, score
        and train as garbage without a word."""
        trained = self.json("tokenizer")
        if isinstance(trained, str) and trained != name:
            raise TuiGptError(
                f"{self.path}: trained with the tokenizer {trained}, not {name}; its weights "
                "need the tokenizer they were trained with"
            )

    @property
    def train_state(self) -> dict[str, Any] | None:
        return self.json("train_state")

    @property
    def steps_done(self) -> int | None:
        """Updates made before it was saved; None for weights that record none (imported)."""
        state = self.train_state
        done = state.get("steps_done") if isinstance(state, dict) else None  # damaged: none
        return done if isinstance(done, int) and not isinstance(done, bool) else None

    def describe(self, short: bool = False) -> str:
        """Which weights these are, said wherever they are loaded: "best, step 51, val loss
        4.321", "latest, step 77, not evaluated" (runs from before every checkpoint was
        evaluated), "best" (imported weights: no training here). `short`: "val 4.321"."""
        state = self.train_state if isinstance(self.train_state, dict) else {}
        parts = [self.path.stem]
        done = self.steps_done
        if done is not None and done > 0:
            parts.append(f"step {done - 1:,}")
        val = self.json("val_loss")
        if val is None and self.path.stem == "best":  # saved when it was the best so far
            val = state.get("best_val_loss")
        if isinstance(val, int | float) and not isinstance(val, bool):
            parts.append(f"val {val:.3f}" if short else f"val loss {val:.3f}")
        elif state:
            parts.append("not evaluated")
        return ", ".join(parts)

    @property
    def has_optimizer(self) -> bool:
        return "param_groups" in self.meta

    def tensor(self, key: str) -> torch.Tensor:
        try:
            return self._file.get_tensor(key)
        except (SafetensorError, OSError) as exc:
            raise TuiGptError(f"{self.path}: damaged tensor {key} ({exc})") from None

    def load_model(self, model: GPT) -> None:
        """Copy the weights into `model` (into this rank's shards of a sharded one); a
        different shape or key set is a clear error."""
        expected = _model_tensors(model)
        found = {k for k in self.keys if k.startswith("model.")}
        missing, unexpected = set(expected) - found, found - set(expected)
        if missing or unexpected:
            raise TuiGptError(
                f"{self.path}: weights do not fit this model "
                f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
            )
        with torch.no_grad():
            params = dict(model.state_dict(keep_vars=True))
            for key, target in expected.items():
                value = self.tensor(key)
                if value.shape != target.shape:
                    raise TuiGptError(
                        f"{self.path}: {key[6:]} has shape {tuple(value.shape)}, "
                        f"the model expects {tuple(target.shape)}"
                    )
                params[key[6:]].copy_(placed_like(value, params[key[6:]]))

    def check_shapes(self) -> None:
        """The tensors in the file have the shapes its configuration promises; checked on
        a model that holds no memory, before one that does is built."""
        with torch.device("meta"):
            expected = _model_tensors(GPT(self.model_config))
        for key, target in expected.items():
            if key not in self.keys:
                raise TuiGptError(
                    f"{self.path}: weights do not fit its configuration (no {key[6:]})"
                )
            shape = tuple(self._file.get_slice(key).get_shape())
            if shape != tuple(target.shape):
                raise TuiGptError(
                    f"{self.path}: {key[6:]} has shape {shape}, its configuration says "
                    f"{tuple(target.shape)}"
                )

    def build_model(self, device: torch.device | str = "cpu") -> GPT:
        self.check_shapes()
        model = GPT(self.model_config)
        self.load_model(model)
        return model.to(device)

    def load_optimizer(self, optimizer: Optimizer) -> None:
        if not self.has_optimizer:
            raise TuiGptError(f"{self.path}: holds weights only, no optimizer state to resume from")
        groups = self.json("param_groups")
        state: dict[int, dict[str, torch.Tensor]] = {}
        # Each saved index's parameter: a sharded one takes its shard of each whole tensor
        # as it is read, so no rank holds the whole optimizer state.
        params: dict[int, torch.Tensor] = {}
        live_groups = optimizer.param_groups
        for saved, live in zip(optimizer.state_dict()["param_groups"], live_groups, strict=True):
            params.update(zip(saved["params"], live["params"], strict=True))
        try:
            for key in self.keys:
                if key.startswith("optim."):
                    _, index, name = key.split(".", 2)
                    value, param = self.tensor(key), params.get(int(index))
                    if param is not None and value.shape == param.shape:
                        value = placed_like(value, param)
                    state.setdefault(int(index), {})[name] = value
            optimizer.load_state_dict({"state": state, "param_groups": groups})
        except (ValueError, KeyError, RuntimeError, TypeError, IndexError, AttributeError) as exc:
            raise TuiGptError(f"{self.path}: optimizer state does not fit ({exc})") from None

    def restore_rng(self) -> None:
        try:
            if "rng.cpu" in self.keys:
                torch.set_rng_state(self.tensor("rng.cpu"))
            if "rng.cuda" in self.keys and torch.cuda.is_available():
                torch.cuda.set_rng_state(self.tensor("rng.cuda"))
        except (RuntimeError, TypeError) as exc:
            raise TuiGptError(f"{self.path}: damaged random-number state ({exc})") from None
