"""Guards against files that would exhaust memory: deflate bombs, absurd declared sizes."""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO


class Reject(Exception):
    pass


def check_inflated_size(handle: BinaryIO) -> None:
    """Refuse a deflate bomb: inflate in bounded chunks, counting, before pydicom inflates it all."""
    import psutil  # noqa: PLC0415 (psutil on first use)

    head = handle.read(144)
    if head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
        return  # no standard meta group: let pydicom decide
    (meta_length,) = struct.unpack("<L", head[140:144])
    handle.seek(144 + meta_length)
    limit = min(psutil.virtual_memory().available // 4, 2 << 30)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while chunk := handle.read(1 << 16):
        data = inflater.decompress(chunk, 1 << 20)
        total += len(data)
        while inflater.unconsumed_tail and total <= limit:
            data = inflater.decompress(inflater.unconsumed_tail, 1 << 20)
            total += len(data)
        if total > limit:
            msg = f"deflated data expands beyond {size_text(limit)}"
            raise Reject(msg)


def check_declared_size(rows: int, columns: int, frames: int, bits: int, stored: int) -> None:
    """Refuse a compressed image whose declared size is absurd for the bytes that hold it.

    Lossless medical images compress roughly 2–4:1 and even lossy or blank frames rarely go
    past a few hundred to one; a 65535×65535 frame in a few kilobytes is an attack or damage,
    and decoding it would allocate gigabytes first.
    """
    import psutil  # noqa: PLC0415 (psutil on first use)

    declared = (rows * columns * bits + 7) // 8 * frames
    budget = psutil.virtual_memory().available // 2
    if declared > budget:
        msg = (
            f"declares {rows}×{columns}×{frames} frames ({size_text(declared)}), more than half of "
            f"the free memory ({size_text(budget)})"
        )
        raise Reject(msg)
    if declared > (64 << 20) and declared > 2000 * max(stored, 1):
        msg = (
            f"declares {rows}×{columns}×{frames} frames ({size_text(declared)}) but holds only "
            f"{size_text(stored)} of compressed pixel data"
        )
        raise Reject(msg)


def size_text(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
