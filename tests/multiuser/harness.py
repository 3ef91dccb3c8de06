"""Several people on one workstation, for real: OS accounts, their keystores, a shared folder.

Every account made here runs ``medprint`` as itself (``runuser -u NAME``) in a private D-Bus
session with its own unlocked gnome-keyring (a real Secret Service), whose keyring file stays in
the account's home between commands, so the account's personal keys persist like a person's.

The accounts cannot run pyenv's python under /root (mode 0700), so the program runs from a venv
made with Debian's ``/usr/bin/python3``: the dependencies live in a venv cached in
``/var/cache/medprint-tests`` keyed by the hash of pyproject.toml (built once per dependency
change), and each session installs a world-readable copy of the checkout (non-editable) into a
small venv of its own that reads the cached dependencies.

Names carry a per-session tag (``mp-tech-k3f``), so two sessions never share an account; a
session killed before its teardown is cleaned up by the next one (its pid is gone).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
CACHE = Path(os.environ.get("MEDPRINT_TEST_CACHE", "/var/cache/medprint-tests"))
KEYRING_PASSWORD = "medprint-test"
COMMAND_TIMEOUT = 600
TOOLS = ("runuser", "useradd", "userdel", "groupadd", "groupdel", "dbus-run-session")
TOOLS += ("dbus-send", "gnome-keyring-daemon")

# Runs as the account, inside dbus-run-session: an unlocked gnome-keyring (secrets only) with
# the keyring file in the account's home, waits until it owns org.freedesktop.secrets on the
# session bus, runs the command, then stops the daemon by its pid (it outlives the bus).
KEYRING_SESSION = r"""
set -eu
export XDG_DATA_HOME="$HOME/.local/share"
XDG_RUNTIME_DIR=$(mktemp -d); export XDG_RUNTIME_DIR
mkdir -p "$XDG_DATA_HOME" "$HOME/.medprint-test"
printf '%s\n' "$MEDPRINT_TEST_KEYRING_PASSWORD" | gnome-keyring-daemon --foreground --unlock \
  --components=secrets --control-directory="$XDG_RUNTIME_DIR/keyring" \
  >/dev/null 2>"$XDG_RUNTIME_DIR/keyring.err" &
keyring_pid=$!
echo "$keyring_pid" >> "$HOME/.medprint-test/keyring.pids"
unset MEDPRINT_TEST_KEYRING_PASSWORD
tries=0
until dbus-send --session --print-reply --dest=org.freedesktop.DBus / \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q true
do
  tries=$((tries + 1))
  if [ "$tries" -ge 400 ]; then
    echo "gnome-keyring-daemon did not start:" >&2; cat "$XDG_RUNTIME_DIR/keyring.err" >&2; exit 97
  fi
  sleep 0.05
done
export GNOME_KEYRING_CONTROL="$XDG_RUNTIME_DIR/keyring"
status=0
"$@" || status=$?
kill "$keyring_pid" 2>/dev/null || true
wait "$keyring_pid" 2>/dev/null || true
rm -rf "$XDG_RUNTIME_DIR"
exit "$status"
"""


def missing_parts() -> list[str]:
    """What this machine lacks to run several accounts (empty when everything is there)."""
    missing = [] if os.geteuid() == 0 else ["root (to create OS accounts)"]
    missing += [tool for tool in TOOLS if shutil.which(tool) is None]
    if not SYSTEM_PYTHON.exists():
        missing.append(str(SYSTEM_PYTHON))
    elif subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip, venv"], check=False).returncode:
        missing.append("python3-venv (apt)")
    return missing


# --- the program, runnable by every account ----------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(*cmd: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], check=True, capture_output=True, text=True, **kwargs
    )


def dependencies_venv() -> Path:
    """The venv with the project's dependencies (Debian python), built once per pyproject."""
    pyproject = (REPO / "pyproject.toml").read_bytes()
    venv = CACHE / f"deps-{hashlib.sha256(pyproject).hexdigest()[:16]}"
    done = venv / ".complete"
    CACHE.mkdir(parents=True, exist_ok=True, mode=0o755)
    with _locked(CACHE / "deps.lock"):
        _forget_unused_venvs(keep=venv)
        if done.exists():
            done.touch()  # its mtime says when it was last used
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        _run(SYSTEM_PYTHON, "-m", "venv", venv)
        wanted = tomllib.loads(pyproject.decode())["project"]["dependencies"]
        pip = (venv / "bin" / "python", "-m", "pip", "install", "-q")
        _run(*pip, "--upgrade", "pip", "setuptools>=68", "wheel")
        _run(*pip, *wanted, timeout=3600)
        make_readable(venv)
        done.touch()
    return venv


