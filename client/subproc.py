"""Child processes (ffmpeg, whisper-cli) must not outlive a client that was killed."""

from __future__ import annotations

import ctypes
import signal
import sys
from collections.abc import Callable
from typing import Optional

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


# Linux only; elsewhere systemd/launchd process groups or the user clean up.
die_with_parent: Optional[Callable[[], None]] = _die_with_parent if sys.platform.startswith("linux") else None
