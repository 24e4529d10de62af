"""A scrolling column that Tab passes through to the fields inside it, instead of stopping
on the column itself (Textual's scroll containers take focus by default)."""

from __future__ import annotations

from textual.containers import VerticalScroll


class Pane(VerticalScroll, can_focus=False):
    pass
