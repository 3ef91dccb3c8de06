"""The MedPrint segmentation file (``segmentation.seg`` in a case): compact and self-checking.

Layout: ``MPSEG1\\n``, a little-endian u32 header length, a UTF-8 JSON header (grid, segments,
label dtype, compressed length, CRC-32 of the raw labels), then the label array in C order
compressed with zlib, written and read in chunks so no second full copy is made. The history is
not saved. Plain stream functions: where the file lives (a case in the vault) is the workflow's
business (:mod:`app.workflow.segment`).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import BinaryIO

import numpy as np

from app.errors import SegmentationError
from app.tools.segmentation.grid import Grid
from app.tools.segmentation.model import Segment, Segmentation

MAGIC = b"MPSEG1\n"
_CHUNK = 4 << 20


def write_segmentation(seg: Segmentation, stream: BinaryIO, level: int = 6) -> None:
    labels = np.ascontiguousarray(seg.labels)
    raw = memoryview(labels.reshape(-1).view(np.uint8))
    compressor = zlib.compressobj(level)
    parts: list[bytes] = []
    crc = 0
    for start in range(0, len(raw), _CHUNK):
        chunk = raw[start : start + _CHUNK]
        crc = zlib.crc32(chunk, crc)
        parts.append(compressor.compress(chunk))
    parts.append(compressor.flush())
    header = {
        "version": 1,
        "grid": seg.grid.to_dict(),
        "dtype": str(labels.dtype),
        "segments": [s.to_dict() for s in seg.segments],
        "next_id": seg._next_id,
        "overwrite_other_segments": seg.overwrite_other_segments,
        "compressed_bytes": sum(len(p) for p in parts),
        "crc32": crc,
    }
    blob = json.dumps(header).encode("utf-8")
    stream.write(MAGIC + struct.pack("<I", len(blob)) + blob)
    for part in parts:
        stream.write(part)


def read_segmentation(stream: BinaryIO) -> Segmentation:
    if stream.read(len(MAGIC)) != MAGIC:
        msg = "not a MedPrint segmentation file; import .seg.nrrd, NIfTI or DICOM SEG instead"
        raise SegmentationError(msg)
    try:
        (length,) = struct.unpack("<I", _exact(stream, 4))
        header = json.loads(_exact(stream, length))
        grid = Grid.from_dict(header["grid"])
        dtype = np.dtype(header["dtype"])
        segments = [Segment.from_dict(d) for d in header["segments"]]
        remaining = int(header["compressed_bytes"])
    except (KeyError, ValueError, TypeError) as exc:
        msg = (
            f"segmentation file header is damaged ({type(exc).__name__}); restore it from a backup"
        )
        raise SegmentationError(msg) from exc
    labels = np.empty(grid.shape, dtype=dtype)
    out = memoryview(labels.reshape(-1).view(np.uint8))
    pos = 0
    decompressor = zlib.decompressobj()
    try:
        while remaining > 0:
            chunk = _exact(stream, min(_CHUNK, remaining))
            remaining -= len(chunk)
            data = decompressor.decompress(chunk)
            pos = _put(out, pos, data)
        pos = _put(out, pos, decompressor.flush())
    except zlib.error as exc:
        msg = "segmentation labels are damaged; restore the file from a backup"
        raise SegmentationError(msg) from exc
    crc = zlib.crc32(memoryview(labels.reshape(-1).view(np.uint8)))
    if pos != len(out) or crc != int(header["crc32"]):
        msg = "segmentation labels are truncated or damaged; restore the file from a backup"
        raise SegmentationError(msg)
    seg = Segmentation(grid)
    seg._load(labels, segments, int(header.get("next_id", len(segments) + 1)))
    seg.overwrite_other_segments = bool(header.get("overwrite_other_segments", False))
    return seg


def _put(out: memoryview, pos: int, data: bytes) -> int:
    end = pos + len(data)
    if end > len(out):
        msg = "segmentation labels are longer than the grid; restore the file from a backup"
        raise SegmentationError(msg)
    out[pos:end] = data
    return end


def _exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        msg = "segmentation file is truncated; restore it from a backup"
        raise SegmentationError(msg)
    return data


def to_bytes(seg: Segmentation) -> bytes:
    """The segmentation file as bytes (for small segmentations and tests)."""
    buffer = io.BytesIO()
    write_segmentation(seg, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> Segmentation:
    """Inverse of :func:`to_bytes`."""
    return read_segmentation(io.BytesIO(data))
