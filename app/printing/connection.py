"""How to reach a printer, and the job for it: USB, OctoPrint, Moonraker or PrusaLink.

    settings = ConnectionSettings.from_profile(profile, port="/dev/ttyUSB0")
    job = open_job(gcode, settings, pause=PauseSettings(...), printer=profile.name,
                   remote_name="C-7K3M-Q9-g2.gcode", on_state=..., on_event=...)

:func:`check_connection` reaches a printer once (the profile dialog's Test button). A Formlabs
printer takes the approved mesh through PreForm, not G-code: :func:`open_preform` gives its client.
Secrets live in the OS keystore: an API key under ``printer-api-key/<profile id>``, a PrusaLink
digest login (user and password) under ``printer-login/<profile id>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.errors import KeystoreError, PrintingError
from app.printing.backends.formlabs import PreFormClient
from app.printing.backends.moonraker import MoonrakerClient
from app.printing.backends.octoprint import OctoPrintClient
from app.printing.backends.prusalink import PrusaLinkClient, PrusaLinkJob
from app.printing.backends.remote import RemoteBackend, RemoteJob
from app.printing.backends.usb import PauseSettings, UsbBackend, UsbJob
from app.printing.job import PrintJob
from app.printing.profiles import api_key_name
from app.printing.serial_link import LinkOptions

CONNECTION_KINDS = ("usb", "octoprint", "moonraker", "prusalink", "formlabs")


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach one printer; a profile's connection adapted, plus its secret if any: the
    API key, or with ``user`` (PrusaLink digest login) the password."""

    kind: str = "usb"
    port: str = "auto"
    baud: int = 115200
    url: str = ""
    api_key: str | None = field(default=None, repr=False)
    user: str = ""

    def __post_init__(self) -> None:
        if self.kind not in CONNECTION_KINDS:
            msg = f"unknown connection kind '{self.kind}'; use one of {', '.join(CONNECTION_KINDS)}"
            raise PrintingError(msg)

    @classmethod
    def from_profile(
        cls,
        profile: Any,
        *,
        port: str | None = None,
        url: str | None = None,
        kind: str | None = None,
        api_key: str | None = None,
    ) -> ConnectionSettings:
        """Settings from a printer profile (``profile.connection``), with CLI-style overrides.

        ``port`` forces USB; ``url`` forces a networked printer (the profile's kind when it is
        one, else ``kind`` or OctoPrint). The API key of a networked printer comes from the OS
        keystore (``printer-api-key/<profile id>``) unless given; a PrusaLink printer uses its
        stored digest login (``printer-login/<profile id>``) when there is one.
        """
        conn = getattr(profile, "connection", None)
        chosen = kind or getattr(conn, "kind", "usb")
        if port:
            chosen = "usb"
        elif url and chosen == "usb":
            chosen = kind or "octoprint"
        settings = cls(
            kind=chosen,
            port=port or getattr(conn, "port", "auto") or "auto",
            baud=int(getattr(conn, "baud_rate", 115200)),
            url=(url or getattr(conn, "url", "") or "").rstrip("/"),
            api_key=api_key,
        )
        profile_id = getattr(profile, "id", "")
        if settings.kind == "prusalink" and settings.api_key is None:
            user, password = login_from_keystore(profile_id)
            if user:
                return replace(settings, user=user, api_key=password)
        if settings.kind not in ("usb", "formlabs") and settings.api_key is None:
            settings = replace(settings, api_key=api_key_from_keystore(profile_id))
        return settings


def api_key_from_keystore(profile_id: str) -> str | None:
    """The API key stored for ``profile_id`` (None when there is none)."""
    from app.security.keystore import Keystore  # noqa: PLC0415 (keyring only when needed)

    value = Keystore().get(api_key_name(profile_id))
    return None if value is None else value.decode("utf-8")


def login_name(profile_id: str) -> str:
    """The keystore entry holding a PrusaLink digest login (user and password) of a profile."""
    return f"printer-login/{profile_id}"


