"""Model presets and the training configuration.

Presets fix the shape of the network; the vocabulary size comes from the tokenizer at
training time, and the context length can be overridden (the reference trains the 124M
shape at context 256).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING

from tui_gpt.core.errors import TuiGptError

if TYPE_CHECKING:  # the model module imports torch: `tui-gpt --help` should not wait for it
    from tui_gpt.core.model import GPTConfig

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
# Sampling may also read int8 weights (core/quantize.py); training never does.
SAMPLING_PRECISIONS = (*PRECISIONS, "int8")

# name: (emb_dim, n_layers, n_heads, context_length, one-line description)
_PRESETS: dict[str, tuple[int, int, int, int, str]] = {
    "nano": (64, 2, 2, 64, "a few minutes of CPU: smoke tests and demos"),
    "micro": (128, 4, 4, 128, "quick CPU runs on small texts"),
    "mini": (384, 6, 6, 256, "a laptop's evening"),
    "gpt2-small": (768, 12, 12, 1024, "GPT-2 124M"),
    "gpt2-medium": (1024, 24, 16, 1024, "GPT-2 355M"),
    "gpt2-large": (1280, 36, 20, 1024, "GPT-2 774M"),
    "gpt2-xl": (1600, 48, 25, 1024, "GPT-2 1558M"),
}
PRESETS = tuple(_PRESETS)
DEFAULT_PRESET = "micro"


def preset_description(name: str) -> str:
    return _PRESETS[name][4]


def model_config(
    preset: str,
    vocab_size: int = 50257,
    context_length: int | None = None,
    **overrides,
) -> GPTConfig:
    """The GPTConfig of a preset, with the vocabulary of the tokenizer in use."""
    from tui_gpt.core.model import GPTConfig

    if preset not in _PRESETS:
        raise TuiGptError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    emb, layers, heads, ctx, _ = _PRESETS[preset]
    return GPTConfig(
        vocab_size=vocab_size,
        context_length=context_length or ctx,
        emb_dim=emb,
        n_layers=layers,
        n_heads=heads,
        **overrides,
    )


def padded(vocab_size: int, multiple: int = 64) -> int:
    """The vocabulary rounded up to a multiple of 64: 50257 -> 50304. An option, off by
    default: on this project's CPU it did not win once logits are cut back to the vocabulary
    (benchmarks/LEVERS.md)."""
    return -(-vocab_size // multiple) * multiple


def count_params(cfg: GPTConfig) -> int:
    """Parameters of a model of this shape, without building it."""
    c, v, t, L = cfg.emb_dim, cfg.vocab_rows, cfg.context_length, cfg.n_layers
    qkv = 3 * c * c + (3 * c if cfg.qkv_bias else 0)
    block = qkv + (c * c + c) + (c * 4 * c + 4 * c) + (4 * c * c + c) + 4 * c
    head = 0 if cfg.tie_weights else v * c
    return v * c + t * c + L * block + 2 * c + head


@dataclass
class TrainConfig:
    """Everything about a training run except the model's shape."""

    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps (None: run all epochs)
    batch_size: int = 2
    stride: int | None = None  # window step; None means the context length (no overlap)
    train_ratio: float = 0.9
    lr: float = 4e-4
    weight_decay: float = 0.1
    warmup_steps: int = 0  # linear warmup from 0 to lr (0: off, as the reference)
    cosine_decay: bool = False  # cosine decay from lr to min_lr after warmup (off by default)
    min_lr: float = 0.0
    grad_clip: float | None = None  # clip the global gradient norm (None: off, as the reference)
    eval_freq: int = 5  # evaluate every eval_freq steps
    eval_iter: int = 5  # batches per evaluation, for each split
    seed: int = 123
    start_context: str = "Every effort moves you"
    sample_tokens: int = 50  # greedy tokens generated after each epoch
    checkpoint_minutes: float = (
        10.0  # also save `latest` when this long has passed since the last save
    )
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16
    threads: int | None = None  # CPU threads; None picks from the CPUs this process may use
    compile: bool = False  # torch.compile the training step (opt-in: a long first step)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def updated(self, **changes) -> TrainConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.max_steps is None or self.max_steps >= 1, "max steps must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.stride is None or self.stride >= 1, "stride must be at least 1"),
            (0 < self.train_ratio < 1, "train ratio must be between 0 and 1 (exclusive)"),
            (self.lr > 0, "learning rate must be positive"),
            (self.weight_decay >= 0, "weight decay must not be negative"),
            (self.eval_freq >= 1, "eval frequency must be at least 1"),
            (self.eval_iter >= 1, "eval batches must be at least 1"),
            (self.warmup_steps >= 0, "warmup steps must not be negative"),
            (self.grad_clip is None or self.grad_clip > 0, "gradient clip must be positive"),
            (self.sample_tokens >= 0, "sample tokens must not be negative"),
            (self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16"),
        ]
        for ok, message in checks:
            if not ok:
                raise TuiGptError(message)
