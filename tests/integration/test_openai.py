"""The official `openai` Python package, unchanged, against a server with a real stt-client and real
whisper-cli: OpenAI's transcription API served by the fleet."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import openai
import pytest
import requests

from tests.helpers import client_env

SUBMITTER = "notes-app-token-0123456789"
VOLUNTEER = "laptop-token-0123456789"
TOKENS = f"notes:{SUBMITTER}:submitter,laptop:{VOLUNTEER}"


@pytest.fixture
def fleet(shared, whisper_cli, server_process, tmp_path):
    """A server with built-in tokens and one volunteer daemon polling it."""
    srv = server_process(AUTH_TOKENS=TOKENS, MAX_UPLOAD_BYTES=2_000_000, OPENAI_WAIT_SECONDS=300).start()
    env = client_env(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "laptop", AUTH_TOKEN=VOLUNTEER)
    daemon = subprocess.Popen([sys.executable, "-m", "client.cli", "run"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    yield srv
    daemon.terminate()
    daemon.wait(30)


def test_the_openai_client_transcribes_through_the_fleet(shared, fleet):
    client = openai.OpenAI(base_url=f"{fleet.url}/v1", api_key=SUBMITTER, max_retries=0, timeout=300)
    jfk = shared / "audio" / "jfk.mp3"
    with open(jfk, "rb") as f:
        plain = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert "ask not what your country can do for you" in plain.text.lower()

    with open(jfk, "rb") as f:
        verbose = client.audio.transcriptions.create(
            model="tiny", file=f, response_format="verbose_json", timestamp_granularities=["word"]
        )
    assert verbose.language == "english" and 10 < verbose.duration < 12
    assert verbose.text == plain.text
    assert verbose.segments and verbose.segments[0].start == 0.0 and verbose.segments[-1].end <= verbose.duration + 1
    assert all(s.tokens and s.avg_logprob < 0 for s in verbose.segments)
    words = verbose.words
    assert [w.word for w in words][:3] == ["And", "so,", "my"]
    assert all(0 <= w.start <= w.end <= verbose.duration + 1 for w in words)
    assert words == sorted(words, key=lambda w: w.start)

    with open(jfk, "rb") as f:
        srt = client.audio.transcriptions.create(model="tiny", file=f, response_format="srt")
    with open(jfk, "rb") as f:
        vtt = client.audio.transcriptions.create(model="tiny", file=f, response_format="vtt")
    with open(jfk, "rb") as f:
        text = client.audio.transcriptions.create(model="tiny", file=f, response_format="text")
    assert srt.startswith("1\n00:00:00,000 --> ") and "fellow Americans" in srt
    assert vtt.startswith("WEBVTT") and "fellow Americans" in vtt
    assert "fellow Americans" in text
    # The same file and options again: the same job (one transcription), whatever the format.
    jobs = requests.get(f"{fleet.url}/api/v1/jobs", headers={"Authorization": f"Bearer {SUBMITTER}"}, timeout=10)
    assert len(jobs.json()) == 1 and jobs.json()[0]["state"] == "done"

    # A prompt and a temperature reach whisper-cli through the lease (--prompt, -tp): another job.
    with open(jfk, "rb") as f:
        prompted = client.audio.transcriptions.create(
            model="tiny", file=f, response_format="verbose_json", prompt="President Kennedy's inaugural address.",
            temperature=0.2,
        )  # fmt: skip
    assert "fellow americans" in prompted.text.lower() and prompted.segments[0].temperature == 0.2
    tasks = requests.get(f"{fleet.url}/api/v1/tasks", headers={"Authorization": f"Bearer {VOLUNTEER}"}, timeout=10)
    asked = [(t["prompt"], t["temperature"]) for t in tasks.json()]
    assert set(asked) == {(None, None), ("President Kennedy's inaugural address.", 0.2)}

    models = [m.id for m in client.models.list()]
    assert models == ["whisper-1", "tiny"]  # the fleet has one tiny host


def test_openai_errors_raise_the_openai_client_s_own_classes(shared, fleet, tmp_path):
    jfk = shared / "audio" / "jfk.mp3"
    wrong = openai.OpenAI(base_url=f"{fleet.url}/v1", api_key="not-a-token-0123456789", max_retries=0)
    with open(jfk, "rb") as f, pytest.raises(openai.AuthenticationError) as e:
        wrong.audio.transcriptions.create(model="whisper-1", file=f)
    assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"

    client = openai.OpenAI(base_url=f"{fleet.url}/v1", api_key=SUBMITTER, max_retries=0)
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * 3_000_000)
    with open(big, "rb") as f, pytest.raises(openai.APIStatusError) as e:
        client.audio.transcriptions.create(model="whisper-1", file=f)
    assert e.value.status_code == 413 and "MAX_UPLOAD_BYTES" in e.value.body["message"]

    notes = tmp_path / "notes.mp3"
    notes.write_text("not audio at all\n" * 100)
    with open(notes, "rb") as f, pytest.raises(openai.APIStatusError) as e:
        client.audio.transcriptions.create(model="whisper-1", file=f)
    assert e.value.status_code == 415 and e.value.body["param"] == "file"
    assert "notes.mp3" in e.value.body["message"] and str(tmp_path) not in e.value.body["message"]

    with open(jfk, "rb") as f, pytest.raises(openai.BadRequestError) as e:
        client.audio.transcriptions.create(model="whisper-1", file=f, response_format="docx")  # type: ignore[arg-type]
    assert e.value.body["param"] == "response_format"
    with open(jfk, "rb") as f, pytest.raises(openai.BadRequestError) as e:
        client.audio.transcriptions.create(model="whisper-1", file=f, extra_body={"speakers": "everyone"})
    assert e.value.body["param"] == "speakers"
    volunteer = openai.OpenAI(base_url=f"{fleet.url}/v1", api_key=VOLUNTEER, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        volunteer.models.list()


def test_a_request_the_fleet_cannot_finish_in_time_names_its_job(shared, server_process, tmp_path):
    """No volunteer is polling: after the wait, 408 with the job's id; a retry follows the same job.
    More requests waiting at once than OPENAI_MAX_WAITING: 429, which OpenAI's clients retry later."""
    srv = server_process(AUTH_TOKENS=TOKENS, OPENAI_WAIT_SECONDS=3, OPENAI_WAIT_FACTOR=0, OPENAI_MAX_WAITING=1).start()
    client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=SUBMITTER, max_retries=0)
    ids = []

    def ask() -> None:
        with open(shared / "audio" / "jfk.mp3", "rb") as f, pytest.raises(openai.APIStatusError) as e:
            client.audio.transcriptions.create(model="whisper-1", file=f)
        assert e.value.status_code == 408 and e.value.body["code"] == "timeout"
        ids.append(e.value.body)

    first = threading.Thread(target=ask)
    first.start()
    while not requests.get(
        f"{srv.url}/api/v1/jobs", headers={"Authorization": f"Bearer {SUBMITTER}"}, timeout=10
    ).json():
        time.sleep(0.1)  # the first request is waiting now
    with open(shared / "audio" / "jfk.mp3", "rb") as f, pytest.raises(openai.RateLimitError) as limited:
        client.audio.transcriptions.create(model="whisper-1", file=f)
    assert limited.value.response.headers["Retry-After"] == "10"
    first.join()
    ask()
    assert ids[0]["job_id"] == ids[1]["job_id"]
    status = requests.get(ids[1]["status_url"], headers={"Authorization": f"Bearer {SUBMITTER}"}, timeout=10)
    assert status.json()["state"] == "queued"


