"""The machine stays its owner's: whisper-cli runs only when the volunteer's rules allow, as BOINC's
defaults have it. Paused (SIGSTOP) on battery unless RUN_ON_BATTERY, while other programs use more
than SUSPEND_CPU_LOAD percent of the CPUs (over 10 s), and while a program in SUSPEND_WHILE runs;
held to MAX_CPU_PERCENT by a 1-second stop/continue duty cycle. While paused, the heartbeat says so
and the lease is kept; a pause longer than MAX_PAUSE_SECONDS hands the task back to the server.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from stt_common.files import write_atomic

from . import sensors

TICK = 0.1  # the duty cycle's resolution (seconds)
SENSE_EVERY = 1.0


@dataclass(frozen=True)
class CourtesyRules:
    max_cpu_percent: int = 100
    suspend_cpu_load: int = 25  # 0: never for load
    run_on_battery: bool = False
    suspend_while: frozenset[str] = frozenset()  # program names, lower case
    max_pause_seconds: float = 900.0
    power_supply: Path = Path("/sys/class/power_supply")


@dataclass
class Courtesy:
    """Decides whether whisper-cli may run now, and makes it so for the process it watches."""

    rules: CourtesyRules
    status_file: Optional[Path] = None  # what `stt-client status` reads
    say: Callable[[str], None] = lambda text: None  # the daemon's display
    clock: Callable[[], float] = time.monotonic
    load: sensors.CpuLoad = field(default_factory=sensors.CpuLoad)
    paused: Optional[str] = None  # why, while paused
    paused_since: Optional[float] = None

    def reason(self) -> Optional[str]:
        """Why whisper-cli may not run now (None: it may). Samples the CPU load: call once a second."""
        r = self.rules
        if not r.run_on_battery and sensors.on_battery(r.power_supply):
            return "on battery (RUN_ON_BATTERY=false)"
        if r.suspend_while and (found := sorted(r.suspend_while & sensors.running_programs())):
            return f"{found[0]} is running (SUSPEND_WHILE)"
        load = self.load.sample()
        if r.suspend_cpu_load and load is not None and load > r.suspend_cpu_load:
            return f"other programs use {load:.0f} % of the CPUs (SUSPEND_CPU_LOAD={r.suspend_cpu_load})"
        return None

    def between_tasks(self) -> Optional[str]:
        """Why no new task may be taken now (None: it may); a change is said, and noted for
        `stt-client status`. Call at most once a second (it samples the CPU load)."""
        why = self.reason()
        if why and why != self.paused:
            self.say(f"paused: {why}")
            self.note("paused", why)
        self.paused = why
        return why

    def note(self, state: str, why: Optional[str] = None, task: str = "") -> None:
        """Record the daemon's state for `stt-client status` (best effort)."""
        if self.status_file is None:
            return
        entry = {"state": state, "why": why, "task": task, "pid": os.getpid(), "at": time.time()}
        try:
            write_atomic(self.status_file, json.dumps(entry).encode())
        except OSError:
            pass

    def watch(self, pid: int, task: str, on_give_up: Callable[[str], None]) -> Callable[[], None]:
        """Govern process `pid` (whisper-cli) until the returned function is called; `on_give_up(why)`
        when it has been paused longer than max_pause_seconds."""
        stop = threading.Event()
        thread = threading.Thread(target=self._govern, args=(pid, task, stop, on_give_up), name="courtesy", daemon=True)
        thread.start()

        def done() -> None:
            stop.set()
            thread.join(timeout=5)
            self.paused = self.paused_since = None

        return done

    def _govern(self, pid: int, task: str, stop: threading.Event, on_give_up: Callable[[str], None]) -> None:
        duty = min(max(self.rules.max_cpu_percent, 1), 100) / 100
        sensed_at, running = -SENSE_EVERY, True
        self.note("running", None, task)
        try:
            while not stop.is_set():
                now = self.clock()
                if now - sensed_at >= SENSE_EVERY:
                    sensed_at = now
                    self._sense(now, task, on_give_up)
                want = self.paused is None and (duty >= 1.0 or now % 1.0 < duty)  # the second's running share
                if want != running and _signal(pid, signal.SIGCONT if want else signal.SIGSTOP):
                    running = want
                stop.wait(TICK if duty < 1.0 or self.paused else SENSE_EVERY / 2)
        finally:
            _signal(pid, signal.SIGCONT)

    def _sense(self, now: float, task: str, on_give_up: Callable[[str], None]) -> None:
        why = self.reason()
        if why != self.paused:
            self.paused, self.paused_since = why, (now if why else None)
            self.note("paused" if why else "running", why, task)
        if self.paused and self.paused_since is not None and now - self.paused_since > self.rules.max_pause_seconds:
            why, self.paused, self.paused_since = self.paused, None, None  # handed back: let it run to its end
            on_give_up(why)


def describe_status(path: Path) -> str:
    """One line for `stt-client status` from the state file a running daemon keeps."""
    try:
        entry = json.loads(path.read_text())
        os.kill(int(entry["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return f"not running (no live daemon wrote {path})"
    task = f" on {entry['task']}" if entry.get("task") else ""
    why = f": {entry['why']}" if entry.get("why") else ""
    age = max(0.0, time.time() - float(entry.get("at", 0)))
    return f"{entry['state']}{task}{why} (since {age:.0f} s ago, pid {entry['pid']})"


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
