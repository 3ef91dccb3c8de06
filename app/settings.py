"""Where MedPrint keeps its files, and the user's typed settings.

Everything lives under one data folder: the platformdirs user-data folder by default, or the
folder named by ``--data-dir`` / the ``MEDPRINT_DATA_DIR`` environment variable (every test
uses one). Nothing is ever written next to the program itself.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import platformdirs

from app.atomic import atomic_write_bytes
from app.errors import MedPrintError

APP_NAME = "MedPrint"
DATA_DIR_ENV = "MEDPRINT_DATA_DIR"


@dataclass(frozen=True)
class Paths:
    """The folders of one MedPrint installation, all under ``root``."""

    root: Path

    @property
    def vault(self) -> Path:
        return self.root / "vault"

    @property
    def audit(self) -> Path:
        return self.root / "audit"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def printers(self) -> Path:
        return self.root / "config" / "printers"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def settings_file(self) -> Path:
        return self.config / "settings.json"

    def is_shared(self) -> bool:
        """A data folder several OS accounts share: group-owned, group-writable, setgid."""
        try:
            mode = self.root.stat().st_mode
        except OSError:
            return False
        return (
            os.name != "nt" and mode & (stat.S_ISGID | stat.S_IWGRP) == stat.S_ISGID | stat.S_IWGRP
        )

    def ensure(self) -> Paths:
        """Make the folders: private to this account, or, in a shared data folder, usable by
        its group (this process then creates every file and folder without access for others:
        umask 007)."""
        mode = 0o700
        if self.is_shared():
            os.umask(0o007)
            mode = 0o770
        for folder in (self.root, self.vault, self.audit, self.logs, self.config, self.tmp):
            folder.mkdir(parents=True, exist_ok=True, mode=mode)
        return self


def resolve_paths(data_dir: str | os.PathLike[str] | None = None) -> Paths:
    """The data folder: explicit argument, then ``MEDPRINT_DATA_DIR``, then platformdirs."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV)
    if chosen:
        return Paths(Path(chosen).expanduser().resolve())
    return Paths(Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)))


@dataclass
class Settings:
    """User preferences; unknown or mistyped keys in the file are rejected with a message."""

    units: str = "mm"
    default_window_preset: str = "bone"
    default_threshold_preset: str = "bone"
    default_printer: str = "generic-marlin-220"
    recent_cases: list[str] = field(default_factory=list)
    syslog: str = ""  # udp://HOST:PORT of a log collector that receives each audit head
    syslog_local: bool = False  # also send each audit head to the local /dev/log

    @classmethod
    def load(cls, paths: Paths) -> Settings:
        path = paths.settings_file
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            msg = f"settings file {path.name} is unreadable ({exc.__class__.__name__}); fix or delete it"
            raise MedPrintError(msg) from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: object) -> Settings:
        if not isinstance(raw, dict):
            msg = "settings must be a JSON object; fix or delete the settings file"
            raise MedPrintError(msg)
        known = {f.name: f for f in fields(cls)}
        defaults = cls()
        values = {}
        for key, value in raw.items():
            if key not in known:
                msg = f"unknown setting '{key}'; remove it from the settings file"
                raise MedPrintError(msg)
            expected = type(getattr(defaults, key))
            if not isinstance(value, expected):
                msg = f"setting '{key}' must be a {expected.__name__}, not {type(value).__name__}"
                raise MedPrintError(msg)
            values[key] = value
        if values.get("units", "mm") not in ("mm", "cm", "in"):
            msg = "setting 'units' must be one of mm, cm, in"
            raise MedPrintError(msg)
        return cls(**values)

    def save(self, paths: Paths) -> None:
        paths.config.mkdir(parents=True, exist_ok=True)
        text = json.dumps(asdict(self), indent=2, sort_keys=True)
        atomic_write_bytes(paths.settings_file, text.encode("utf-8"))
