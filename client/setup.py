"""`stt-client setup`: from a fresh checkout to a working volunteer in one command. Checks ffmpeg
(installing it where the package manager allows), picks and builds the backend, picks and fetches
the model (SHA-256 checked), writes `.env` (mode 0600), measures the speed, runs the doctor, and
offers a user service. A second run only checks (the doctor), unless `force`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from stt_common.formats import is_english_only

from .machine import Machine, pick_backend, pick_model

WHISPER_DIR = Path(__file__).resolve().parent / "whisper"
INSTALLERS = (  # (package manager, the command that installs ffmpeg)
    ("apt-get", ["apt-get", "install", "-y", "ffmpeg"]),
    ("dnf", ["dnf", "install", "-y", "ffmpeg"]),
    ("pacman", ["pacman", "-S", "--noconfirm", "ffmpeg"]),
    ("brew", ["brew", "install", "ffmpeg"]),
)


class SetupError(Exception):
    """A step failed; the message says which and what to do."""


@dataclass(frozen=True)
class Answers:
    server: str
    token: str = ""
    name: str = ""
    model: str = ""  # a name for download-model.sh, or a local file; "": pick one
    backend: str = ""  # "": detect
    service: Optional[bool] = None  # None: ask (no with --yes)


@dataclass
class Setup:
    env_file: Path  # the .env to write (the daemon runs where it is)
    say: Callable[[str], None]
    confirm: Callable[[str], bool]  # asks the volunteer (always yes with --yes)
    data_dir: Path = Path.home() / ".local" / "share" / "batch-stt"

    def run(self, answers: Answers, force: bool = False) -> None:
        if self.env_file.exists() and not force:
            self.say(f"{self.env_file} exists: already set up, checking only (--force to set up again)")
            return self._client("doctor")
        self._ffmpeg()
        machine = Machine.inspect()
        backend = answers.backend or self._backend(machine)
        self._step(f"building whisper.cpp ({backend})", [str(WHISPER_DIR / "build.sh"), "--backend", backend])
        model = self._model(answers.model, machine, backend)
        self._write_env(answers, model, backend)
        self._client("bench")
        self._client("doctor")
        if answers.service or (
            answers.service is None and self.confirm("install it as a service that starts at login?")
        ):
            self._service()
        else:
            self.say(f"run it with: cd {self.env_file.parent} && stt-client run   (a service: setup --service --force)")

    def _ffmpeg(self) -> None:
        if shutil.which("ffmpeg") and shutil.which("ffprobe"):
            return self.say(f"ffmpeg: {shutil.which('ffmpeg')}")
        for manager, command in INSTALLERS:
            if shutil.which(manager):
                sudo = [] if os.geteuid() == 0 or manager == "brew" else ["sudo"]
                if self.confirm(f"ffmpeg is missing: install it with '{' '.join(sudo + command)}'?"):
                    return self._step("installing ffmpeg", sudo + command)
                break
        raise SetupError("ffmpeg is needed: install it with your package manager, then run setup again")

    def _backend(self, machine: Machine) -> str:
        backend, why = pick_backend(machine)
        self.say(f"backend: {backend} ({why})")
        return backend

    def _model(self, wanted: str, machine: Machine, backend: str) -> Path:
        models = self.data_dir / "models"
        fetch = [str(WHISPER_DIR / "download-model.sh")]
        if wanted and Path(wanted).expanduser().is_file():
            local = Path(wanted).expanduser().resolve()
            self._step(
                f"copying the model {local.name}", [*fetch, local.name, "--from", str(local), "--dir", str(models)]
            )
            return models / local.name
        name, why = (wanted, "asked for") if wanted else pick_model(machine, backend)
        self.say(f"model: {name} ({why})")
        self._step(f"downloading the model {name}", [*fetch, name, "--dir", str(models)])
        return models / f"ggml-{name.removeprefix('ggml-').removesuffix('.bin')}.bin"

    def _write_env(self, answers: Answers, model: Path, backend: str) -> None:
        lines = [
            "# Written by stt-client setup; see .env.example for every setting.",
            f"SERVER_URL={answers.server}",
            f"AUTH_TOKEN={answers.token}" if answers.token else "# AUTH_TOKEN=",
            f"NODE_NAME={answers.name}" if answers.name else "# NODE_NAME= (default: the host name)",
            f"WHISPER_MODEL={model}",
            f"WHISPER_BACKEND={backend}",
            f"# an English-only model: {'yes' if is_english_only(model.name) else 'no'}",
        ]
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a token
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.env_file, 0o600)
        self.say(f"wrote {self.env_file} (mode 600)")

    def _client(self, command: str) -> None:
        self._step(f"stt-client {command}", [sys.executable, "-m", "client.cli", command], cwd=self.env_file.parent)

    def _step(self, what: str, argv: list[str], cwd: Optional[Path] = None) -> None:
        self.say(f"==> {what}")
        if subprocess.run(argv, cwd=cwd).returncode != 0:
            raise SetupError(f"{what} failed (see above); fix it and run setup again")

    def _service(self) -> None:
        workdir, python = self.env_file.parent, sys.executable
        if sys.platform == "darwin":
            unit = Path.home() / "Library" / "LaunchAgents" / "org.batch-stt.client.plist"
            unit.parent.mkdir(parents=True, exist_ok=True)
            unit.write_text(LAUNCHD.format(python=python, workdir=workdir))
            return self._step("starting the launchd agent", ["launchctl", "load", "-w", str(unit)])
        unit = Path.home() / ".config" / "systemd" / "user" / "stt-client.service"
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text(SYSTEMD.format(python=python, workdir=workdir))
        self._step("starting the systemd user service", ["systemctl", "--user", "enable", "--now", "stt-client"])


SYSTEMD = """[Unit]
Description=batch-stt transcription client (stt-client setup)
After=network-online.target

[Service]
WorkingDirectory={workdir}
ExecStart={python} -m client.cli run
KillSignal=SIGTERM
TimeoutStopSec=2h
Restart=on-failure
RestartSec=30
Nice=10

[Install]
WantedBy=default.target
"""
LAUNCHD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>Label</key><string>org.batch-stt.client</string>
  <key>ProgramArguments</key><array><string>{python}</string><string>-m</string><string>client.cli</string><string>run</string></array>
  <key>WorkingDirectory</key><string>{workdir}</string>
  <key>RunAtLoad</key><true/><key>KeepAlive</key><true/>
</dict></plist>
"""
