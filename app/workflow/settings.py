"""Settings: show them (anyone), change one (administrators; audited ``settings.changed``).

The settings file is shared by everyone using the data folder, and some settings are part of
the security set-up (``syslog``: where audit heads go), so changing one is an administrator's
act. Text settings take the text; yes/no settings take ``true`` or ``false``; an empty text
clears a setting back to its default.
"""

from __future__ import annotations

from dataclasses import asdict, fields

from app.errors import MedPrintError
from app.security import syslog
from app.settings import Settings
from app.workflow import policy
from app.workflow.actor import Actor

_BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def show(actor: Actor) -> dict:
    """Every setting and its value."""
    return asdict(Settings.load(actor.paths))


def settable() -> list[str]:
    """The settings a command can change (text and yes/no ones)."""
    return [f.name for f in fields(Settings) if f.type in ("str", "bool")]


def set_value(actor: Actor, name: str, text: str) -> object:
    """Change setting ``name`` to ``text`` (parsed to its type, checked); returns the value."""
    policy.allow(actor, "settings.manage")
    if name not in settable():
        msg = f"unknown setting '{name}'; choose one of {', '.join(settable())}"
        raise MedPrintError(msg)
    current = Settings.load(actor.paths)
    value = _parse(name, text, getattr(Settings(), name))
    if name == "syslog" and value:
        syslog.parse_target(str(value))
    changed = Settings.from_dict(asdict(current) | {name: value})
    changed.save(actor.paths)
    policy.record(actor, "settings.changed", setting=name, value=value)
    return value


def _parse(name: str, text: str, default: object) -> object:
    if isinstance(default, bool):
        if text.strip().lower() not in _BOOLEANS:
            msg = f"setting '{name}' takes true or false"
            raise MedPrintError(msg)
        return _BOOLEANS[text.strip().lower()]
    return text.strip() or default