def _forget_unused_venvs(keep: Path, days: float = 7) -> None:
    """Remove dependency venvs of older pyproject files not used for ``days`` days."""
    for venv in CACHE.glob("deps-*"):
        done = venv / ".complete"
        unused = not done.exists() or time.time() - done.stat().st_mtime > days * 86400
        if venv != keep and unused:
            shutil.rmtree(venv, ignore_errors=True)


def _site_packages(venv: Path) -> Path:
    found = list((venv / "lib").glob("python3*/site-packages"))
    if len(found) != 1:
        msg = f"no single site-packages in {venv}: {found}"
        raise RuntimeError(msg)
    return found[0]


def make_readable(folder: Path) -> None:
    """World-readable (and traversable) for the test accounts."""
    _run("chmod", "-R", "a+rX", folder)


def install_program(base: Path, deps: Path) -> Path:
    """A venv under ``base`` with a non-editable install of a copy of the checkout; its bin."""
    source = base / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")
    for name in ("app", "resources"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    venv = base / "venv"
    _run(SYSTEM_PYTHON, "-m", "venv", "--without-pip", venv)
    site = _site_packages(venv)
    # The cached dependencies, .pth files and all, on this venv's path.
    (site / "medprint-deps.pth").write_text(
        f"import site; site.addsitedir({str(_site_packages(deps))!r})\n"
    )
    python = venv / "bin" / "python"
    pip = (python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation")
    _run(*pip, source, env={**os.environ, "TMPDIR": str(base)}, cwd=base)
    # app/resources.py looks for resources/ beside app/; a wheel does not carry it.
    shutil.copytree(source / "resources", site / "resources")
    make_readable(base)
    return venv / "bin"


# --- accounts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """One person's OS account."""

    name: str
    full_name: str

    @property
    def home(self) -> Path:
        return Path(pwd.getpwnam(self.name).pw_dir)

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid


def _session_file(tag: str) -> Path:
    return CACHE / "sessions" / f"{tag}.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _processes_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid == uid:
                pids.append(int(entry.name))
    return pids


def stop_processes(account: Account) -> None:
    """Stop the account's keyring daemons (by the pids it noted) and anything else it left."""
    with contextlib.suppress(KeyError):
        uid = account.uid
        noted = account.home / ".medprint-test" / "keyring.pids"
        pids = [int(p) for p in noted.read_text().split()] if noted.exists() else []
        for pid in [*pids, *_processes_of(uid)]:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}").stat().st_uid == uid:
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _processes_of(uid) and time.monotonic() < deadline:
            time.sleep(0.05)


def remove_accounts(accounts: list[Account], group: str) -> None:
    for account in accounts:
        stop_processes(account)
        subprocess.run(["userdel", "-r", account.name], check=False, capture_output=True)
    subprocess.run(["groupdel", group], check=False, capture_output=True)


def clean_stale_sessions() -> None:
    """Remove accounts, groups and folders of earlier sessions whose process is gone."""
    for path in (CACHE / "sessions").glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            info = json.loads(path.read_text())
            if _pid_alive(info["pid"]):
                continue
            accounts = [Account(name, "") for name in info["users"]]
            remove_accounts(accounts, info["group"])
            shutil.rmtree(info["base"], ignore_errors=True)
            path.unlink()


@dataclass
class Workstation:
    """The OS accounts of one test session, their shared group, and the program they run."""

    tag: str
    base: Path
    bin: Path
    group: str
    accounts: dict[str, Account] = field(default_factory=dict)

    def add_account(self, role_word: str, full_name: str) -> Account:
        """Make the account ``mp-ROLE_WORD-TAG`` (a member of the group) with a full name."""
        account = Account(f"mp-{role_word}-{self.tag}", full_name)
        self.accounts[role_word] = account
        self._note_session()
        _run("useradd", "--create-home", "--shell", "/bin/sh", "--comment", full_name,
             "--groups", self.group, account.name)  # fmt: skip
        account.home.chmod(0o700)
        return account

    def _note_session(self) -> None:
        path = _session_file(self.tag)
        path.parent.mkdir(parents=True, exist_ok=True)
        users = [a.name for a in self.accounts.values()]
        info = {"pid": os.getpid(), "users": users, "group": self.group, "base": str(self.base)}
        path.write_text(json.dumps(info))

    def shared_folder(self, name: str) -> Path:
        """A folder all accounts of the group may write: group-owned, setgid, mode 2770."""
        folder = self.base / name
        folder.mkdir()
        shutil.chown(folder, group=self.group)
        folder.chmod(0o2770)
        return folder

    def private_folder(self, account: Account, name: str) -> Path:
        """A folder only ``account`` may use (its temp folder, an output folder)."""
        folder = self.base / f"{name}-{account.name}"
        folder.mkdir()
        shutil.chown(folder, user=account.name, group=account.name)
        folder.chmod(0o700)
        return folder

    def readable_copy(self, files: list[Path], name: str) -> Path:
        """Copies of ``files`` in a folder every account can read."""
        target = self.base / name
        target.mkdir()
        for path in files:
            shutil.copy2(path, target / path.name)
        make_readable(target)
        return target

    def start_as(
        self,
        account: Account,
        *args: str,
        data: Path,
        env: dict[str, str] | None = None,
        program: tuple[str, ...] = ("medprint",),
    ) -> subprocess.Popen:
        """Start ``medprint ARGS`` (or ``program ARGS``) as ``account`` on the data folder
        ``data``, in the account's own keystore session."""
        inner = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(account.home),
            "LOGNAME": account.name,
            "USER": account.name,
            "LANG": "C.UTF-8",
            "MEDPRINT_DATA_DIR": str(data),
            "MEDPRINT_TEST_KEYRING_PASSWORD": KEYRING_PASSWORD,
            **(env or {}),
        }
        cmd = ["runuser", "-u", account.name, "--", "env", "-i"]
        cmd += [f"{k}={v}" for k, v in inner.items()]
        cmd += ["dbus-run-session", "--", "sh", "-c", KEYRING_SESSION, "sh", *program, *args]
        return subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.base,
            start_new_session=True,
        )

    def teardown(self) -> None:
        remove_accounts(list(self.accounts.values()), self.group)
        shutil.rmtree(self.base, ignore_errors=True)
        _session_file(self.tag).unlink(missing_ok=True)


def finish(proc: subprocess.Popen, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    """Wait for a command started by :meth:`Workstation.start_as`; kill its group on timeout."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n(harness: killed after {timeout} s)"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def new_workstation() -> Workstation:
    """Program installed, group made; accounts are added with :meth:`Workstation.add_account`."""
    clean_stale_sessions()
    deps = dependencies_venv()
    tag = f"{os.getpid():x}"[-5:]
    base = Path(tempfile.mkdtemp(prefix=f"medprint-multiuser-{tag}-", dir="/tmp"))
    base.chmod(0o755)
    group = f"medprint-{tag}"
    station = Workstation(tag, base, Path(), group)
    station._note_session()
    _run("groupadd", group)
    station.bin = install_program(base, deps)
    return station
