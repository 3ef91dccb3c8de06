"""Printer credentials and the connection test: the secrets of networked printers.

A printer profile file never holds a secret. The API key (OctoPrint, Moonraker, PrusaLink) or
the PrusaLink digest login (user and password) of a profile goes to the person's own OS
keystore; storing or forgetting one is audited by profile and kind, never with the secret.
"""

from __future__ import annotations

from app.errors import PrintingError
from app.printing.connection import (
    ConnectionSettings,
    check_connection,
    login_name,
    login_secret,
)
from app.printing.profiles import api_key_name, get_printer
from app.security.keystore import Keystore
from app.workflow import policy
from app.workflow.actor import Actor


def store_api_key(actor: Actor, printer: str, key: str) -> None:
    """Keep ``key`` as the API key of profile ``printer``."""
    policy.allow(actor, "print")
    profile = get_printer(printer, actor.paths)
    if not key.strip():
        msg = "the API key is empty; copy it from the printer's web page"
        raise PrintingError(msg)
    Keystore().set(api_key_name(profile.id), key.strip().encode("utf-8"))
    policy.record(actor, "printer.secret", None, profile=profile.id, secret="api-key")


def store_login(actor: Actor, printer: str, user: str, password: str) -> None:
    """Keep the PrusaLink digest login (``user``, ``password``) of profile ``printer``."""
    policy.allow(actor, "print")
    profile = get_printer(printer, actor.paths)
    if not user.strip() or not password:
        msg = "give the user (PrusaLink: 'maker') and the password shown on the printer"
        raise PrintingError(msg)
    Keystore().set(login_name(profile.id), login_secret(user.strip(), password))
    policy.record(actor, "printer.secret", None, profile=profile.id, secret="login")


def forget(actor: Actor, printer: str) -> None:
    """Remove every stored secret of profile ``printer``."""
    policy.allow(actor, "print")
    profile = get_printer(printer, actor.paths)
    store = Keystore()
    for name in (api_key_name(profile.id), login_name(profile.id)):
        store.delete(name)
    policy.record(actor, "printer.secret", None, profile=profile.id, secret="forgotten")


def check(actor: Actor, printer: str, *, url: str | None = None, kind: str | None = None) -> str:
    """Reach the printer of profile ``printer`` once; what answered, in one line."""
    policy.allow(actor, "print")
    profile = get_printer(printer, actor.paths)
    return check_connection(ConnectionSettings.from_profile(profile, url=url, kind=kind))
