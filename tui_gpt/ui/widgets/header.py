"""Textual's Header, safe against a title change that arrives before its title widget is
mounted (a dashboard's first events can): Textual 8.2's own raises NoMatches then. It also
carries the sign of a training running in this window, on every screen but its dashboard."""

from __future__ import annotations

import contextlib

from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.dom import NoScreen
from textual.events import Mount
from textual.widgets import Header as TextualHeader
from textual.widgets import Static
from textual.widgets._header import HeaderTitle


class Header(TextualHeader):
    def _on_mount(self, _: Mount) -> None:
        async def set_title() -> None:
            with contextlib.suppress(NoMatches, NoScreen):
                self.query_one(HeaderTitle).update(self.format_title())

        for obj in (self.app, self.screen):
            self.watch(obj, "title", set_title)
            self.watch(obj, "sub_title", set_title)
        # (Textual calls one Mount handler per class: `_on_mount` here, not `on_mount`.)
        self._show_live_sign()
        self.set_interval(1.0, self._show_live_sign)

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield Static("", id="live-sign")

    def _show_live_sign(self) -> None:
        sign = getattr(self.app, "live_sign", lambda _screen: "")(self.screen)
        with contextlib.suppress(NoMatches):
            widget = self.query_one("#live-sign", Static)
            widget.update(sign)
            widget.display = bool(sign)
