"""Where webhooks may go: the URL rules, and the SSRF rule on names and on the address connected to.
Names are resolved by a resolver passed in (a table), so no test depends on DNS."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from checkout_core.webhooks.addresses import UnsafeUrl, check_connected_peer, check_endpoint_url, is_public

NAMES = {
    "hooks.merchant.example": ["93.184.215.14"],
    "internal.merchant.example": ["10.0.0.7"],
    "mixed.merchant.example": ["93.184.215.14", "127.0.0.1"],
    "v6.merchant.example": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "mapped.merchant.example": ["::ffff:169.254.169.254"],
}


def resolve(host: str, port: int) -> Iterable[str]:
    if host not in NAMES:
        raise OSError("no such name")
    return NAMES[host]


@pytest.mark.parametrize(
    "url", ["https://hooks.merchant.example/webhooks", "https://v6.merchant.example:8443/in?x=1"]
)
def test_public_https_urls_are_accepted(url: str) -> None:
    assert check_endpoint_url(url, allow_private=False, resolve=resolve) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.merchant.example/webhooks", "https"),
        ("https://user:pw@hooks.merchant.example/", "credentials"),
        ("https://internal.merchant.example/", "public address"),
        ("https://mixed.merchant.example/", "public address"),
        ("https://mapped.merchant.example/", "public address"),  # the metadata service, IPv4-mapped
        ("https://127.0.0.1/", "public address"),
        ("https://[::1]/", "public address"),
        ("https://169.254.169.254/latest/meta-data", "public address"),
        ("https://nowhere.merchant.example/", "does not resolve"),
        ("https://hooks.merchant.example/" + "a" * 2048, "longer than"),
        ("https://hooks.merchant.example/#x", "not a valid URL"),
    ],
)
def test_unsafe_urls_are_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl, match=why):
        check_endpoint_url(url, allow_private=False, resolve=resolve)


def test_locally_loopback_and_plain_http_are_allowed() -> None:
    url = "http://127.0.0.1:8080/hooks"
    assert check_endpoint_url(url, allow_private=True, resolve=resolve) == url


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("224.0.0.1", False),
    ],
)
def test_the_address_connected_to_must_be_public(address: str, public: bool) -> None:
    assert is_public(address) is public
    if public:
        check_connected_peer(address, allow_private=False)
    else:
        with pytest.raises(UnsafeUrl):
            check_connected_peer(address, allow_private=False)
        check_connected_peer(address, allow_private=True)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254, the metadata service
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b::5db8:d70e", True),  # NAT64 of a public address
        ("64:ff9b:1::a00:1", False),  # a local-use NAT64 prefix
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", False),  # 6to4 of 192.168.1.1
        ("2002:5db8:d70e::1", True),  # 6to4 of a public address
        ("::127.0.0.1", False),  # IPv4-compatible
        ("::a9fe:a9fe", False),
        ("::ffff:0:a00:1", False),  # SIIT (IPv4-translated) of 10.0.0.1
        ("::ffff:10.0.0.1", False),  # IPv4-mapped
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo whose client is 10.0.0.1
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
    ],
)
def test_an_ipv6_address_is_judged_by_the_ipv4_address_it_embeds(address: str, public: bool) -> None:
    assert is_public(address) is public
