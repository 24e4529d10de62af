"""Every setting is defined once, as a dataclass field with its metadata.

`setting(default, help, label=..., ge=..., choices=...)` declares a field of a settings
dataclass (core/config.py). From that one line come: the `--flag` of every command that
takes it (commands/common.py), the app's form field (ui/widgets/settings_form.py), parsing
of typed text, the bounds check, and the JSON form a background run receives.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from tui_gpt.core.errors import TuiGptError

T = TypeVar("T")
_BOOLS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLS |= {"false": False, "no": False, "off": False, "0": False}


def setting(default: Any, help: str, *, label: str, **meta: Any) -> Any:
    """A settings field; `meta` takes the bounds and options of `Spec` below (ge, gt, lt,
    le, choices, other, flag, blank, on_resume, fixed, when, form)."""
    return dataclasses.field(
        default=default, metadata={"setting": {"help": help, "label": label, **meta}}
    )


@dataclass(frozen=True)
class Spec:
    """One setting as the CLI, the form and validation see it."""

    name: str
    kind: type  # int, float, str or bool
    optional: bool  # None is a valid value (an empty form field, an absent flag)
    default: Any
    help: str
    label: str
    ge: float | None = None
    gt: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    flag: str | None = None  # when not --<name with dashes>
    other: str = ""  # what else than `choices` is accepted (checked where it is used)
    blank: str = ""  # what an empty optional field means, shown in the form
    on_resume: bool = False  # may change when a run is resumed
    fixed: str = "it would change the data order"  # why it may not, where it may not
    # (setting, value): applies only while that other setting has that value (a llama-only
    # setting: ("arch", "llama")); elsewhere it must keep its default, and forms hide it.
    when: tuple[str, str] | None = None
    form: bool = (
        True  # in the app's forms; not what applies only under torchrun (the app is one process)
    )

    def applies(self, obj: Any) -> bool:
        """Whether the setting shapes `obj`: a config, or a run's settings as a flat dict."""
        if self.when is None:
            return True
        name, value = self.when
        return (obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)) == value

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def parse(self, text: str) -> Any:
        """The value of typed text; raises ValueError with a message for the user."""
        text = text.strip()
        if not text and self.optional:
            return None
        value: Any
        if self.kind is bool:
            if text.lower() not in _BOOLS:
                raise ValueError(f"expected yes or no, got {text!r}")
            value = _BOOLS[text.lower()]
        elif self.kind is int:
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"expected a whole number, got {text!r}") from None
        elif self.kind is float:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"expected a number, got {text!r}") from None
        else:
            value = text
        problem = self.problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of this setting, or None."""
        if value is None:
            return None if self.optional else "a value is required"
        if self.kind is bool:
            return None if isinstance(value, bool) else f"expected yes or no, got {value!r}"
        if self.kind in (int, float):
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if not numeric or (self.kind is int and not isinstance(value, int)):
                return f"expected {'a whole number' if self.kind is int else 'a number'}, got {value!r}"
            if not math.isfinite(value):
                return f"must be a finite number, got {value}"
            if not self._in_range(value):
                shown = value if isinstance(value, int) else f"{value:g}"
                return f"must be {self.range_text()}, got {shown}"
            return None
        if not isinstance(value, str):
            return f"expected text, got {value!r}"
        if self.choices and value not in self.choices and not self.other:
            return f"must be one of {', '.join(self.choices)}, got {value!r}"
        return None

    def _in_range(self, v: float) -> bool:
        return not (
            (self.ge is not None and v < self.ge)
            or (self.gt is not None and v <= self.gt)
            or (self.le is not None and v > self.le)
            or (self.lt is not None and v >= self.lt)
        )

    def range_text(self) -> str:
        if self.gt is not None and self.lt is not None:
            return f"between {self.gt:g} and {self.lt:g} (exclusive)"
        words = [
            f"{word} {_number(bound)}"
            for word, bound in (("at least", self.ge), ("greater than", self.gt),
                                ("at most", self.le), ("below", self.lt))
            if bound is not None
        ]  # fmt: skip
        return " and ".join(words)

    def show(self, value: Any) -> str:
        """The value as the form and `--help` write it."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        return f"{value:g}" if isinstance(value, float) else str(value)


def _number(value: float) -> str:
    """A bound as written: whole numbers in full (2**63 - 1, not 9.22337e+18)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def specs(cls: type) -> list[Spec]:
    """The settings of a settings dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is None:
            continue
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
        kind = next(a for a in args if a is not type(None)) if optional else hint
        out.append(Spec(f.name, kind, optional, f.default, **meta))
    return out


def check(obj: Any) -> None:
    """Raise `TuiGptError` naming the first setting of `obj` out of its bounds, or set
    where it does not apply."""
    for spec in specs(type(obj)):
        problem = spec.problem(getattr(obj, spec.name))
        if problem:
            raise TuiGptError(f"{spec.label} ({spec.option}): {problem}")
        if not spec.applies(obj) and getattr(obj, spec.name) != spec.default:
            assert spec.when is not None
            other = "--" + spec.when[0].replace("_", "-")
            raise TuiGptError(f"{spec.label} ({spec.option}) applies only with {other} "
                              f"{spec.when[1]}, not {getattr(obj, spec.when[0])}")  # fmt: skip


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """A settings object from its JSON form; unknown keys are ignored, bad values named."""
    if not isinstance(data, dict):
        raise TuiGptError(f"settings must be a JSON object, got {type(data).__name__}")
    known = {s.name for s in specs(cls)}
    obj = cls(**{k: v for k, v in data.items() if k in known})
    check(obj)
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)
