"""A job's callback_url: the server calls public addresses only, unless the operator allows a host,
and checks again when it sends (the name may point elsewhere by then)."""

from __future__ import annotations

import pytest

from server.ops.callbacks import UnsafeCallback, check
from server.ops.notify import Notifier, Targets
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
    ],
)
def test_private_loopback_and_reserved_addresses_are_refused(url):
    with pytest.raises(UnsafeCallback, match="private, loopback or reserved"):
        check(url)


@pytest.mark.parametrize("url", ["ftp://example.org/", "http://", "file:///etc/passwd", "http://x:99999/"])
def test_what_is_not_an_http_url_with_a_host_is_refused(url):
    with pytest.raises(UnsafeCallback):
        check(url)


def test_public_addresses_and_hosts_the_operator_allows_pass():
    check("https://93.184.216.34/hook")  # an address literal: no name to resolve
    check("http://127.0.0.1:8000/hook", {"127.0.0.1"})
    check("http://localhost:8000/hook", {"localhost:8000"})
    with pytest.raises(UnsafeCallback):
        check("http://localhost:9000/hook", {"localhost:8000"})  # another port than the one allowed


def test_a_callback_is_checked_again_when_sent_and_never_made_to_a_private_host(tmp_path):
    with Receiver() as hook:
        refused = Notifier(tmp_path / "out", Targets(), clock=Clock())
        refused.enqueue_to(hook.url + "/done", {"event": "job.ended", "id": "j1"})
        refused.deliver_due()
        assert hook.received == [] and refused.pending() == 0  # dropped: no retry makes it safe
        allowed = Notifier(tmp_path / "out2", Targets(callback_allowed_hosts=frozenset({"127.0.0.1"})), clock=Clock())
        allowed.enqueue_to(hook.url + "/done", {"event": "job.ended", "id": "j2"})
        allowed.deliver_due()
        (got,) = hook.wait_for(1)
    assert got.json()["id"] == "j2"
