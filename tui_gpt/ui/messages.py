"""Messages that carry work done in threads back to the UI thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from tui_gpt.core.events import Event

if TYPE_CHECKING:  # torch comes with these; the messages module must not load it
    from tui_gpt.core.data import PreparedData
    from tui_gpt.core.detach import Detached
    from tui_gpt.core.experiments import RunDetails
    from tui_gpt.core.jobs import TrainingJob
    from tui_gpt.core.runs import Run
    from tui_gpt.core.sampling import LoadedModel
    from tui_gpt.core.tokenizer import BPETokenizer


@dataclass
class TrainingEvent(Message, bubble=False):
    """A trainer event, posted from the training thread; widgets are only ever updated on
    the UI thread. Posted to the app, which hands it to the live dashboard; it must not
    bubble back from there."""

    event: Event


@dataclass
class TrainingEnded(Message, bubble=False):
    """The training thread returned: outcome is finished / stopped / failed. Posted to the
    app, which hands it to the live dashboard; it must not bubble back from there."""

    outcome: str
    error: str | None = None


@dataclass
class TokenStreamed(Message):
    text: str


@dataclass
class GenerationDone(Message):
    cancelled: bool
    error: str | None = None


@dataclass
class ContextCounted(Message):
    """The generator's prompt, tokenized in a worker: its tokens in the context, and how
    many of the earliest were cut to fit."""

    tokens: int
    cut: int


@dataclass
class ProbsReady(Message):
    """The next token's most likely candidates (text, probability), from a worker."""

    candidates: list[tuple[str, float]]
    caption: str


@dataclass
class TextReady(Message):
    """Text a worker read or composed for the screen it was started from (a run's
    details)."""

    text: str


@dataclass
class PreviewReady(Message):
    """A dataset read and tokenized in a worker, for the preview of question `request`:
    its facts, its first problem, the vocabulary size, and what a plan is made from (the
    vocabulary and the prepared data; None where a problem stops any plan)."""

    text: str
    problem: str | None
    vocab: int
    basis: tuple[int, PreparedData] | None
    request: int


@dataclass
class PreviewFailed(Message):
    """The dataset of question `request` could not be read: why."""

    problem: str
    request: int


@dataclass
class PlanReady(Message):
    """The plan line of the settings of question `request` (sized and measured in a worker)."""

    line: str
    request: int


@dataclass
class TokenizerProgress(Message):
    """A tokenizer being fitted: percent done, or None when fitting ended."""

    percent: float | None


@dataclass
class TokenizerTrained(Message):
    tokenizer: BPETokenizer


@dataclass
class RunsRead(Message):
    """The runs a comparison shows, read in a worker."""

    runs: list[RunDetails]


@dataclass
class Say(Message):
    """Something a worker wants the user told (a toast), posted to the app."""

    text: str
    title: str = ""
    severity: str = "information"  # information | warning | error
    timeout: float | None = None


@dataclass
class TrainingReady(Message):
    """The training worker has assembled its job: the app opens its live dashboard.
    `history` is what the run's events file held before this process added to it."""

    job: TrainingJob
    history: list[Event]


@dataclass
class DetachedStarted(Message):
    """A background training process has started and made its run folder."""

    started: Detached


@dataclass
class ModelLoaded(Message):
    """The generator's weights are loaded: the app shows (or refills) the generator."""

    loaded: LoadedModel
    title: str
    run: Run
    which: str  # best | latest
