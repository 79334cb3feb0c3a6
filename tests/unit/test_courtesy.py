"""The machine stays its owner's: the rules that pause whisper-cli, read from stand-ins for a
battery and for the programs that run (no battery here)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from client import sensors
from client.courtesy import Courtesy, CourtesyRules, describe_status
from client.settings import ClientSettings, SettingsError
from tests.helpers import process_state


def power_supply(root: Path, *, mains_online: bool, discharging: bool) -> Path:
    """A stand-in for /sys/class/power_supply: a mains adapter and a battery."""
    for name, files in (
        ("AC", {"type": "Mains", "online": "1" if mains_online else "0"}),
        ("BAT0", {"type": "Battery", "status": "Discharging" if discharging else "Charging", "capacity": "80"}),
    ):
        (root / name).mkdir(parents=True, exist_ok=True)
        for f, text in files.items():
            (root / name / f).write_text(text + "\n")
    return root


def test_on_battery_from_the_power_supply_folder(tmp_path):
    assert sensors.on_battery(power_supply(tmp_path / "a", mains_online=False, discharging=True))
    assert not sensors.on_battery(power_supply(tmp_path / "b", mains_online=True, discharging=False))
    assert not sensors.on_battery(tmp_path / "no-such-folder")  # a desktop: no supplies at all


def test_battery_pauses_unless_allowed(tmp_path):
    on_battery = power_supply(tmp_path / "ps", mains_online=False, discharging=True)
    rules = CourtesyRules(suspend_cpu_load=0, power_supply=on_battery)
    assert Courtesy(rules).reason() == "on battery (RUN_ON_BATTERY=false)"
    assert Courtesy(CourtesyRules(suspend_cpu_load=0, run_on_battery=True, power_supply=on_battery)).reason() is None
    (on_battery / "AC" / "online").write_text("1\n")  # plugged in
    assert Courtesy(rules).reason() is None


def test_a_named_program_pauses_while_it_runs(tmp_path):
    standin = tmp_path / "steam-standin"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", standin)
    rules = CourtesyRules(suspend_cpu_load=0, suspend_while=frozenset({"steam-standin", "obs"}),
                          power_supply=tmp_path / "none")  # fmt: skip
    assert Courtesy(rules).reason() is None
    proc = subprocess.Popen([str(standin), "30"])
    try:
        time.sleep(0.2)
        assert Courtesy(rules).reason() == "steam-standin is running (SUSPEND_WHILE)"
    finally:
        proc.kill()
        proc.wait()
    assert Courtesy(rules).reason() is None


def test_the_governor_stops_and_continues_a_process(tmp_path):
    """Paused: the process is stopped (state T) and stays so; resumed: it runs again; on the way out
    it is always continued. The daemon's state file says which, and why."""
    power = power_supply(tmp_path / "ps", mains_online=False, discharging=True)
    courtesy = Courtesy(CourtesyRules(suspend_cpu_load=0, power_supply=power), tmp_path / "status.json")
    proc = subprocess.Popen(["sleep", "60"])
    try:
        done = courtesy.watch(proc.pid, "talk.mp3", on_give_up=lambda why: None)
        deadline = time.monotonic() + 5
        while process_state(proc.pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_state(proc.pid) == "T" and courtesy.paused == "on battery (RUN_ON_BATTERY=false)"
        assert describe_status(tmp_path / "status.json").startswith("paused on talk.mp3: on battery")
        (power / "AC" / "online").write_text("1\n")
        deadline = time.monotonic() + 5
        while process_state(proc.pid) == "T" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_state(proc.pid) in ("S", "R") and courtesy.paused is None
        (power / "AC" / "online").write_text("0\n")
        time.sleep(1.5)
        assert process_state(proc.pid) == "T"
        done()
        assert process_state(proc.pid) in ("S", "R")  # never left stopped
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_pause_past_the_limit_gives_the_task_up(tmp_path):
    power = power_supply(tmp_path / "ps", mains_online=False, discharging=True)
    courtesy = Courtesy(CourtesyRules(suspend_cpu_load=0, power_supply=power, max_pause_seconds=1.0))
    given_up = []
    proc = subprocess.Popen(["sleep", "60"])
    try:
        done = courtesy.watch(proc.pid, "talk.mp3", on_give_up=lambda why: given_up.append(why))
        time.sleep(3.5)
        done()
    finally:
        proc.kill()
        proc.wait()
    assert given_up and given_up[0] == "on battery (RUN_ON_BATTERY=false)"


def test_status_of_no_daemon(tmp_path):
    assert describe_status(tmp_path / "status.json").startswith("not running")
    (tmp_path / "status.json").write_text('{"state": "idle", "pid": 999999999, "at": 0}')
    assert describe_status(tmp_path / "status.json").startswith("not running")
    (tmp_path / "status.json").write_text(
        f'{{"state": "idle", "why": "nothing queued", "pid": {os.getpid()}, "at": 0}}'
    )
    assert describe_status(tmp_path / "status.json").startswith("idle: nothing queued")


def test_settings(tmp_path):
    env = {"MAX_CPU_PERCENT": "50", "SUSPEND_CPU_LOAD": "0", "RUN_ON_BATTERY": "yes", "SUSPEND_WHILE": "Steam, obs",
           "WORK_DIR": str(tmp_path)}  # fmt: skip
    rules = ClientSettings.from_env(env, dotenv_path=None).courtesy
    assert (rules.max_cpu_percent, rules.suspend_cpu_load, rules.run_on_battery) == (50, 0, True)
    assert rules.suspend_while == frozenset({"steam", "obs"})
    defaults = ClientSettings.from_env({"WORK_DIR": str(tmp_path)}, dotenv_path=None).courtesy
    assert (defaults.max_cpu_percent, defaults.suspend_cpu_load, defaults.run_on_battery) == (100, 25, False)
    for bad in ({"MAX_CPU_PERCENT": "0"}, {"SUSPEND_CPU_LOAD": "120"}, {"MAX_CPU_PERCENT": "half"}):
        with pytest.raises(SettingsError):
            ClientSettings.from_env({**bad, "WORK_DIR": str(tmp_path)}, dotenv_path=None)


def test_what_a_task_asks_of_whisper_cli():
    from client.transcribe import task_args

    assert task_args(False, None, None) == ()
    assert task_args(True, "Names: Ada, Grace.", 0.2) == ("-tr", "--prompt", "Names: Ada, Grace.", "-tp", "0.2")
    assert task_args(False, "", 3.0) == ("-tp", "1")  # clamped to whisper's range
