"""Scoring a model on a whole token sequence: every token predicted once, from the tokens
before it in its window. What `tui-gpt eval` reports, and what recipes are compared by.

The sequence is cut into consecutive windows of the model's context (the last one shorter);
each window predicts its tokens from its own past only. The loss is the mean over every
predicted token (not a mean of batch means, as the training's periodic evaluation is), and
bits per byte divide the total by the UTF-8 bytes those tokens stand for, so two models with
different tokenizers are compared on the same text.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.loss import perplexity, token_byte_lengths
from tui_gpt.core.model import GPT
from tui_gpt.core.records import SplitScore
from tui_gpt.core.runs import Run


@dataclass(frozen=True)
class Score:
    loss: float  # nats per token
    perplexity: float
    bpb: float  # bits per UTF-8 byte
    tokens: int  # tokens predicted
    bytes: int  # their bytes

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@torch.no_grad()
def score(
    model: GPT,
    ids: np.ndarray,
    byte_lengths: torch.Tensor,
    context: int | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> Score:
    """The model's loss and bits per byte on `ids` (1-D), in fp32, in eval mode."""
    ctx = min(context or model.cfg.context_length, model.cfg.context_length)
    n = len(ids) - 1  # tokens to predict
    if n < 1:
        raise TuiGptError("the text is too short to score: it needs at least two tokens")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nats, nbytes, done = 0.0, 0, 0
    starts = list(range(0, n, ctx))
    full = [s for s in starts if s + ctx <= n]
    rest = [s for s in starts if s + ctx > n]
    try:
        for group in [full[i : i + batch_size] for i in range(0, len(full), batch_size)] + [
            [s] for s in rest
        ]:
            width = min(ctx, n - group[0])
            rows = np.stack([np.asarray(ids[s : s + width + 1], dtype=np.int64) for s in group])
            both = torch.from_numpy(rows).to(device)
            x, y = both[:, :-1], both[:, 1:]
            logits = model(x).float()
            nats += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            nbytes += int(byte_lengths.to(device)[y].sum())
            done += y.numel()
            if progress is not None:
                progress(done, n)
    finally:
        model.train(was_training)
    loss = nats / done
    return Score(loss, perplexity(loss), nats / (nbytes * math.log(2)) if nbytes else math.nan,
                 done, nbytes)  # fmt: skip


@dataclass(frozen=True)
class RunScore:
    run_id: str
    checkpoint: str  # the weights scored
    data: str  # what they were scored on
    split: str  # "validation" (the run's own) or "all" (any text given)
    score: Score
    weights: str = ""  # which they are: "best, step 51, val loss 4.321" (Checkpoint.describe)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), **self.score.to_dict()}


def score_run(
    run: Run,
    data: str | None = None,
    which: str = "best",
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> RunScore:
    """A run's weights (`best`, else `latest`; or `latest`) on all of its own validation
    split, or on all of the text `data` (any corpus tui-gpt reads)."""
    from tui_gpt.core.corpus import inspect_source
    from tui_gpt.core.data import prepare
    from tui_gpt.core.sampling import open_weights

    info = run.record()
    ckpt, tokenizer = open_weights(run, which)
    path = ckpt.path
    cfg = info.train_config()
    if data is None:
        if not info.data_path:
            raise TuiGptError(
                f"run {run.id} was not trained on a dataset here; give DATA to score on"
            )
        source = inspect_source(info.data_path, cfg.text_field)
        if info.dataset.sha256 and source.sha256 != info.dataset.sha256:
            raise TuiGptError(
                f"the dataset of run {run.id} ({info.data_path}) has changed since the run began"
            )
        ids = prepare(source, tokenizer, cfg.train_ratio).val_ids
        split, name = "validation", info.data_path
    else:
        source = inspect_source(data, cfg.text_field)
        prepared = prepare(source, tokenizer, 0.5)
        ids = np.concatenate([prepared.train_ids, prepared.val_ids])
        split, name = "all", data
    weights = ckpt.identity  # of the file opened: a save meanwhile makes this score stale
    model = ckpt.build_model(device).float()
    result = score(model, ids, token_byte_lengths(tokenizer), info.context_length, progress=progress)
    if data is None:  # the run's own split: kept for the runs browser, `runs show`, compare
        done = ckpt.steps_done
        with contextlib.suppress(OSError):  # a read-only run folder: scored all the same
            run.record_split_score(SplitScore(
                path.stem, done - 1 if done is not None else -1, weights,
                result.loss, result.bpb, result.tokens, time.time(),
            ))  # fmt: skip
    return RunScore(run.id, str(path), str(name), split, result, ckpt.describe())
