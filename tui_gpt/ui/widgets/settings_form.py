"""A form of settings, generated from their one definition (core/settings.py): a labelled
row per setting, a choice list for choices, a switch for yes/no, a text field otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Switch

from tui_gpt.core import settings
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.settings import Spec

T = TypeVar("T")


class SettingsForm(Vertical):
    DEFAULT_CSS = """
    SettingsForm { height: auto; }
    SettingsForm .row { height: 1; margin-bottom: 1; }
    SettingsForm .row Label { width: 20; color: $text-muted; }
    SettingsForm .row Input, SettingsForm .row Select { width: 1fr; }
    """

    def __init__(
        self,
        *classes: type,
        choice_labels: dict[str, Callable[[str], str]] | None = None,
        more_choices: dict[str, Callable[[], list[tuple[str, str]]]] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.classes_shown = classes
        self.choice_labels = choice_labels or {}
        # (label, value) options beyond a setting's own choices (those its `other` allows)
        self.more_choices = more_choices or {}
        self._unshown: dict[str, Any] = {}  # settings not in forms (Spec.form), as last shown

    def specs(self) -> Iterator[Spec]:
        for cls in self.classes_shown:
            yield from (spec for spec in settings.specs(cls) if spec.form)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # The field being edited sits mid-column, so a choice list's menu opens below it with
        # room to spare instead of over the footer at the screen's last line.
        self.screen.scroll_to_center(event.widget, animate=False)

    def compose(self) -> ComposeResult:
        for spec in self.specs():
            with Horizontal(classes="row"):
                yield Label(spec.label)
                yield self._field(spec)

    def _field(self, spec: Spec) -> Widget:
        if spec.choices:
            options = self.options(spec)
            return Select(
                options, value=spec.default, allow_blank=False, id=spec.name, compact=True
            )
        if spec.kind is bool:
            return Switch(value=bool(spec.default), id=spec.name)
        return Input(spec.show(spec.default), placeholder=spec.blank, id=spec.name, compact=True)

    def options(self, spec: Spec) -> list[tuple[str, str]]:
        name = self.choice_labels.get(spec.name, str)
        more = self.more_choices.get(spec.name, list)()
        return [(name(c), c) for c in spec.choices or ()] + more

    def choose(self, name: str, value: str) -> None:
        """Select `value` in the choice list `name`, refreshing the list so it is there."""
        spec = next(s for s in self.specs() if s.name == name)
        select = self.query_one(f"#{name}", Select)
        select.set_options(self.options(spec))
        select.value = value

    def value(self, spec: Spec) -> Any:
        """The field's value; raises `TuiGptError` naming the field if it does not parse."""
        widget = self.query_one(f"#{spec.name}")
        if isinstance(widget, Select | Switch):
            return widget.value
        assert isinstance(widget, Input)
        try:
            return spec.parse(widget.value)
        except ValueError as exc:
            raise TuiGptError(f"{spec.label}: {exc}") from None

    def read(self, cls: type[T]) -> T:
        """The settings of `cls` as the form holds them, checked; a hidden setting (one
        that does not apply, Spec.when) at its default."""
        obj = cls(**{spec.name: self.value(spec) if spec.form else self._unshown.get(spec.name, spec.default)
                     for spec in settings.specs(cls)})  # fmt: skip
        hidden = {s.name: s.default for s in settings.specs(cls) if not s.applies(obj)}
        if hidden:
            obj = cls(**{**obj.__dict__, **hidden})
        settings.check(obj)
        return obj

    def on_mount(self) -> None:
        self.show_applicable()

    def on_select_changed(self, _event: Select.Changed) -> None:
        self.show_applicable()

    def show_applicable(self) -> None:
        """Show only the rows of settings that apply to the other settings' values."""
        for spec in self.specs():
            if spec.when is None:
                continue
            chooser = self.query(f"#{spec.when[0]}")
            shown = not chooser or getattr(chooser.first(), "value", None) == spec.when[1]
            row = self.query_one(f"#{spec.name}").parent
            if isinstance(row, Widget):
                row.display = shown

    def show(self, obj: Any) -> None:
        """Fill the fields of `obj`'s settings from it."""
        for spec in settings.specs(type(obj)):
            if not spec.form:  # kept as it was given, for `read`
                self._unshown[spec.name] = getattr(obj, spec.name)
                continue
            widget, value = self.query_one(f"#{spec.name}"), getattr(obj, spec.name)
            if isinstance(widget, Input):
                widget.value = spec.show(value)
            elif isinstance(widget, Select | Switch):
                widget.value = value
