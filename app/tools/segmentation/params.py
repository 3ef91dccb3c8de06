"""Typed tool parameters with ranges and help text a panel can build its widgets from.

A tool's parameters are a dataclass whose fields are declared with :func:`param`::

    @dataclass
    class MarginParams:
        segment: str = param("", label="Segment", help="segment to grow or shrink")
        margin_mm: float = param(2.0, label="Margin", unit="mm", minimum=-50, maximum=50)

:func:`specs` lists them as :class:`ParamSpec` (name, kind, default, range, choices, unit,
help); :func:`validate` checks a filled-in instance and raises :class:`SegmentationError` naming
the field and its allowed range.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from app.errors import SegmentationError


def param(
    default: Any = dataclasses.MISSING,
    *,
    label: str = "",
    help: str = "",
    unit: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[Any, ...] | None = None,
    advanced: bool = False,
) -> Any:
    """A dataclass field carrying the metadata of one tool parameter."""
    meta = {
        "label": label,
        "help": help,
        "unit": unit,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
        "advanced": advanced,
    }
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class ParamSpec:
    """What a panel needs to show one parameter."""

    name: str
    kind: str  # "float", "int", "bool", "choice", "text", "segment", "segments", "points", "optional-float"
    default: Any
    label: str
    help: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    advanced: bool = False


def _kind(name: str, annotation: Any, choices: Any) -> str:
    if choices:
        return "choice"
    text = (
        annotation
        if isinstance(annotation, str)
        else getattr(annotation, "__name__", str(annotation))
    )
    text = str(text).replace(" ", "")
    if name in ("segment", "modifier") or name.endswith("_segment"):
        return "segment"
    if name == "segments":
        return "segments"
    if "tuple" in text or "list" in text:
        return "points"
    if text.startswith("float|None") or text.startswith("int|None"):
        return "optional-float"
    for kind in ("bool", "int", "float", "str"):
        if text.startswith(kind):
            return "text" if kind == "str" else kind
    return "text"


def specs(params_type: type) -> list[ParamSpec]:
    """The parameters of a tool's dataclass, in declaration order."""
    out = []
    for f in dataclasses.fields(params_type):
        meta = f.metadata
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append(
            ParamSpec(
                name=f.name,
                kind=_kind(f.name, f.type, meta.get("choices")),
                default=default,
                label=meta.get("label") or f.name.replace("_", " "),
                help=meta.get("help", ""),
                unit=meta.get("unit", ""),
                minimum=meta.get("minimum"),
                maximum=meta.get("maximum"),
                choices=meta.get("choices"),
                advanced=bool(meta.get("advanced", False)),
            )
        )
    return out


def validate(params: Any) -> None:
    """Check every field of ``params`` against its declared type, range and choices."""
    if not dataclasses.is_dataclass(params):
        msg = "tool parameters must be the tool's parameter dataclass"
        raise SegmentationError(msg)
    hints = typing.get_type_hints(type(params))
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        label = f.metadata.get("label") or f.name
        _check_type(label, value, hints.get(f.name))
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            msg = f"{label}: {value!r} is not one of {', '.join(map(str, choices))}"
            raise SegmentationError(msg)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            msg = f"{label}: {value} is not a number; enter a finite value"
            raise SegmentationError(msg)
        low, high = f.metadata.get("minimum"), f.metadata.get("maximum")
        unit = f.metadata.get("unit") or ""
        if (low is not None and value < low) or (high is not None and value > high):
            msg = f"{label}: {value:g} {unit} is outside {low:g}..{high:g} {unit}".replace(
                "  ", " "
            )
            raise SegmentationError(msg)


def _check_type(label: str, value: Any, hint: Any) -> None:
    if hint is None:
        return
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    for option in options:
        if option is type(None) and value is None:
            return
        origin = typing.get_origin(option) or option
        if origin is float and isinstance(value, int | float) and not isinstance(value, bool):
            return
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if origin is bool and isinstance(value, bool):
            return
        if origin in (str,) and isinstance(value, str):
            return
        if origin in (tuple, list) and isinstance(value, tuple | list):
            return
        if origin is typing.Any:
            return
    msg = f"{label}: {value!r} has the wrong type; expected {hint}"
    raise SegmentationError(msg)
