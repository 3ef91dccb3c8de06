"""What the GUI lists of a slicing engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineInfo:
    """One slicing engine as the GUI lists it."""

    name: str
    label: str
    available: bool
    version: str = ""
    hint: str = ""
