"""Who is acting: the OS account of this process, never an environment variable.

``getpass.getuser()`` reads ``$LOGNAME``/``$USER`` first, so anyone could claim to be anyone;
the account behind the process's real user ID is what the OS vouches for.
"""

from __future__ import annotations

import os
import sys


def os_user() -> str:
    """The login name of the account running this process."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import ctypes  # noqa: PLC0415

        size = ctypes.c_ulong(256)
        buffer = ctypes.create_unicode_buffer(size.value)
        ctypes.windll.advapi32.GetUserNameW(buffer, ctypes.byref(size))
        return buffer.value
    import pwd  # noqa: PLC0415

    return pwd.getpwuid(os.getuid()).pw_name
