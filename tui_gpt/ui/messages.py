"""Messages that carry work done in threads back to the UI thread."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tui_gpt.core.events import Event


@dataclass
class TrainingEvent(Message):
    """A trainer event, posted from the training thread; widgets are only ever updated on
    the UI thread."""

    event: Event


@dataclass
class TrainingEnded(Message):
    """The training thread returned: outcome is finished / stopped / failed."""

    outcome: str
    error: str | None = None


@dataclass
class TokenStreamed(Message):
    text: str


@dataclass
class GenerationDone(Message):
    cancelled: bool
    error: str | None = None
