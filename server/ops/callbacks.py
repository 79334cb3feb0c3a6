"""Where a job's callback_url may point: public addresses only, unless the operator allows a host.

A callback is a request the server makes because a submitter asked for it. Pointed at 127.0.0.1,
the database's host or a cloud metadata address, it would let anyone who may submit a job reach
what only the server can. Checked when the job is submitted and again when the callback is sent
(a name may resolve elsewhere by then); notify.py sends it without following redirects.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit


class UnsafeCallback(ValueError):
    """The callback URL is not one the server may call on a submitter's behalf (the reason)."""


def check(url: str, allowed_hosts: Collection[str] = ()) -> None:
    """UnsafeCallback unless every address `url`'s host resolves to is public, or the operator
    allows the host (`host` or `host:port` in CALLBACK_ALLOWED_HOSTS)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeCallback("callback_url is not a valid URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeCallback("callback_url must be an http:// or https:// URL with a host")
    if host in allowed_hosts or f"{host}:{port}" in allowed_hosts:
        return
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise UnsafeCallback(f"callback_url host {host!r} does not resolve") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            raise UnsafeCallback(
                f"callback_url host {host!r} is {ip}, a private, loopback or reserved address: the server "
                "does not call those for a submitter (the operator may allow a host: CALLBACK_ALLOWED_HOSTS)"
            )
