"""Removable drives a package can be written to, and the free space of any target folder.

Drives come from ``psutil.disk_partitions``; whether one is removable is decided per platform:

- Linux: the block device's disk has ``/sys/block/<disk>/removable`` = 1, or sits on a USB, MMC
  (SD card) or FireWire bus (USB SSDs often report ``removable`` = 0);
- Windows: psutil reports ``removable`` among the mount options;
- macOS: volumes mounted under ``/Volumes`` other than the system one.

Any folder works as a target too (:func:`target_for`), for drives the OS does not flag.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from app.errors import PackageError

SYSFS = Path("/sys")
_REMOVABLE_BUSES = ("/usb", "/mmc_host/", "/firewire")
_SKIP_FSTYPES = frozenset({"squashfs", "iso9660", "udf", "tmpfs", "devtmpfs", "overlay"})


@dataclass(frozen=True)
class Drive:
    """A place to write a package: a mounted volume (or a folder on one) and its space."""

    path: Path
    label: str
    device: str
    fstype: str
    total: int
    free: int
    removable: bool
    writable: bool

    @property
    def display(self) -> str:
        """``USBSTICK (/media/u/USBSTICK) — 12.3 GiB free of 14.9 GiB``."""
        return f"{self.label} ({self.path}) — {_gib(self.free)} free of {_gib(self.total)}"

    def has_room_for(self, size: int) -> bool:
        return self.free >= size


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def list_drives(
    *,
    removable_only: bool = True,
    partitions: list | None = None,
    sysfs: Path = SYSFS,
    platform: str = sys.platform,
) -> list[Drive]:
    """Mounted volumes, removable ones only by default, sorted by mount point.

    ``partitions``, ``sysfs`` and ``platform`` exist for tests (a fake ``/sys`` tree).
    """
    parts = psutil.disk_partitions(all=False) if partitions is None else partitions
    labels = _labels(platform)
    drives = []
    seen: set[str] = set()
    for part in parts:
        if part.fstype in _SKIP_FSTYPES or part.mountpoint in seen:
            continue
        removable = _is_removable(part, sysfs, platform)
        if removable_only and not removable:
            continue
        try:
            usage = shutil.disk_usage(part.mountpoint)
        except OSError:
            continue  # unmounted meanwhile, or unreadable: not a usable target
        seen.add(part.mountpoint)
        mount = Path(part.mountpoint)
        label = labels.get(os.path.realpath(part.device)) or mount.name or part.device
        drives.append(
            Drive(
                path=mount,
                label=label,
                device=part.device,
                fstype=part.fstype,
                total=usage.total,
                free=usage.free,
                removable=removable,
                writable=os.access(mount, os.W_OK),
            )
        )
    return sorted(drives, key=lambda d: str(d.path))


def _is_removable(part: object, sysfs: Path, platform: str) -> bool:
    device = str(getattr(part, "device", ""))
    opts = str(getattr(part, "opts", ""))
    mount = str(getattr(part, "mountpoint", ""))
    if platform.startswith("win"):
        return "removable" in opts.split(",")
    if platform == "darwin":
        return mount.startswith("/Volumes/") and mount != "/Volumes/Macintosh HD"
    return is_removable_device(device, sysfs)


def is_removable_device(device: str, sysfs: Path = SYSFS) -> bool:
    """Linux: whether the block device (``/dev/sdb1``) sits on a removable disk or bus."""
    name = Path(os.path.realpath(device)).name if device.startswith("/dev/") else ""
    if not name:
        return False
    block = sysfs / "class" / "block" / name
    if not block.exists():
        return False
    disk = block.resolve()
    if (disk / "partition").exists():
        disk = disk.parent
    flag = disk / "removable"
    try:
        if flag.read_text().strip() == "1":
            return True
    except OSError:
        pass
    bus_path = str(disk.resolve())
    return any(bus in bus_path for bus in _REMOVABLE_BUSES)


def _labels(platform: str) -> dict[str, str]:
    """Device path -> volume label (Linux, from ``/dev/disk/by-label``)."""
    folder = Path("/dev/disk/by-label")
    if not platform.startswith("linux") or not folder.is_dir():
        return {}
    found = {}
    for link in folder.iterdir():
        label = link.name.encode("ascii", "replace").decode("unicode_escape", "replace")
        found[os.path.realpath(link)] = label
    return found


def target_for(path: str | os.PathLike[str], *, sysfs: Path = SYSFS) -> Drive:
    """Any existing folder as a package target, with its volume's free space."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        msg = "the target is not a folder; choose a mounted drive or an existing folder"
        raise PackageError(msg)
    folder = folder.resolve()
    usage = shutil.disk_usage(folder)
    part = _partition_of(folder)
    removable = part is not None and _is_removable(part, sysfs, sys.platform)
    return Drive(
        path=folder,
        label=folder.name or str(folder),
        device=part.device if part is not None else "",
        fstype=part.fstype if part is not None else "",
        total=usage.total,
        free=usage.free,
        removable=removable,
        writable=os.access(folder, os.W_OK),
    )


def _partition_of(folder: Path) -> object | None:
    """The mounted partition holding ``folder`` (longest matching mount point)."""
    best = None
    for part in psutil.disk_partitions(all=True):
        mount = Path(part.mountpoint)
        if (folder == mount or mount in folder.parents) and (
            best is None or len(str(mount)) > len(str(best.mountpoint))
        ):
            best = part
    return best


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Free bytes on the volume holding ``path``."""
    return shutil.disk_usage(path).free


def eject(
    drive: Drive,
    *,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    sysfs: Path = SYSFS,
    platform: str = sys.platform,
) -> str:
    """Unmount a removable drive (and power it off where the OS allows); returns what was done.

    Linux uses ``udisksctl`` (no root needed), macOS ``diskutil eject``. Elsewhere, or when the
    tool is missing, a :class:`PackageError` says to use the desktop's eject button: everything
    MedPrint wrote is already fsynced, so that is safe.
    """
    if not drive.removable or not drive.device:
        msg = "only a removable drive can be ejected; a folder target needs no ejecting"
        raise PackageError(msg)
    if platform.startswith("linux"):
        commands = [["udisksctl", "unmount", "--no-user-interaction", "-b", drive.device]]
        disk = _disk_device(drive.device, sysfs)
        if disk:
            commands.append(["udisksctl", "power-off", "--no-user-interaction", "-b", disk])
    elif platform == "darwin":
        commands = [["diskutil", "eject", str(drive.path)]]
    else:
        msg = "use the system's 'safely remove' button; the package is already fully written"
        raise PackageError(msg)
    if shutil.which(commands[0][0]) is None and run is subprocess.run:
        msg = f"{commands[0][0]} is not installed; eject the drive with the desktop's eject "
        msg += "button (the package is already fully written)"
        raise PackageError(msg)
    for i, command in enumerate(commands):
        done = run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0 and i == 0:
            msg = f"the drive could not be ejected ({command[0]} {command[1]} failed); close "
            msg += "any window showing it and try again"
            raise PackageError(msg)
    return f"{drive.label} can be removed safely"


def _disk_device(device: str, sysfs: Path) -> str | None:
    """``/dev/sdb1`` -> ``/dev/sdb`` (the whole disk, for power-off), via /sys."""
    block = sysfs / "class" / "block" / Path(device).name
    if not block.exists():
        return None
    path = block.resolve()
    return f"/dev/{path.parent.name}" if (path / "partition").exists() else f"/dev/{path.name}"
