"""The address policy: which targets a hook may send to.

Loopback, private, link-local, multicast, reserved and other non-global
addresses are refused while ``BLOCK_PRIVATE_NETWORKS`` is on. The check runs
when a hook is saved (on every address the host resolves to) and again at send
time (``transport.py``) on every address a connection is about to be opened
to and on the peer a request goes out to, which defeats DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from functools import lru_cache
from urllib.parse import urlsplit

import idna

from .exceptions import BlockedNetworkError, InvalidTargetURLError
from .imports import shown
from .settings import hooks_settings
from .text import is_hidden

# Not public, though some Python versions call them global.
EXTRA_BLOCKED = (
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("fec0::/10"),  # site-local (deprecated, still routed privately)
)
# IPv6 prefixes of NAT64 (RFC 6052): the well-known one carries the IPv4 address in
# its last 32 bits; the local-use one (RFC 8215) is split into networks of any prefix
# length from /48, each carrying its IPv4 address where its own length puts it.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
# Where an IPv4 address sits after a NAT64 prefix of each length (RFC 6052, section
# 2.2): its bits, high to low, as (first bit, bit count) pairs; bits 64-71 are never used.
NAT64_LAYOUTS = {
    48: ((48, 16), (72, 16)),
    56: ((56, 8), (72, 24)),
    64: ((72, 32),),
    96: ((96, 32),),
}
# An IPv6 literal's authority as libcurl takes it: hex digits, colons and dots, an
# optional zone ("%25" or "%", then 1 to 15 unreserved characters), nothing after the
# bracket but a port.
_IPV6_AUTHORITY = re.compile(
    r"\[[0-9A-Fa-f:.]+(?:%(?:25)?(?P<zone>[A-Za-z0-9._~-]*))?\](?::[0-9]*)?"
)
# Characters libcurl refuses in a host name ("Bad hostname"); spaces, controls, "%",
# "@" and the URL's delimiters are refused before.
_NOT_IN_HOST_NAMES = frozenset("!\"$&'()*+,;<=>\\^`{|}")


@lru_cache(maxsize=4096)
def is_blocked_address(address: str) -> bool:
    """True for any address that is not a public unicast one.

    IPv6 addresses that embed an IPv4 one (mapped, 6to4, Teredo, NAT64) are
    judged by the IPv4 address they lead to.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded:
            return any(is_blocked_address(str(ipv4)) for ipv4 in embedded)
    return (
        not ip.is_global
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or any(ip in network for network in EXTRA_BLOCKED if network.version == ip.version)
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses ``ip`` may lead to. Several for a local-use NAT64 address:
    which prefix length the network's translator uses is not known here, so each
    one's reading must be a public address."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return [ip.teredo[1]]
    if ip in NAT64_WELL_KNOWN:
        return [_nat64_ipv4(ip, 96)]
    if ip in NAT64_LOCAL_USE:
        return [_nat64_ipv4(ip, length) for length in NAT64_LAYOUTS]
    return []


def _nat64_ipv4(ip: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    bits = int(ip)
    ipv4 = 0
    for first, count in NAT64_LAYOUTS[prefix_length]:
        ipv4 = (ipv4 << count) | (bits >> (128 - first - count)) & ((1 << count) - 1)
    return ipaddress.IPv4Address(ipv4)


def check_address(address: str, *, host: str = "") -> None:
    """Raise ``BlockedNetworkError`` when the policy forbids ``address``."""
    if hooks_settings.BLOCK_PRIVATE_NETWORKS and is_blocked_address(address):
        shown = f"{host} ({address})" if host and host != address else address
        raise BlockedNetworkError(
            f"{shown} is a loopback, private, link-local or reserved address; "
            "targets on non-public networks are blocked (BLOCK_PRIVATE_NETWORKS)"
        )


def check_target_url(url: str, *, resolve_host: bool = True) -> None:
    """Validate a hook's target URL: absolute http(s), allowed by the policy.

    The host is judged as libcurl will connect to it: ``localhost`` and names
    under ``.localhost`` are loopback, a trailing dot changes nothing, and the
    old IPv4 spellings (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) are the
    address they stand for. A host name that does not resolve now is accepted;
    the send-time check on the connected address is the one that cannot be fooled.
    Without ``resolve_host`` no DNS lookup is made (addresses and ``localhost``
    are still judged): an input layer reports the URL with its other fields,
    the service layer resolves once.
    """
    if not isinstance(url, str):
        raise InvalidTargetURLError("the target URL must be a string")
    bad = next((char for char in url if _is_space_or_control(char)), None)
    if bad is not None:
        raise InvalidTargetURLError(
            f"invalid target URL: it contains {unicodedata.name(bad, repr(bad))} "
            f"({bad!r}); spaces and control characters must be percent-encoded"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidTargetURLError(f"invalid target URL: {exc}") from exc
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidTargetURLError("the target URL must be an absolute http:// or https:// URL")
    if "@" in parts.netloc:  # empty ones too: "http://@host/", "http://:@host/"
        raise InvalidTargetURLError("the target URL must not contain credentials")
    if port == 0:
        raise InvalidTargetURLError("invalid target URL: port 0 is no port to connect to")
    if "[" in parts.netloc and not _is_ipv6_authority(parts.netloc):
        raise InvalidTargetURLError(
            f"invalid target URL: {shown(parts.netloc)} is no [IPv6 address] as libcurl takes "
            "it (a zone after %25 has 1 to 15 letters, digits, '.', '_', '~' or '-'), "
            "followed by nothing but a port"
        )
    addresses = host_addresses(parts.hostname, port or 443, resolve_name=resolve_host)
    if not hooks_settings.BLOCK_PRIVATE_NETWORKS:
        return
    for address in addresses:
        check_address(address, host=parts.hostname)


def _is_ipv6_authority(netloc: str) -> bool:
    match = _IPV6_AUTHORITY.fullmatch(netloc)
    return match is not None and (match["zone"] is None or 0 < len(match["zone"]) <= 15)


def _is_space_or_control(char: str) -> bool:
    return char.isspace() or is_hidden(char)


def host_addresses(host: str, port: int, *, resolve_name: bool = True) -> list[str]:
    """The addresses a connection to ``host`` may go to, judged as libcurl does;
    none for a name that does not resolve now, or that is not looked up
    (``resolve_name=False``).

    Raises ``InvalidTargetURLError`` for a host libcurl would not take as written:
    percent-encoded, a number that is no IPv4 address, a name IDNA cannot encode.
    """
    if _is_ip(host):
        return [host]
    if "%" in host:
        raise InvalidTargetURLError(
            f"invalid host name {shown(host)}: a host name cannot be percent-encoded"
        )
    # Judged as it goes on the wire: mapped by UTS #46 first (``localhost。`` and
    # fullwidth digits are ``localhost.`` and ASCII digits there).
    name = ascii_host(host).rstrip(".").lower()
    if not name:
        raise InvalidTargetURLError(f"invalid host name {shown(host)}")
    bad = next((char for char in name if char in _NOT_IN_HOST_NAMES), None)
    if bad is not None:
        raise InvalidTargetURLError(f"invalid host name {shown(host)}: it contains {bad!r}")
    if _is_ip(name):
        return [name]
    if len(name) > 253 or not all(0 < len(label) <= 63 for label in name.split(".")):
        # DNS's limits: Python's resolver refuses such a name with a UnicodeError.
        raise InvalidTargetURLError(
            f"invalid host name {shown(host)}: a name has labels of 1 to 63 characters "
            "and at most 253 in all"
        )
    if name == "localhost" or name.endswith(".localhost"):
        return ["127.0.0.1", "::1"]
    ipv4 = _legacy_ipv4(name)
    if ipv4 is not None:
        return [ipv4]
    return resolve(name, port) if resolve_name else []


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _legacy_ipv4(name: str) -> str | None:
    """The address of an IPv4 host in any spelling libcurl and inet_aton accept
    (1 to 4 parts, each decimal, octal with a leading 0 or hex with 0x), or None
    for a name. A host whose last label is a number is an address or invalid."""
    labels = name.split(".")
    if not labels[-1] or not re.fullmatch(r"[0-9]+|0[xX][0-9a-fA-F]*", labels[-1]):
        return None
    try:
        numbers = [_ipv4_number(label) for label in labels]
    except ValueError:
        raise InvalidTargetURLError(
            f"invalid host name {shown(name)}: not an IPv4 address"
        ) from None
    *high, last = numbers
    if len(labels) > 4 or any(n > 255 for n in high) or last >= 256 ** (5 - len(labels)):
        raise InvalidTargetURLError(f"invalid host name {shown(name)}: not an IPv4 address")
    value = last
    for position, number in enumerate(high):
        value += number << (8 * (3 - position))
    return str(ipaddress.IPv4Address(value))


def _ipv4_number(label: str) -> int:
    if re.fullmatch(r"0[xX][0-9a-fA-F]*", label):
        return int(label[2:] or "0", 16)
    if re.fullmatch(r"0[0-7]*", label):
        return int(label, 8)
    if re.fullmatch(r"[1-9][0-9]*", label):
        return int(label)
    raise ValueError(label)


def ascii_host(host: str) -> str:
    """``host`` as DNS knows it: an international name in IDNA, mapped by UTS #46
    as browsers map it (``faß.de`` is ``xn--fa-hia.de``, not ``fass.de``).

    Raises ``InvalidTargetURLError`` for a name IDNA cannot encode.
    """
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidTargetURLError(f"invalid host name {shown(host)}: {exc}") from exc


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` stands for now; none when it does not resolve."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return [host]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(ascii_host(host), port, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return sorted({info[4][0] for info in infos})
