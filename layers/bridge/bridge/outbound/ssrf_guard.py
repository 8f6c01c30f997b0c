"""Which callback URLs the bridge may call: resolve once, refuse internal addresses (SSRF guard).

The delivery code must connect to the addresses returned here, not resolve the host again,
so a DNS answer that changes between the check and the request cannot redirect it inward.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

from bridge.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

# Ranges Python's flags miss or that deserve a name of their own.
_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # embeds an IPv4 address
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # embeds an IPv4 address
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class CallbackTarget:
    url: str
    scheme: str
    host: str  # ASCII: an IDNA (punycode) name or an IP literal; what DNS, SNI and the certificate check use
    port: int
    addresses: tuple[str, ...]
    host_header: str = ""  # the Host header: the ASCII host, with the port when the URL names one


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refusal_reason(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why this address must not be called, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal_reason(embedded, allow_loopback=allow_loopback)
    if address.is_loopback:
        return None if allow_loopback else "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link-local (includes the cloud metadata service)"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CARRIER_GRADE_NAT:
        return "shared address space (RFC 6598)"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


def check_callback_url(
    url: object,
    *,
    allow_http: bool = False,
    allow_loopback: bool = False,
    resolver: Resolver | None = None,
) -> CallbackTarget:
    """Validate a client's callback URL and every address its host resolves to."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise _refused(f"must be a URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refused("is not a valid URL") from None
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed:
        raise _refused(f"must use {' or '.join(allowed)}")
    if not parts.hostname or parts.username or parts.password or any(c.isspace() for c in url):
        raise _refused("must name a host and carry no credentials or spaces")
    try:
        literal: IPAddress | None = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    host = str(literal) if literal else _ascii_host(parts.hostname)
    explicit_port = port
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        resolved = [str(literal)] if literal else list((resolver or system_resolver)(host, port))
    except (OSError, UnicodeError, ValueError):
        raise _refused(f"host '{host}' does not resolve") from None
    if not resolved:
        raise _refused(f"host '{host}' does not resolve")
    for text in resolved:
        reason = refusal_reason(ipaddress.ip_address(text.split("%", 1)[0]), allow_loopback=allow_loopback)
        if reason:
            raise _refused(f"points to a {reason} address")
    bracketed = f"[{host}]" if ":" in host else host
    return CallbackTarget(
        url=url,
        scheme=parts.scheme,
        host=host,
        port=port,
        addresses=tuple(resolved),
        host_header=f"{bracketed}:{explicit_port}" if explicit_port else bracketed,
    )


def _ascii_host(name: str) -> str:
    """A host name as DNS and TLS want it: non-ASCII names IDNA-encoded (UTS #46), others as written.

    ASCII names are left alone: IDNA 2008 refuses names DNS serves fine (underscores, for one).
    """
    if name.isascii():
        return name
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        raise _refused("names a host that is not a valid internationalised domain name") from None


def _refused(reason: str) -> InvalidRequest:
    return InvalidRequest(f"'callback_url' {reason}", code="invalid_callback_url", param="callback_url")
