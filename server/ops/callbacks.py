"""Where a job's callback_url may point, and the one way it is called.

A callback is a request the server makes because a submitter asked for it. Pointed at 127.0.0.1,
the database's host or a cloud metadata address, it would let anyone who may submit a job reach
what only the server can. So the URL is checked when the job is submitted and again when the
callback is sent; the name is resolved once and the connection goes to the address that was
checked (no second lookup that could answer otherwise), and redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union
from urllib.parse import urlsplit

import certifi
import urllib3

IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class UnsafeCallback(ValueError):
    """The callback URL is not one the server may call on a submitter's behalf (the reason)."""


@dataclass(frozen=True)
class CallbackRules:
    allowed_hosts: frozenset[str] = frozenset()  # `host` or `host:port`: called whatever they resolve to
    allow_private: bool = False  # a LAN setup: private addresses too (never loopback or link-local)


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str  # the name, for the Host header and the TLS certificate
    port: int
    netloc: str
    target: str  # path and query
    address: str  # what the name resolved to when it was checked: the connection goes here


def _refusal(ip: IP, rules: CallbackRules) -> str:
    """Why the server may not call `ip` ("" if it may)."""
    if ip.is_global and not ip.is_multicast:
        return ""
    lan = ip.is_private and not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)
    if rules.allow_private and lan:
        return ""
    return "a private, loopback or reserved address"


def resolve(url: str, rules: CallbackRules = CallbackRules()) -> Destination:
    """The destination `url` names, UnsafeCallback unless every address its host resolves to is
    public (or private, with allow_private), or the operator allows the host."""
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise UnsafeCallback("callback_url has spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeCallback("callback_url is not a valid URL (its port?)") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeCallback("callback_url must be an http:// or https:// URL with a host")
    if parts.port == 0:
        raise UnsafeCallback("callback_url has port 0")
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise UnsafeCallback(f"callback_url host {host!r} does not resolve") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    addresses = [ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip for ip in addresses]
    if not (host in rules.allowed_hosts or f"{host}:{port}" in rules.allowed_hosts):
        for ip in addresses:
            if why := _refusal(ip, rules):
                raise UnsafeCallback(
                    f"callback_url host {host!r} is {ip}, {why}: the server does not call those for a "
                    "submitter (the operator may allow a host: CALLBACK_ALLOWED_HOSTS, or CALLBACK_ALLOW_PRIVATE)"
                )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc = parts.netloc.rpartition("@")[2]
    return Destination(parts.scheme, host, port, netloc, target, str(addresses[0]))


def post(dest: Destination, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST to the checked address (TLS still verifies the name); the response's status. Raises
    urllib3's errors when the receiver cannot be reached."""
    limit = urllib3.Timeout(total=timeout)
    pool: urllib3.HTTPConnectionPool
    if dest.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            dest.address, dest.port, timeout=limit, retries=False, server_hostname=dest.host,
            assert_hostname=dest.host, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
        )  # fmt: skip
    else:
        pool = urllib3.HTTPConnectionPool(dest.address, dest.port, timeout=limit, retries=False)
    with pool:
        response = pool.urlopen(
            "POST", dest.target, body=body, headers={**headers, "Host": dest.netloc}, redirect=False, retries=False
        )
        return response.status
