"""What the volunteer's machine is doing, read cheaply once a second: on battery or not, which
programs run, and how much CPU everything but this client and its children uses.

Linux reads /proc and /sys (the power-supply folder can be pointed elsewhere: POWER_SUPPLY_DIR);
macOS asks `pmset` and `ps`. Where nothing can be read, the answer is "no reason to pause".
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Optional

PROC = Path("/proc")
LINUX = sys.platform.startswith("linux")


def on_battery(power_supply: Path) -> bool:
    """Running from a battery: one is discharging and no mains supply is online."""
    if LINUX or power_supply != Path("/sys/class/power_supply"):
        mains_online, discharging = False, False
        for supply in power_supply.glob("*") if power_supply.is_dir() else ():
            kind = _read(supply / "type")
            if kind == "Mains" and _read(supply / "online") == "1":
                mains_online = True
            elif kind == "Battery" and _read(supply / "status") == "Discharging":
                discharging = True
        return discharging and not mains_online
    if sys.platform == "darwin":
        return "Battery Power" in _run(["pmset", "-g", "batt"])
    return False


def running_programs() -> set[str]:
    """The names of the programs running now (lower case; Linux: the executable's and its comm)."""
    if LINUX:
        names = set()
        for stat in PROC.glob("[0-9]*/comm"):
            names.add(_read(stat).lower())
            try:
                argv0 = (stat.parent / "cmdline").read_bytes().split(b"\0", 1)[0]
            except OSError:
                continue
            names.add(os.path.basename(argv0.decode(errors="replace")).lower())
        return names - {""}
    return {os.path.basename(line.strip()).lower() for line in _run(["ps", "-Ao", "comm="]).splitlines()} - {""}


class CpuLoad:
    """The share of all CPUs (percent) that processes other than this one and its children used,
    averaged over the last `window` seconds of samples (one per call to `sample`)."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.clock = clock
        self.samples: collections.deque[tuple[float, int, int, int]] = collections.deque()

    def sample(self) -> Optional[float]:
        counts = _ticks()
        if counts is None:
            return None
        now = self.clock()
        self.samples.append((now, *counts))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()
        if len(self.samples) < 2:
            return None
        (_, busy0, all0, own0), (_, busy1, all1, own1) = self.samples[0], self.samples[-1]
        if all1 <= all0:
            return None
        return max(0.0, 100.0 * ((busy1 - busy0) - (own1 - own0)) / (all1 - all0))


def _ticks() -> Optional[tuple[int, int, int]]:
    """(busy ticks of all CPUs, all their ticks, ticks of this process with its reaped and live children)."""
    if not LINUX:
        return None
    try:
        cpu = [int(x) for x in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)  # idle, iowait
    total = sum(cpu[:8])  # guest time is counted in user already
    me = os.getpid()
    own = 0
    for fields in _proc_stats():
        pid, ppid = int(fields[0]), int(fields[3])
        if pid == me:
            own += sum(int(x) for x in fields[13:17])  # utime, stime, cutime, cstime (reaped children)
        elif ppid == me:
            own += int(fields[13]) + int(fields[14])
    return total - idle, total, own


def _proc_stats() -> Iterable[list[str]]:
    """Each process's /proc/<pid>/stat fields, the command name (which may hold spaces) taken out."""
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        head, _, rest = text.rpartition(")")
        yield [head.split(" (", 1)[0], "comm", *rest.split()]


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
