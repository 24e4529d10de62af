"""Help for the screen in front: its keys, what each of its settings does (from the same one
definition the flags and forms come from), and where runs live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from tui_gpt.core import settings
from tui_gpt.core.events import GLOSSARY


def help_text(
    screen: Screen,
    app_bindings: list[Any],
    runs_dir: Path,
    setting_classes: tuple,
    defaults: dict[type, Any] | None = None,
    source: str = "",
) -> str:
    """The help of `screen` as Rich markup. `defaults`: per settings class, the values a new
    run starts from when they are not the class's own (a recipe's, named by `source`)."""
    lines = [f"[b]{screen.title or type(screen).__name__}[/b] — keys", ""]
    seen: set[str] = set()
    for binding in [*screen.BINDINGS, *app_bindings]:
        text = isinstance(binding, Binding) and (binding.tooltip or binding.description)
        if isinstance(binding, Binding) and text and text not in seen and binding.action != "help":
            seen.add(text)
            lines.append(f"  [b]{binding.key:<12}[/b] {text}")
    lines += [
        "  [b]ctrl+p      [/b] every action, searchable",
        "  [b]f1, ?       [/b] this help",
        "",
    ]
    for cls in setting_classes:
        name = {"ModelChoice": "Model", "TrainConfig": "Training", "SamplingConfig": "Sampling"}
        lines.append(
            f"[b]{name.get(cls.__name__, cls.__name__)} settings[/b] (the command line's flags)"
        )
        base = (defaults or {}).get(cls)
        for spec in settings.specs(cls):
            value = spec.default if base is None else getattr(base, spec.name)
            default = spec.show(value) or spec.blank or "none"
            where = f" ({source})" if base is not None and value != spec.default and source else ""
            lines.append(
                f"  [b]{spec.label}[/b] ({spec.option}, default {default}{where}): {spec.help}"
            )
        lines.append("")
    lines.append("[b]Terms[/b]")
    lines += [f"  [b]{term}[/b]: {meaning}" for term, meaning in GLOSSARY.items()]
    lines.append("")
    lines += [f"Runs live in {runs_dir} (one folder each: settings, events, checkpoints).",
              "Esc or q closes this help."]  # fmt: skip
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1", "dismiss", "Close")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(self.text, id="help-text")

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)
