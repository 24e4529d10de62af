"""Model presets and the training configuration.

Each setting is one field with its help, label and bounds (core/settings.py); the CLI
flags, the app's forms and validation are generated from these classes.

Presets fix the shape of the network; the vocabulary size comes from the tokenizer at
training time, and the context length can be overridden (the reference trains the 124M
shape at context 256).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tui_gpt import environment
from tui_gpt.core import settings
from tui_gpt.core.errors import DamagedFile, TuiGptError
from tui_gpt.core.fsutil import atomic_write_text
from tui_gpt.core.reading import read_json
from tui_gpt.core.settings import setting
from tui_gpt.core.shape import ARCHS, GPTConfig

DEVICES = ("auto", "cpu", "cuda", "mps")
FIT = "fit"  # a BPE fitted to the run's own data when it starts (core/bpe.py)
TOKENIZERS = ("gpt2", "byte", FIT)  # by name; a tokenizer file is the other choice
PRECISIONS = ("auto", "fp32", "bf16")
OPTIMIZERS = ("adamw", "muon")  # core/optim.py
STRATEGIES = ("auto", "ddp", "fsdp")  # several processes under torchrun (core/distributed.py)
SCHEDULES = ("constant", "cosine", "wsd")  # the learning rate after warmup (core/optim.py)
# Where a model can go (core/export.py) and the number formats each takes.
EXPORT_FORMATS = ("hf", "gguf")
EXPORT_DTYPES = ("f32", "f16", "bf16", "q8_0")
# torch's generators take seeds below 2**64; below 2**63 they also fit the C long of a DDP
# seed offset.
MAX_SEED = 2**63 - 1
# More threads than any machine has cores: a typo, refused before the thread pool is made.
MAX_THREADS = 1024
MAX_MINUTES = 1e6  # about two years: a time budget beyond it is a typing slip
# The automatic evaluation cadence (TrainConfig.eval_interval): a validation curve of about
# this many points whatever the run's length, evaluations costing at most this share of it.
EVALS_PER_RUN = 20
EVAL_SHARE = 0.1
# Sampling may also read int8 weights (core/quantize.py); training never does.
SAMPLING_PRECISIONS = (*PRECISIONS, "int8")

# name: (emb_dim, n_layers, n_heads, context_length, one-line description)
_PRESETS: dict[str, tuple[int, int, int, int, str]] = {
    "nano": (64, 2, 2, 64, "a few minutes of CPU: smoke tests and demos"),
    "micro": (128, 4, 4, 128, "quick CPU runs on small texts"),
    "milli": (256, 4, 4, 128, "a CPU's quarter of an hour"),
    "mini": (384, 6, 6, 256, "a laptop's evening"),
    "gpt2-small": (768, 12, 12, 1024, "GPT-2 124M"),
    "gpt2-medium": (1024, 24, 16, 1024, "GPT-2 355M"),
    "gpt2-large": (1280, 36, 20, 1024, "GPT-2 774M"),
    "gpt2-xl": (1600, 48, 25, 1024, "GPT-2 1558M"),
}
PRESETS = tuple(_PRESETS)
DEFAULT_PRESET = "micro"
# `--preset auto`: the shape a time budget buys on this machine for this text, chosen when
# the run starts (core/sizing.py); the run records the preset and context it chose.
AUTO = "auto"
PRESET_CHOICES = (AUTO, *PRESETS)
# Epochs left blank are the passes the time budget fits (core/sizing.py): at least this
# many, without dropout; more, up to MAX_EPOCHS, with REPEAT_DROPOUT where none is given
# (more passes over a small text over-fit even so: docs/recipes.md).
PLAIN_EPOCHS = 4
MAX_EPOCHS = 16
REPEAT_DROPOUT = 0.3


def preset_description(name: str) -> str:
    if name == AUTO:
        return "sized to the time budget, this machine and the text"
    return _PRESETS[name][4]


def model_config(
    preset: str,
    vocab_size: int = 50257,
    context_length: int | None = None,
    **overrides,
) -> GPTConfig:
    """The GPTConfig of a preset, with the vocabulary of the tokenizer in use."""
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
    c, v, t, L, f = cfg.emb_dim, cfg.vocab_rows, cfg.context_length, cfg.n_layers, cfg.ff_width
    head = 0 if cfg.tie_weights else v * c
    if cfg.arch == "gpt2":
        qkv = 3 * c * c + (3 * c if cfg.qkv_bias else 0)
        block = qkv + (c * c + c) + (c * f + f) + (f * c + c) + 4 * c
        return v * c + t * c + L * block + 2 * c + head
    kv = cfg.kv_heads * cfg.head_dim
    qk_norm = 2 * cfg.head_dim if cfg.qk_norm else 0
    block = c * (c + 2 * kv) + c * c + 3 * c * f + 2 * c + qk_norm  # no biases
    return v * c + L * block + c + head


LLAMA = ("arch", "llama")  # settings of the llama block alone (Spec.when)


# One line per setting: type, default, help, form label, bounds (core/settings.py).
# fmt: off
@dataclass
class ModelChoice:
    """Which model to build and how it reads text."""

    preset: str = setting(DEFAULT_PRESET, "model shape; auto: the shape the --minutes budget buys on this machine for this text", label="Preset", choices=PRESET_CHOICES)
    context_length: int | None = setting(None, "tokens per training window", label="Context length", ge=1, blank="preset's")
    tokenizer: str = setting("gpt2", "GPT-2's BPE, raw bytes, fit (a BPE fitted to the data and sized to it, kept for the next run), or a tokenizer FILE (tokenizer train)", label="Tokenizer", choices=TOKENIZERS, other="FILE")
    dropout: float | None = setting(None, f"dropout rate of a new model; blank: 0.1, or with epochs sized to the budget 0 ({REPEAT_DROPOUT:g} beyond {PLAIN_EPOCHS} epochs)", label="Dropout", ge=0, lt=1, blank="0.1")
    arch: str = setting("gpt2", "gpt2: the chapter's block; llama: rotary positions, RMSNorm, SwiGLU, no biases", label="Architecture", choices=ARCHS)
    kv_heads: int | None = setting(None, "llama: key/value heads (grouped-query attention); must divide the heads", label="KV heads", ge=1, blank="all heads", when=LLAMA)
    qk_norm: bool = setting(False, "llama: RMSNorm of each head's queries and keys (exports as Qwen3)", label="QK-norm", when=LLAMA)
    rope_theta: float = setting(10000.0, "llama: base of the rotary position frequencies", label="Rotary base", gt=1, when=LLAMA)

    @classmethod
    def describing(
        cls, cfg: GPTConfig, tokenizer: str, context_length: int | None, dropout: float | None
    ) -> ModelChoice:
        """The choice that says what a model taken as it is (`--init-from`) is: its
        architecture and tokenizer, and the preset of its widths (the nearest, for weights
        of a shape no preset has; run.json keeps the exact shape)."""
        preset = min(_PRESETS, key=lambda name: (
            abs(_PRESETS[name][0] - cfg.emb_dim), abs(_PRESETS[name][1] - cfg.n_layers)
        ))  # fmt: skip
        choice = cls(
            preset=preset, context_length=context_length, tokenizer=tokenizer,
            dropout=cfg.dropout if dropout is None else dropout, arch=cfg.arch,
        )  # fmt: skip
        if cfg.arch != "gpt2":
            choice.kv_heads, choice.qk_norm, choice.rope_theta = (
                cfg.n_kv_heads, cfg.qk_norm, cfg.rope_theta
            )
        return choice

    def config(self, vocab_size: int, context_length: int | None = None) -> GPTConfig:
        """The shape of a new model of this choice (the preset's widths, this architecture,
        this dropout)."""
        extra: dict[str, Any] = {} if self.dropout is None else {"dropout": self.dropout}
        if self.arch != "gpt2":
            extra |= {"arch": self.arch, "n_kv_heads": self.kv_heads, "qk_norm": self.qk_norm,
                      "rope_theta": self.rope_theta}  # fmt: skip
        try:
            return model_config(self.preset, vocab_size, context_length or self.context_length, **extra)
        except ValueError as exc:  # heads that do not divide, an odd head width
            raise TuiGptError(f"{self.preset} with --arch {self.arch}: {exc}") from None


@dataclass
class TrainConfig:
    """Everything about a training run except the model's shape. `on_resume`: may change
    when a run is resumed; `fixed`: why another cannot (the data order, by default)."""

    epochs: int | None = setting(10, f"passes over the training split; blank: as many as the --minutes budget fits, {PLAIN_EPOCHS} to {MAX_EPOCHS}, with dropout {REPEAT_DROPOUT:g} beyond {PLAIN_EPOCHS} where none is given", label="Epochs", ge=1, blank="sized to the budget", on_resume=True)
    max_steps: int | None = setting(None, "stop after this many updates", label="Max steps", ge=1, blank="all", on_resume=True)
    batch_size: int = setting(2, "windows per batch (per micro-batch with gradient accumulation)", label="Batch size", ge=1)
    grad_accum: int = setting(1, "micro-batches per update: the batch of an update is this x batch size", label="Grad accumulation", ge=1)
    text_field: str = setting("text", "the field (JSONL) or column (Parquet) holding the text", label="Text field")
    stride: int | None = setting(None, "step between windows", label="Stride", ge=1, blank="context length")
    train_ratio: float = setting(0.9, "share of characters for training", label="Train ratio", gt=0, lt=1)
    minutes: float | None = setting(None, "time budget: the steps are set from the measured step time so that the schedule ends when it is up (start-up and data preparation included)", label="Minutes", gt=0, le=MAX_MINUTES, blank="no limit", on_resume=True)
    optimizer: str = setting("adamw", "adamw: AdamW for every weight; muon: Muon for the blocks' weight matrices, AdamW for the rest", label="Optimizer", choices=OPTIMIZERS, fixed="its saved state belongs to the optimizer the run began with")
    lr: float = setting(4e-4, "AdamW learning rate (peak)", label="Learning rate", gt=0, on_resume=True)
    muon_lr: float = setting(0.02, "Muon learning rate (peak), with --optimizer muon", label="Muon LR", gt=0, on_resume=True)
    weight_decay: float = setting(0.1, "AdamW weight decay", label="Weight decay", ge=0, on_resume=True)
    warmup_steps: int = setting(0, "linear warmup steps from 0 to the peak rate", label="Warmup steps", ge=0, on_resume=True)
    schedule: str = setting("constant", "after warmup: constant; cosine down to min lr; wsd: flat, then linear down to min lr", label="Schedule", choices=SCHEDULES, on_resume=True)
    decay_fraction: float = setting(0.2, "wsd: the share of the steps spent decaying", label="Decay share", gt=0, le=1, on_resume=True)
    min_lr: float = setting(0.0, "AdamW learning rate at the end of the decay (Muon's in proportion)", label="Min LR", ge=0, on_resume=True)
    grad_clip: float | None = setting(None, "clip the global gradient norm to this value", label="Gradient clip", gt=0, blank="off", on_resume=True)
    eval_freq: int | None = setting(5, "evaluate every N steps; auto: about 20 evaluations in a run, at most a tenth of its time", label="Eval every", ge=1, blank="auto", on_resume=True)
    eval_iter: int = setting(5, "batches per evaluation", label="Eval batches", ge=1, on_resume=True)
    seed: int = setting(123, "random seed (weights and data order)", label="Seed", ge=0, le=MAX_SEED)
    start_context: str = setting("Every effort moves you", "prompt of the per-epoch sample", label="Start context")
    sample_tokens: int = setting(50, "tokens in the per-epoch sample", label="Sample tokens", ge=0, on_resume=True)
    checkpoint_minutes: float = setting(10.0, "save latest at least this often", label="Save every (min)", gt=0, le=MAX_MINUTES, on_resume=True)
    device: str = setting("auto", "auto picks CUDA, then MPS, then CPU", label="Device", choices=DEVICES, on_resume=True)
    precision: str = setting("auto", "auto: on a CPU with bf16 units the fastest of fp32, bf16 and bf16 with fp32 attention, timed on this model; bf16 on a GPU that has it; fp32 elsewhere", label="Precision", choices=PRECISIONS, on_resume=True)
    threads: int | None = setting(None, "CPU threads", label="Threads", ge=1, le=MAX_THREADS, blank="all allowed", on_resume=True)
    strategy: str = setting("auto", "under torchrun: ddp keeps a whole copy of the model on every process; fsdp shards its weights, gradients and optimizer state across them; auto: ddp, or fsdp where only sharded the training fits in memory", label="Strategy", choices=STRATEGIES, on_resume=True, form=False)
    activation_checkpointing: bool = setting(False, "recompute each block in backward: much less activation memory, about a third slower", label="Recompute blocks", on_resume=True)
    peak_tflops: float | None = setting(None, "the device's peak TFLOP/s that MFU is measured against", label="Peak TFLOP/s", gt=0, blank="auto", on_resume=True)
    compile: bool = setting(False, "torch.compile the training step: a slow first step, faster later ones", label="Compile", on_resume=True)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def passes(self) -> int:
        """The epochs, which blank are sized before a run starts (core/sizing.py)."""
        if self.epochs is None:
            raise TuiGptError("the epochs of this training are not sized yet")
        return self.epochs

    def step_bound(self, batches_per_epoch: int) -> int:
        """The updates the epochs and max steps allow (a time budget may stop sooner)."""
        steps = batches_per_epoch * self.passes
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def eval_interval(self, planned_steps: int) -> int:
        """Steps between evaluations: `eval_freq`, or where it is auto (None) about
        EVALS_PER_RUN in a run of `planned_steps`, never so often that evaluating takes more
        than EVAL_SHARE of the time (an evaluation reads `eval_iter` training and as many
        validation batches forward only, about a third of a step each)."""
        if self.eval_freq is not None:
            return self.eval_freq
        cost = 2 * self.eval_iter / 3  # in steps
        return max(1, math.ceil(planned_steps / EVALS_PER_RUN), math.ceil(cost / EVAL_SHARE))

    def tokens_per_step(self, context_length: int) -> int:
        """Tokens one update reads, per process."""
        return self.batch_size * self.grad_accum * context_length

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        if isinstance(d, dict) and "schedule" not in d and d.get("cosine_decay") is True:
            d = {**d, "schedule": "cosine"}  # run folders from before `schedule`
        return settings.from_dict(cls, d)

    def validate(self) -> None:
        settings.check(self)
        if self.epochs is None and self.minutes is None:
            raise TuiGptError("Epochs (--epochs): give a number, or a time budget (--minutes) to size them to")


def further(text: str, steps_done: int, per_epoch: int) -> tuple[dict[str, Any], str]:
    """Training a run further by "N" more steps or "Ne" more epochs after `steps_done`: the
    resume settings that do it and the plan in words. A time budget the run had no longer
    applies. What `train --resume RUN --further` and the runs browser's x both use. Raises
    ValueError for text that is neither."""
    import re

    match = re.fullmatch(r"\s*(\d+)\s*(e|epochs?|s|steps?)?\s*", text.lower())
    if match is None or int(match[1]) == 0 or per_epoch <= 0:
        raise ValueError(text)
    n = int(match[1])
    more = n * per_epoch if match[2] and match[2].startswith("e") else n
    target = steps_done + more
    epochs = -(-target // per_epoch)
    changes = {"max_steps": target, "epochs": epochs, "minutes": None}
    plan = f"{more:,} more steps: to step {target:,}, {target / per_epoch:,.2f} epochs in all"
    return changes, plan


FURTHER_HELP = "N more steps, or Ne more epochs (500, 2e)"


@dataclass
class SamplingConfig:
    """How tokens are drawn when generating."""

    temperature: float = setting(1.0, "0 is greedy", label="Temperature", ge=0)
    top_k: int = setting(50, "keep the k likeliest tokens; 0 is off", label="Top-k (0: off)", ge=0)
    top_p: float | None = setting(None, "keep tokens up to this total probability", label="Top-p", gt=0, le=1, blank="off")
    max_new_tokens: int = setting(50, "tokens to add", label="Max new tokens", ge=0)
    seed: int | None = setting(None, "seed for repeatable sampling", label="Seed", ge=0, le=MAX_SEED, blank="any")
    eos: bool = setting(False, "stop at the end-of-text token", label="Stop at EOT")
# fmt: on


@dataclass(frozen=True)
class Recipe:
    """A starting point for every setting of a new run: the defaults it changes. Flags and
    form fields the user sets override it; a run records the values it trained with."""

    description: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> tuple[ModelChoice, TrainConfig]:
        return ModelChoice(**self.model), TrainConfig(**self.train)


# `fast` was chosen by measured quality per minute on a CPU (benchmarks/recipes.py, docs/recipes.md);
# `reference` is the chapter's run, which the dataclasses' own defaults are.
RECIPES: dict[str, Recipe] = {
    "fast": Recipe(
        "a modern block and optimizer, a tokenizer fitted to the data, 5 minutes",
        model={"preset": AUTO, "arch": "llama", "tokenizer": "fit"},
        train={"minutes": 5.0, "epochs": None, "batch_size": 16, "optimizer": "muon",
               "lr": 6e-3, "muon_lr": 0.02, "warmup_steps": 20, "schedule": "wsd",
               "decay_fraction": 0.3, "weight_decay": 0.0, "eval_freq": None, "eval_iter": 5},
    ),
    "reference": Recipe("the chapter's: GPT-2's block and tokenizer, AdamW at 4e-4, 10 epochs"),
}
DEFAULT_RECIPE = "fast"


def default_recipe() -> str:
    """The recipe a new run starts from unless one is named: `TUI_GPT_RECIPE`, else fast."""
    name = environment.text("TUI_GPT_RECIPE") or DEFAULT_RECIPE
    if name not in RECIPES:
        raise TuiGptError(f"TUI_GPT_RECIPE={name}: no such recipe; choose one of: {', '.join(RECIPES)}")
    return name


SETTINGS_FILE = "settings.json"  # a run folder's TrainSpec


@dataclass
class TrainSpec:
    """A training to start: the data, the model choice and the training settings. Its JSON
    form is `settings.json` in every run folder and what a background run is given."""

    data: str
    model: ModelChoice = field(default_factory=ModelChoice)
    train: TrainConfig = field(default_factory=TrainConfig)
    init_from: str | None = None  # a run or checkpoint whose weights (and shape) start it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> TrainSpec:
        if not isinstance(d, dict) or not isinstance(d.get("data"), str):
            raise TuiGptError('a training spec needs a JSON object with a "data" path')
        init = d.get("init_from")
        return cls(
            data=d["data"],
            model=settings.from_dict(ModelChoice, d.get("model", {})),
            train=TrainConfig.from_dict(d.get("train", {})),
            init_from=init if isinstance(init, str) else None,
        )

    @classmethod
    def read(cls, path: Path) -> TrainSpec | None:
        """A run folder's settings.json, checked like every run file: None when there is
        none; a damaged one (not a spec, a bad setting) is one DamagedFile naming it."""
        try:
            obj = read_json(path)
        except FileNotFoundError:
            return None
        if not isinstance(obj, dict):
            raise DamagedFile(f"{path}: damaged (not a JSON object)")
        try:
            return cls.from_dict(obj)
        except TuiGptError as exc:
            raise DamagedFile(f"{path}: damaged ({exc})") from None

    def write(self, path: Path) -> None:
        """Write the spec as a settings file (atomically): its one writer."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> TrainSpec:
        path = Path(path).expanduser()
        try:
            spec = cls.from_dict(read_json(path, follow_links=True))
        except FileNotFoundError:
            raise TuiGptError(f"{path}: no such settings file") from None
        # A relative data path is the file's, as in any configuration file: not whatever
        # sits at that path in the folder the command happens to run in.
        data = Path(spec.data).expanduser()
        return replace(spec, data=str(data if data.is_absolute() else path.parent / data))