def login_from_keystore(profile_id: str) -> tuple[str, str | None]:
    """The stored (user, password) of ``profile_id``; ("", None) when there is none."""
    from app.security.keystore import Keystore  # noqa: PLC0415 (keyring only when needed)

    value = Keystore().get(login_name(profile_id))
    if value is None:
        return "", None
    try:
        login = json.loads(value.decode("utf-8"))
        return str(login["user"]), str(login["password"])
    except (ValueError, KeyError, TypeError):
        msg = f"the stored login of printer '{profile_id}' is unreadable; store it again "
        msg += f"('medprint printer login {profile_id}')"
        raise KeystoreError(msg) from None


def login_secret(user: str, password: str) -> bytes:
    """What :func:`login_from_keystore` reads back: the bytes to store under ``login_name``."""
    return json.dumps({"user": user, "password": password}).encode("utf-8")


def open_backend(
    settings: ConnectionSettings,
    *,
    pause: PauseSettings | None = None,
    options: LinkOptions | None = None,
) -> UsbBackend | RemoteBackend:
    """The backend for ``settings``: USB, OctoPrint, Moonraker or PrusaLink."""
    if settings.kind == "usb":
        opts = options or LinkOptions(baud=settings.baud)
        return UsbBackend(settings.port, options=opts, pause=pause)
    if not settings.url:
        msg = f"the {settings.kind} printer has no URL; set it in the printer profile or --url"
        raise PrintingError(msg)
    if settings.kind == "formlabs":
        msg = "a Formlabs printer prints the approved mesh through PreForm, not G-code or SL1"
        raise PrintingError(msg)
    if settings.kind == "octoprint":
        return OctoPrintClient(settings.url, settings.api_key)
    if settings.kind == "prusalink":
        return PrusaLinkClient(settings.url, settings.api_key, user=settings.user)
    return MoonrakerClient(settings.url, settings.api_key)


def open_preform(settings: ConnectionSettings) -> PreFormClient:
    """The PreForm (Formlabs Local API) client of a ``formlabs`` connection."""
    if settings.kind != "formlabs" or not settings.url:
        msg = "a Formlabs printer needs a formlabs connection with PreFormServer's URL"
        raise PrintingError(msg)
    return PreFormClient(settings.url)


def open_job(
    gcode: Path | str | bytes,
    settings: ConnectionSettings,
    *,
    pause: PauseSettings | None = None,
    options: LinkOptions | None = None,
    **job_options: Any,
) -> PrintJob:
    """A job printing ``gcode`` over ``settings`` (see :class:`~app.printing.job.PrintJob` for
    ``job_options``: printer, remote_name, context and the callbacks)."""
    backend = open_backend(settings, pause=pause, options=options)
    if isinstance(backend, UsbBackend):
        return UsbJob(gcode, backend, **job_options)
    if isinstance(backend, PrusaLinkClient):
        return PrusaLinkJob(gcode, backend, **job_options)
    return RemoteJob(gcode, backend, **job_options)


def check_connection(settings: ConnectionSettings, *, options: LinkOptions | None = None) -> str:
    """Reach the printer once and say what answered (for the profile dialog's Test button).

    USB: opens the port, shakes hands and reads the firmware name, then closes. OctoPrint and
    Moonraker: checks the URL, the API key and that the printer behind them is ready. PrusaLink:
    the URL, the login or key, and the printer's state. Formlabs: PreFormServer and the printers
    it sees. Raises :class:`PrinterConnectionError` with the reason otherwise.
    """
    if settings.kind == "formlabs":
        return open_preform(settings).test_connection()
    backend = open_backend(settings, options=options)
    if isinstance(backend, UsbBackend):
        try:
            backend.connect()
            link = backend.link
            firmware = link.firmware
            heaters = ", ".join(sorted(link.temperatures)) or "no temperatures yet"
            return f"{firmware.name} on {link.port} ({heaters})"
        finally:
            backend.close()
    return backend.test_connection()
