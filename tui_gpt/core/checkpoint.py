"""Checkpoints in safetensors: weights, optionally the AdamW state, RNG states and where the
trainer stood, with the configuration in the header so a file describes itself.

Tensor names: `model.<param>` for weights, `optim.<index>.<field>` for the optimizer state,
`rng.<device>` for random-number generator states. The JSON header (safetensors metadata)
holds `format`, `model_config`, and for training checkpoints `train_state` and
`param_groups`. Loading reads tensors only: no pickle, so an untrusted file cannot run code.
Writes go through `fsutil.atomic_write`: a kill during a save leaves the previous file intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.fsutil import atomic_write
from tui_gpt.core.model import GPT, GPTConfig

FORMAT = "tui-gpt/1"


def _model_tensors(model: GPT) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if model.cfg.tie_weights:
        state.pop("out_head.weight")  # the same storage as tok_emb.weight
    return {f"model.{k}": v.detach().contiguous() for k, v in state.items()}


def save(
    path: str | Path,
    model: GPT,
    optimizer: torch.optim.Optimizer | None = None,
    train_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically. Weights only unless an optimizer is given."""
    path = Path(path)
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
    cpu = {k: v.cpu() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a process killed mid-save
        stale.unlink(missing_ok=True)
    try:
        atomic_write(path, lambda tmp: save_file(cpu, str(tmp), metadata=meta))
    except OSError as exc:
        raise TuiGptError(f"cannot save checkpoint {path}: {exc.strerror or exc}") from None
    return path


class Checkpoint:
    """An opened checkpoint file; tensors are read lazily from the memory-mapped file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise TuiGptError(f"{self.path}: no such checkpoint")
        try:
            self._file = safe_open(str(self.path), framework="pt", device="cpu")
            meta = self._file.metadata() or {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise TuiGptError(f"{self.path}: not a readable checkpoint ({exc})") from None
        if meta.get("format") != FORMAT:
            raise TuiGptError(
                f"{self.path}: not a tui-gpt checkpoint (format {meta.get('format')!r})"
            )
        self.meta = meta
        self.keys = set(self._file.keys())
        try:
            self.model_config = GPTConfig(**json.loads(meta["model_config"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TuiGptError(f"{self.path}: damaged model configuration ({exc})") from None

    def json(self, key: str, default: Any = None) -> Any:
        return json.loads(self.meta[key]) if key in self.meta else default

    @property
    def train_state(self) -> dict[str, Any] | None:
        return self.json("train_state")

    @property
    def has_optimizer(self) -> bool:
        return "param_groups" in self.meta

    def tensor(self, key: str) -> torch.Tensor:
        try:
            return self._file.get_tensor(key)
        except (SafetensorError, OSError) as exc:
            raise TuiGptError(f"{self.path}: damaged tensor {key} ({exc})") from None

    def load_model(self, model: GPT) -> None:
        """Copy the weights into `model`; a different shape or key set is a clear error."""
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
                params[key[6:]].copy_(value)

    def build_model(self, device: torch.device | str = "cpu") -> GPT:
        model = GPT(self.model_config)
        self.load_model(model)
        return model.to(device)

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        if not self.has_optimizer:
            raise TuiGptError(f"{self.path}: holds weights only, no optimizer state to resume from")
        groups = self.json("param_groups")
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key in self.keys:
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = self.tensor(key)
        try:
            optimizer.load_state_dict({"state": state, "param_groups": groups})
        except (ValueError, KeyError, RuntimeError) as exc:
            raise TuiGptError(f"{self.path}: optimizer state does not fit ({exc})") from None

    def restore_rng(self) -> None:
        if "rng.cpu" in self.keys:
            torch.set_rng_state(self.tensor("rng.cpu"))
        if "rng.cuda" in self.keys and torch.cuda.is_available():
            torch.cuda.set_rng_state(self.tensor("rng.cuda"))