def test_a_translation_waits_for_a_host_that_can_translate(shared, whisper_cli, server_process, tmp_path):
    """Spanish speech into English through /v1/audio/translations: an English-only host polling all
    along does not take it; a multilingual host translates it with whisper's --translate."""
    srv = server_process(AUTH_TOKENS=TOKENS, OPENAI_WAIT_SECONDS=4, OPENAI_WAIT_FACTOR=0).start()
    english = client_env(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "en-box", AUTH_TOKEN=VOLUNTEER)
    daemons = [subprocess.Popen([sys.executable, "-m", "client.cli", "run"], env=english,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=SUBMITTER, max_retries=0, timeout=300)
    tren = shared / "audio" / "tren-es.mp3"
    try:
        with open(tren, "rb") as f, pytest.raises(openai.APIStatusError) as e:
            client.audio.translations.create(model="whisper-1", file=f)
        assert e.value.status_code == 408  # the English-only host polled, and left it
        multilingual = client_env(tmp_path, srv.url, shared / "models/ggml-base-q5_1.bin", "multi-box",
                                  AUTH_TOKEN=VOLUNTEER)  # fmt: skip
        daemons.append(subprocess.Popen([sys.executable, "-m", "client.cli", "run"], env=multilingual,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        srv_wait = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=SUBMITTER, max_retries=20, timeout=300)
        with open(tren, "rb") as f:
            english_text = srv_wait.audio.translations.create(model="whisper-1", file=f, response_format="verbose_json")
    finally:
        for d in daemons:
            d.terminate()
            d.wait(30)
    text = english_text.text.lower()
    found = [w for w in ("train", "travel", "river", "market", "coffee", "station", "town") if w in text]
    assert len(found) >= 3, text  # English words for the Spanish ones (base-q5_1's translation)
    assert "tren" not in text and "mercado" not in text
    assert english_text.task == "translate" and english_text.language == "spanish"
    jobs = requests.get(f"{srv.url}/api/v1/jobs", headers={"Authorization": f"Bearer {SUBMITTER}"}, timeout=10).json()
    assert len(jobs) == 1 and jobs[0]["id"] == e.value.body["job_id"]  # the retries followed the first job
