"""Child processes (ffmpeg, whisper-cli) must not outlive a client that was killed."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
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


def yield_to_whisper() -> None:
    """Lower the calling thread's priority (Linux nice is per thread, and its children inherit it):
    the prefetch thread's downloads and ffmpeg then take only the CPU whisper-cli leaves idle."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            pass
