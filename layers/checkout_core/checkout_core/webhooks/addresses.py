"""Where a webhook may be sent: https, no credentials, at most 2048 characters, and, in
deployments, never to a loopback, private, link-local or otherwise non-public address (SSRF). The name is
checked when an endpoint is saved, and the address actually connected to when a delivery is made: a
name can resolve to a public address at one moment and an internal one the next."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
Resolver = Callable[[str, int], Iterable[str]]


class UnsafeUrl(ValueError):
    pass


def _resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use translation prefixes
SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765's IPv4-translated form


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it embeds one: IPv4-mapped (::ffff:a.b.c.d),
    IPv4-translated (SIIT, ::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d),
    6to4 (2002:aabb:ccdd::) and Teredo (its server and client addresses)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    packed = int(ip)
    if ip in SIIT or ip in NAT64:
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if packed >> 32 == 0 and packed > 1:  # IPv4-compatible (deprecated); ::, ::1 are themselves
        return ipaddress.IPv4Address(packed)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def is_public(address: str) -> bool:
    """Whether an IP address is one a merchant's server may have on the internet. An IPv6 address that
    embeds an IPv4 one is judged by that IPv4 address too (a NAT64 or 6to4 gateway would reach it)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL:
            return False
        if ip.teredo is not None:
            return all(is_public(str(part)) for part in ip.teredo)
        inner = embedded_ipv4(ip)
        if inner is not None:
            return inner.is_global and not inner.is_multicast
    return ip.is_global and not ip.is_multicast


def check_endpoint_url(url: str, allow_private: bool, resolve: Resolver = _resolve) -> str:
    """The URL, or UnsafeUrl saying why it is refused."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("url is not a valid URL") from exc
    if parts.scheme not in (("https", "http") if allow_private else ("https",)):
        raise UnsafeUrl("url must use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl("url must not carry credentials")
    if not parts.hostname or any(ch.isspace() for ch in url) or "#" in url:
        raise UnsafeUrl("url is not a valid URL")
    if allow_private:
        return url
    try:
        addresses = [str(ipaddress.ip_address(parts.hostname))]  # an address written in the URL
    except ValueError:
        try:
            addresses = list(resolve(parts.hostname, port or 443))
        except OSError as exc:
            raise UnsafeUrl("url's host does not resolve") from exc
    if not addresses or not all(is_public(address) for address in addresses):
        raise UnsafeUrl("url must reach a public address (not loopback, private or link-local)")
    return url


def check_connected_peer(address: str, allow_private: bool) -> None:
    """After connecting, before sending: the address the socket actually reached must be public."""
    if not allow_private and not is_public(address):
        raise UnsafeUrl("the endpoint resolved to a non-public address")  # which one is not said
