"""Messages that carry work done in threads back to the UI thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class TrainingEvent(Message):
    """A trainer event (its JSON form), posted from the training thread or read from a run
    folder; widgets are only ever updated from these, on the UI thread."""

    event: dict[str, Any]


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
