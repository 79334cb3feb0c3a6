"""A job's callback_url: the server calls public addresses only (private ones too on a LAN that
allows them, hosts the operator names always), checks again when it sends, connects to the address
it checked, follows no redirect, and signs with the job's own secret over a body with its time."""

from __future__ import annotations

import json
import socket

import pytest

from server.ops import callbacks
from server.ops.callbacks import CallbackRules, UnsafeCallback, resolve
from server.ops.notify import SIGNATURE_HEADER, Notifier, Targets, sign
from tests.helpers import Clock
from tests.receiver import Receiver


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",  # resolves to loopback from /etc/hosts
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://172.16.0.1/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://[fe80::1]/",
    ],
)
def test_private_loopback_and_reserved_addresses_are_refused(url):
    with pytest.raises(UnsafeCallback, match="private, loopback or reserved"):
        resolve(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/",
        "http://",
        "file:///etc/passwd",
        "http://x:99999/",
        "http://93.184.216.34:0/hook",  # port 0
        "http://93.184.216.34:port/",
        "http://93.184.216.34/a\nb",  # a control character (urlsplit would drop it silently)
        "http://93.184.216.34/a b",
        "http://93.184.216.34/\x00",
    ],
)
def test_what_is_not_a_plain_http_url_with_a_host_and_port_is_refused(url):
    with pytest.raises(UnsafeCallback):
        resolve(url)


def test_public_addresses_and_hosts_the_operator_allows_pass():
    assert resolve("https://93.184.216.34/hook?a=1").address == "93.184.216.34"
    assert resolve("https://93.184.216.34/hook?a=1").target == "/hook?a=1"
    resolve("http://127.0.0.1:8000/hook", CallbackRules(frozenset({"127.0.0.1"})))
    resolve("http://localhost:8000/hook", CallbackRules(frozenset({"localhost:8000"})))
    with pytest.raises(UnsafeCallback):
        resolve("http://localhost:9000/hook", CallbackRules(frozenset({"localhost:8000"})))  # another port


def test_a_lan_may_allow_private_addresses_but_never_loopback_or_link_local():
    lan = CallbackRules(allow_private=True)
    assert resolve("http://192.168.1.20:9000/done", lan).address == "192.168.1.20"
    resolve("http://10.0.0.5/", lan)
    for url in ("http://127.0.0.1/", "http://169.254.169.254/", "http://[::1]/", "http://0.0.0.0/"):
        with pytest.raises(UnsafeCallback):
            resolve(url, lan)


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch):
    """A name that answers a public address when checked and 127.0.0.1 a moment later (DNS
    rebinding) is still called at the public one: it is resolved once."""
    answers = iter(["93.184.216.34", "127.0.0.1"])

    def rebinding(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    dest = resolve("http://hooks.example.org:8080/x")
    assert (dest.address, dest.host, dest.netloc) == ("93.184.216.34", "hooks.example.org", "hooks.example.org:8080")


def test_a_callback_is_checked_again_when_sent_and_never_made_to_a_private_host(tmp_path):
    with Receiver() as hook:
        refused = Notifier(tmp_path / "out", Targets(), clock=Clock())
        refused.enqueue_to(hook.url + "/done", {"event": "job.ended", "id": "j1"}, "s1")
        refused.deliver_due()
        assert hook.received == [] and refused.pending() == 0  # dropped: no retry makes it safe
        allowed = Notifier(tmp_path / "out2", Targets(callback_rules=CallbackRules(frozenset({"127.0.0.1"}))),
                           clock=Clock(1000.0))  # fmt: skip
        allowed.enqueue_to(hook.url + "/done?job=j2", {"event": "job.ended", "id": "j2"}, "the-jobs-secret")
        allowed.deliver_due()
        (got,) = hook.wait_for(1)
    assert got.path == "/done?job=j2" and got.json()["id"] == "j2"
    assert got.json()["ts"] == 1000.0  # the time is in the signed body: a receiver can refuse replays
    assert got.headers[SIGNATURE_HEADER] == sign("the-jobs-secret", got.body)
    assert got.headers["Host"] == hook.url.removeprefix("http://")


def test_a_redirect_to_loopback_is_not_followed(tmp_path):
    """The receiver the operator allows answers 302 to another loopback port: that one hears nothing,
    and the callback counts as failed (retried later, to the same allowed URL only)."""
    with Receiver() as inner, Receiver() as hook:
        hook.status, hook.location = 302, inner.url + "/admin"
        rules = CallbackRules(frozenset({f"127.0.0.1:{hook.url.rsplit(':', 1)[1]}"}))
        sender = Notifier(tmp_path / "out", Targets(callback_rules=rules), clock=Clock())
        sender.enqueue_to(hook.url + "/done", {"event": "job.ended", "id": "j3"}, None)
        assert sender.deliver_due() == 0
        assert len(hook.wait_for(1)) == 1
        assert inner.received == [] and sender.pending() == 1
        entry = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
        assert entry["last_error"] == "HTTP 302"


def test_a_receiver_that_hangs_costs_the_callback_queue_its_short_timeout(tmp_path):
    with Receiver() as hook:
        hook.gate.clear()
        rules = CallbackRules(frozenset({"127.0.0.1"}))
        sender = Notifier(tmp_path / "out", Targets(callback_rules=rules), clock=Clock(), timeout=0.5)
        sender.enqueue_to(hook.url + "/slow", {"event": "job.ended", "id": "j4"}, None)
        assert sender.deliver_due() == 0 and sender.pending() == 1
        hook.gate.set()


def test_post_sends_to_the_pinned_address_with_the_names_host_header():
    with Receiver() as hook:
        port = int(hook.url.rsplit(":", 1)[1])
        dest = callbacks.Destination("http", "hooks.example.org", port, f"hooks.example.org:{port}", "/p?q=1",
                                     "127.0.0.1")  # fmt: skip
        assert callbacks.post(dest, b"{}", {"Content-Type": "application/json"}, 5.0) == 200
        (got,) = hook.wait_for(1)
    assert got.headers["Host"] == f"hooks.example.org:{port}" and got.path == "/p?q=1"
