"""Operator notifications: the signed webhook, apprise (Gotify format), retries, and the outbox that
survives a restart. Against a local HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json

from server.ops.notify import SIGNATURE_HEADER, Notifier, NotifyEvent, Targets
from tests.helpers import Clock
from tests.receiver import Receiver


def test_the_webhook_is_signed_over_the_raw_body(tmp_path):
    with Receiver() as hook:
        n = Notifier(tmp_path / "out", Targets(webhook_url=hook.url + "/hook", webhook_secret="s3cret"))
        n.enqueue(NotifyEvent.TASK_FAILED, {"task": "t1", "path": "a.mp3", "error": "corrupt"})
        assert n.deliver_due() == 1
        (got,) = hook.received
    expected = "sha256=" + hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert got.headers[SIGNATURE_HEADER] == expected
    assert got.path == "/hook" and got.headers["Content-Type"] == "application/json"
    body = got.json()
    assert (body["event"], body["task"], body["error"]) == ("task.failed", "t1", "corrupt")


def test_a_failing_receiver_gets_it_again_with_backoff_even_after_a_restart(tmp_path):
    clock = Clock()
    with Receiver() as hook:
        hook.status = 503
        n = Notifier(tmp_path / "out", Targets(webhook_url=hook.url), clock=clock)
        n.enqueue(NotifyEvent.QUEUE_EMPTY, {"files_done": 3, "files_failed": 0})
        assert n.deliver_due() == 0 and n.pending() == 1
        assert n.deliver_due() == 0 and len(hook.received) == 1  # not due yet: backing off
        clock.t += 5
        assert n.deliver_due() == 0 and len(hook.received) == 2
        clock.t += 9  # the second wait is longer (10 s)
        assert n.deliver_due() == 0 and len(hook.received) == 2
        hook.status = 200
        restarted = Notifier(tmp_path / "out", Targets(webhook_url=hook.url), clock=clock)  # the server restarts
        clock.t += 1
        assert restarted.deliver_due() == 1 and restarted.pending() == 0
        assert [r.json()["event"] for r in hook.received] == ["queue.empty"] * 3


def test_events_not_chosen_are_not_sent(tmp_path):
    with Receiver() as hook:
        n = Notifier(tmp_path / "out", Targets(webhook_url=hook.url))  # default: file.done is off
        n.enqueue(NotifyEvent.FILE_DONE, {"path": "a.mp3"})
        assert n.pending() == 0
        n = Notifier(tmp_path / "out", Targets(webhook_url=hook.url), events=frozenset({NotifyEvent.FILE_DONE}))
        n.enqueue(NotifyEvent.FILE_DONE, {"path": "a.mp3"})
        assert n.deliver_due() == 1


def test_apprise_urls_reach_gotify(tmp_path):
    with Receiver() as gotify:
        host = gotify.url.removeprefix("http://")
        n = Notifier(tmp_path / "out", Targets(apprise_urls=[f"gotify://{host}/AppToken123"]))
        n.enqueue(NotifyEvent.HOST_COOLDOWN, {"host": "laptop", "until": 1.0})
        assert n.deliver_due() == 1
        (got,) = gotify.received
    assert got.path.startswith("/message")
    body = json.loads(got.body)
    assert "host.cooldown" in body["title"] and "host: laptop" in body["message"]
    assert "AppToken123" in got.path + json.dumps(got.headers)


def test_the_client_sends_to_gotify_and_to_apprise_urls():
    from client.notify import notifier_for

    with Receiver() as gotify, Receiver() as other:
        urls = (f"gotify://{other.url.removeprefix('http://')}/OtherToken",)
        n = notifier_for("fedora", gotify.url, "GotifyKey", urls)
        assert n.send("task t1 failed: corrupt", "line 1\n" + "\n".join(f"ffmpeg {i}" for i in range(40)))
        (direct,), (via_apprise,) = gotify.received, other.received
    body = direct.json()
    assert (body["title"], body["priority"], direct.headers["X-Gotify-Key"]) == ("fedora", 7, "GotifyKey")
    assert body["message"].startswith("task t1 failed: corrupt\n\n") and body["message"].endswith("ffmpeg 39")
    assert len(body["message"].splitlines()) == 2 + 15  # the last 15 lines of output
    assert json.loads(via_apprise.body)["title"] == "fedora"
    assert notifier_for("fedora", "", "", ()).send("nobody listens") is False


def test_workers_sharing_the_outbox_send_each_notification_once(tmp_path):
    """WORKERS > 1: each process has its own Notifier on one outbox; a down receiver hears one try."""
    import threading

    with Receiver() as hook:
        hook.status = 503
        hook.gate.clear()  # the first try hangs until released: the other worker's pass overlaps it
        workers = [Notifier(tmp_path / "out", Targets(webhook_url=hook.url), clock=Clock()) for _ in range(2)]
        workers[0].enqueue(NotifyEvent.QUEUE_EMPTY, {"files_done": 3, "files_failed": 0})
        first = threading.Thread(target=workers[0].deliver_due)
        first.start()
        with hook.arrived:
            assert hook.arrived.wait_for(lambda: hook.received, timeout=10)
        assert workers[1].deliver_due() == 0  # the first worker's pass holds the outbox
        hook.gate.set()
        first.join(10)
        assert workers[1].deliver_due() == 0 and len(hook.received) == 1  # backing off: not due again yet


def test_one_of_the_processes_sharing_the_outbox_watches_and_another_takes_over_when_it_ends(tmp_path):
    """WORKERS > 1: what housekeeping watches for (checks.stalled) is told by one process, not each."""
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from server.ops.notify import Notifier, Targets; "
         f"n = Notifier(Path({str(tmp_path / 'out')!r}), Targets()); print(n.leads(), flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "True"  # the first process to ask leads
    here = Notifier(tmp_path / "out", Targets())
    assert not here.leads() and not here.leads()
    child.stdin.close()  # the leading process ends
    assert child.wait(30) == 0 and here.leads() and here.leads()
