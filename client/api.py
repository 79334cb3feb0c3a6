"""Talking to the server's v1 API. Transient trouble and final refusals are different errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import requests

from stt_common.files import sha256_file
from stt_common.formats import hms

from . import __version__
from .settings import ClientSettings

TIMEOUT = (10, 60)  # connect, read
CHUNK = 1024 * 1024


class Transient(Exception):
    """Network trouble, 5xx, 429, credentials refused: try again later."""


class Rejected(Exception):
    """A 4xx the server means: retrying the same request will not help."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class LeaseLost(Rejected):
    """409 (or 404): the lease is gone; stop working on the task."""


@dataclass(frozen=True)
class Lease:
    task_id: str
    token: str
    path: str
    audio_url: str
    language: str
    size: int
    sha256: Optional[str]
    deadline: float
    lease_seconds: int
    heartbeat_seconds: float
    attempt: int
    # A part of a long file: its range of the file. Its audio is that range alone, transcribed like
    # any file; the server moves the timestamps to the file's timeline when it stitches the parts.
    file_task_id: Optional[str] = None
    start_seconds: Optional[float] = None
    end_seconds: Optional[float] = None
    file_duration_seconds: Optional[float] = None
    translate: bool = False  # into English: whisper-cli's --translate
    prompt: Optional[str] = None  # whisper-cli's --prompt
    temperature: Optional[float] = None  # whisper-cli's --temperature
    # A spot check of another host's result: transcribe this range of the task's audio alone.
    check_start_seconds: Optional[float] = None
    check_end_seconds: Optional[float] = None

    @property
    def spot(self) -> Optional[tuple[float, float]]:
        if self.check_start_seconds is None or self.check_end_seconds is None:
            return None
        return self.check_start_seconds, self.check_end_seconds

    def describe(self) -> str:
        if self.spot:
            return f"{self._where()} (a spot check of {hms(self.spot[0])}-{hms(self.spot[1])})"
        return self._where()

    def _where(self) -> str:
        if self.start_seconds is None or self.end_seconds is None:
            return self.path
        span = f"{hms(self.start_seconds)}-{hms(self.end_seconds)}"
        return f"{self.path} [{span} of {hms(self.file_duration_seconds or self.end_seconds)}]"


@dataclass(frozen=True)
class Wait:
    seconds: float
    reason: str


