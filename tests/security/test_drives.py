"""Removable drive listing (psutil partitions + a fake /sys tree) and folders as targets."""

from __future__ import annotations

import subprocess
from collections import namedtuple
from pathlib import Path

import pytest

from app.errors import PackageError
from app.security import drives

Part = namedtuple("Part", "device mountpoint fstype opts")


def _disk(sysfs: Path, bus_path: str, disk: str, removable: str, partitions=()) -> None:
    """A block device under /sys/devices/<bus_path>, linked from /sys/class/block."""
    base = sysfs / "devices" / bus_path / "block" / disk
    base.mkdir(parents=True)
    (base / "removable").write_text(removable + "\n")
    links = sysfs / "class" / "block"
    links.mkdir(parents=True, exist_ok=True)
    (links / disk).symlink_to(base)
    for part in partitions:
        (base / part).mkdir()
        (base / part / "partition").write_text("1\n")
        (links / part).symlink_to(base / part)


@pytest.fixture
def fake_sys(tmp_path: Path) -> Path:
    sysfs = tmp_path / "sys"
    _disk(
        sysfs,
        "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0",
        "sdb",
        "0",
        ["sdb1"],
    )
    _disk(sysfs, "platform/card-reader/host7", "sdc", "1", ["sdc1"])
    _disk(sysfs, "pci0000:00/0000:00:1f.2/ata1/host0", "sda", "0", ["sda1", "sda2"])
    _disk(sysfs, "platform/mmc_host/mmc0/mmc0:aaaa", "mmcblk0", "0", ["mmcblk0p1"])
    return sysfs


@pytest.fixture
def mounts(tmp_path: Path) -> dict[str, Path]:
    found = {}
    for name in ("usb-ssd", "card", "system", "data", "sd", "cdrom"):
        found[name] = tmp_path / "media" / name
        found[name].mkdir(parents=True)
    return found


def test_linux_removable_detection(fake_sys, mounts):
    parts = [
        Part("/dev/sdb1", str(mounts["usb-ssd"]), "exfat", "rw"),  # USB bus, removable=0
        Part("/dev/sdc1", str(mounts["card"]), "vfat", "rw"),  # removable flag
        Part("/dev/sda1", str(mounts["system"]), "ext4", "rw"),  # internal disk
        Part("/dev/sda2", str(mounts["data"]), "ext4", "rw"),
        Part("/dev/mmcblk0p1", str(mounts["sd"]), "vfat", "rw"),  # SD card
        Part("/dev/sr0", str(mounts["cdrom"]), "iso9660", "ro"),  # read-only media: skipped
    ]
    found = drives.list_drives(partitions=parts, sysfs=fake_sys, platform="linux")
    assert [d.path.name for d in found] == ["card", "sd", "usb-ssd"]
    for drive in found:
        assert drive.removable and drive.writable
        assert drive.total > 0 and 0 <= drive.free <= drive.total
        assert drive.label == drive.path.name
        assert "GiB free of" in drive.display
        assert drive.has_room_for(0) and not drive.has_room_for(drive.free + 1)
    everything = drives.list_drives(
        removable_only=False, partitions=parts, sysfs=fake_sys, platform="linux"
    )
    assert {d.path.name for d in everything} == {"usb-ssd", "card", "system", "data", "sd"}
    assert not next(d for d in everything if d.path.name == "system").removable


def test_unknown_devices_and_vanished_mounts_are_skipped(fake_sys, tmp_path):
    parts = [
        Part("/dev/sdz1", str(tmp_path), "ext4", "rw"),  # not in /sys: not removable
        Part("/dev/sdb1", str(tmp_path / "gone"), "vfat", "rw"),  # unmounted meanwhile
    ]
    assert drives.list_drives(partitions=parts, sysfs=fake_sys, platform="linux") == []
    assert not drives.is_removable_device("tmpfs", fake_sys)


def test_windows_and_macos_rules(mounts):
    win = [
        Part("E:\\", str(mounts["card"]), "FAT32", "rw,removable"),
        Part("C:\\", str(mounts["system"]), "NTFS", "rw,fixed"),
    ]
    assert [d.path.name for d in drives.list_drives(partitions=win, platform="win32")] == ["card"]
    mac = [Part("/dev/disk3s1", str(mounts["sd"]), "msdos", "rw")]
    assert drives.list_drives(partitions=mac, platform="darwin") == []  # not under /Volumes


def test_the_real_machine_listing_is_sane():
    for drive in drives.list_drives(removable_only=False):
        assert drive.path.is_dir()
        assert drive.total >= drive.free >= 0
        assert isinstance(drive.removable, bool)


def test_any_folder_is_a_target(tmp_path):
    target = drives.target_for(tmp_path)
    assert target.path == tmp_path.resolve()
    assert target.free > 0 and target.writable
    assert target.free == pytest.approx(drives.free_bytes(tmp_path), rel=0.05)
    with pytest.raises(PackageError, match="not a folder"):
        drives.target_for(tmp_path / "missing")


def _drive(mounts, removable=True, device="/dev/sdb1") -> drives.Drive:
    return drives.Drive(mounts["usb-ssd"], "STICK", device, "exfat", 10, 5, removable, True)


def test_eject_unmounts_then_powers_off_the_whole_disk(fake_sys, mounts):
    ran = []

    def run(command, **kw):
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    message = drives.eject(_drive(mounts), run=run, sysfs=fake_sys, platform="linux")
    assert message == "STICK can be removed safely"
    assert ran == [
        ["udisksctl", "unmount", "--no-user-interaction", "-b", "/dev/sdb1"],
        ["udisksctl", "power-off", "--no-user-interaction", "-b", "/dev/sdb"],
    ]
    ran.clear()
    drives.eject(_drive(mounts), run=run, platform="darwin")
    assert ran == [["diskutil", "eject", str(mounts["usb-ssd"])]]


def test_eject_refusals_are_clear(fake_sys, mounts):
    def busy(command, **kw):
        return subprocess.CompletedProcess(command, 1, "", "target is busy")

    with pytest.raises(PackageError, match="close any window"):
        drives.eject(_drive(mounts), run=busy, sysfs=fake_sys, platform="linux")
    with pytest.raises(PackageError, match="only a removable drive"):
        drives.eject(_drive(mounts, removable=False), run=busy, platform="linux")
    with pytest.raises(PackageError, match="safely remove"):
        drives.eject(_drive(mounts), run=busy, platform="win32")
