"""A pydicom pixel-data decoder plugin for 12-bit JPEG Extended, backed by imagecodecs.

pydicom's own plugins cannot read every JPEG Extended (process 2 & 4) stream: GDCM refuses
12-bit samples and libjpeg (pylibjpeg) rejects streams with a misplaced marker that
libjpeg-turbo, through imagecodecs, decodes. :func:`register` adds this module as one more
plugin for that transfer syntax, after pydicom's own, so it is only used when they fail;
nothing else changes how pixel data is decoded.

The module follows pydicom's decoder-plugin contract (``DECODER_DEPENDENCIES``,
``is_available(uid)``, a ``(src, runner) -> bytes`` decode function).
"""

from __future__ import annotations

import threading

PLUGIN_LABEL = "medprint-imagecodecs"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
DECODER_DEPENDENCIES = {JPEG_EXTENDED: ("imagecodecs>=2024.1",)}

_lock = threading.Lock()
_registered = False


def is_available(uid: str) -> bool:
    """True when imagecodecs with its libjpeg-turbo (8/12-bit) codec is installed."""
    if uid != JPEG_EXTENDED:
        return False
    try:
        import imagecodecs  # noqa: PLC0415 (optional, on first use)
    except ImportError:
        return False
    return bool(getattr(imagecodecs, "JPEG8", None) and imagecodecs.JPEG8.available)


def decode_frame(src: bytes, runner) -> bytes:
    """One JPEG Extended frame to native-order sample bytes (uint8 or uint16)."""
    import imagecodecs  # noqa: PLC0415 (optional, on first use)

    frame = imagecodecs.jpeg8_decode(src)
    if frame.ndim == 3 and frame.shape[2] > 1:
        runner.set_option("planar_configuration", 0)
    return frame.tobytes()


def register() -> None:
    """Add the plugin to pydicom's JPEG Extended decoder once (later calls do nothing)."""
    global _registered  # noqa: PLW0603 (one-time registration with pydicom)
    if _registered:
        return
    with _lock:
        if _registered:
            return
        from pydicom.pixels import get_decoder  # noqa: PLC0415 (pydicom on first use)

        decoder = get_decoder(JPEG_EXTENDED)
        if PLUGIN_LABEL not in decoder.available_plugins and is_available(JPEG_EXTENDED):
            decoder.add_plugin(PLUGIN_LABEL, (__name__, "decode_frame"))
        _registered = True