def _wait(r: requests.Response) -> Optional[Wait]:
    try:
        seconds = float(r.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return Wait(min(max(seconds, 1.0), 600.0), r.headers.get("X-Wait-Reason", "busy"))


def _detail(r: requests.Response) -> str:
    try:
        return str(r.json().get("detail", r.text))[:500]
    except ValueError:
        return r.text[:500]


class ServerAPI:
    def __init__(self, settings: ClientSettings):
        self.base = settings.server_url
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"batch-stt-client/{__version__}"
        if settings.auth_token:
            self.session.headers["Authorization"] = f"Bearer {settings.auth_token}"
        elif settings.auth_enabled:
            self.session.auth = (settings.username, settings.password)

    def _call(self, method: str, path: str, ok=(200,), **kwargs) -> requests.Response:
        """`path` below SERVER_URL, or a whole URL the server handed out (a job's status_url)."""
        kwargs.setdefault("timeout", TIMEOUT)
        url = path if path.startswith(("http://", "https://")) else self.base + path
        try:
            r = self.session.request(method, url, **kwargs)
        except requests.RequestException as e:
            raise Transient(f"{type(e).__name__}: {e}") from None
        if r.status_code in ok:
            return r
        # Credentials can be fixed on either side: like an outage, retry; never drop finished work.
        if r.status_code >= 500 or r.status_code in (401, 403, 407, 408, 429):
            raise Transient(f"HTTP {r.status_code}: {_detail(r)}")
        if r.status_code in (404, 409, 410) and "/leases/" in path:
            raise LeaseLost(r.status_code, _detail(r))
        raise Rejected(r.status_code, _detail(r))

    def health(self) -> dict:
        return self._call("GET", "/health").json()

    def stats(self) -> dict:
        return self._call("GET", "/api/v1/stats").json()

    def volunteers(self, host: str) -> dict:
        """The volunteers' table and this caller's rank in it (`you`)."""
        return self._call("GET", "/api/v1/volunteers", params={"host": host}).json()

    def lease(self, client: str, capabilities: dict) -> Union[Lease, Wait, None]:
        """A task; Wait: work for us is queued but the server holds it back for now (ask again
        after `seconds`); None: nothing is queued for us."""
        r = self._call("POST", "/api/v1/leases", ok=(200, 204), json={"client": client, "capabilities": capabilities})
        if r.status_code == 204:
            return _wait(r)
        return Lease(**{k: v for k, v in r.json().items() if k in Lease.__dataclass_fields__})

    def download(
        self, lease: Lease, dest: Path, on_progress: Callable[[int, int], None] = lambda done, total: None
    ) -> Path:
        """Fetch the audio to `dest`, resuming a partial file with Range; verify size and SHA-256."""
        have = dest.stat().st_size if dest.exists() else 0
        if have > lease.size:
            dest.unlink()
            have = 0
        if have < lease.size:
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with self.session.get(self.base + lease.audio_url, headers=headers, stream=True, timeout=TIMEOUT) as r:
                    if r.status_code not in (200, 206):
                        if r.status_code >= 500:
                            raise Transient(f"HTTP {r.status_code} downloading audio")
                        raise LeaseLost(r.status_code, _detail(r))
                    mode = "ab" if r.status_code == 206 else "wb"
                    done = have if r.status_code == 206 else 0
                    with open(dest, mode) as f:
                        for chunk in r.iter_content(1 << 20):
                            f.write(chunk)
                            done += len(chunk)
                            on_progress(done, lease.size)
            except requests.RequestException as e:
                raise Transient(f"download interrupted: {e}") from None
        size = dest.stat().st_size
        if size != lease.size:
            raise Transient(f"downloaded {size} of {lease.size} bytes")
        if lease.sha256 and sha256_file(dest) != lease.sha256:
            dest.unlink()
            raise Transient("downloaded audio does not match the server's SHA-256 (file changed?)")
        return dest

    def heartbeat(self, token: str, progress: Optional[float], paused: Optional[str] = None) -> float:
        """`paused`: why whisper-cli is paused now (the server keeps the lease and shows the reason)."""
        body = {"progress": progress, **({"paused": paused[:200]} if paused else {})}
        return self._call("POST", f"/api/v1/leases/{token}/heartbeat", json=body).json()["deadline"]

    def upload_result(self, token: str, files: dict[str, Path], meta_json: str) -> dict:
        handles = {fmt: (p.name, open(p, "rb"), "text/plain") for fmt, p in files.items()}
        try:
            return self._call("POST", f"/api/v1/leases/{token}/result", data={"meta": meta_json}, files=handles).json()
        finally:
            for _, fh, _ in handles.values():
                fh.close()

    def report_error(self, token: str, message: str, stderr_tail: Optional[str], retryable: bool) -> dict:
        return self._call(
            "POST",
            f"/api/v1/leases/{token}/error",
            json={"message": message[:4000], "stderr_tail": stderr_tail, "retryable": retryable},
        ).json()

    def release(self, token: str) -> None:
        self._call("POST", f"/api/v1/leases/{token}/release")

    # --- uploaded jobs (`stt-client submit`) --------------------------------------------------

    def submit_job(self, path: Path, fields: dict[str, str]) -> dict:
        """Upload `path` as a job, streamed (never the whole file in memory)."""
        boundary = uuid.uuid4().hex
        return self._call(
            "POST",
            "/api/v1/jobs",
            ok=(202,),
            data=multipart(path, fields, boundary),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            timeout=(10, 3600),
        ).json()

    def job(self, status_url: str) -> dict:
        return self._call("GET", status_url).json()

    def job_result(self, result_url: str, fmt: str) -> str:
        return self._call("GET", result_url, params={"format": fmt}).text


def multipart(path: Path, fields: dict[str, str], boundary: str) -> Iterator[bytes]:
    """A multipart/form-data body made on the fly: the fields, then the file in chunks."""
    for name, value in fields.items():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    safe = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe}"\r\n'
    yield (head + "Content-Type: application/octet-stream\r\n\r\n").encode()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()
