"""Textual's Header, safe against a title change that arrives before its title widget is
mounted (a dashboard's first events can): Textual 8.2's own raises NoMatches then."""

from __future__ import annotations

import contextlib

from textual.css.query import NoMatches
from textual.dom import NoScreen
from textual.events import Mount
from textual.widgets import Header as TextualHeader
from textual.widgets._header import HeaderTitle


class Header(TextualHeader):
    def _on_mount(self, _: Mount) -> None:
        async def set_title() -> None:
            with contextlib.suppress(NoMatches, NoScreen):
                self.query_one(HeaderTitle).update(self.format_title())

        for obj in (self.app, self.screen):
            self.watch(obj, "title", set_title)
            self.watch(obj, "sub_title", set_title)
