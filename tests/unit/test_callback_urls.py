"""The SSRF guard refuses every internal address family, however it is spelled or resolved."""

import pytest

from bridge.errors import InvalidRequest
from bridge.outbound.ssrf_guard import check_callback_url


def resolving_to(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "169.254.169.254",
        "169.254.0.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "2002:a00:1::",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_internal_addresses_are_refused_whatever_the_host_name(address: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_callback_url("https://hooks.example.com/in", resolver=resolving_to(address))
    assert caught.value.param == "callback_url"
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "literal",
    ["https://127.0.0.1/x", "https://[::1]/x", "https://169.254.169.254/latest/meta-data", "https://[::ffff:7f00:1]/"],
)
def test_internal_ip_literals_are_refused_without_asking_dns(literal: str) -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal must not be resolved")

    with pytest.raises(InvalidRequest):
        check_callback_url(literal, resolver=no_dns)


def test_one_internal_answer_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(InvalidRequest):
        check_callback_url("https://hooks.example.com/", resolver=resolving_to("93.184.216.34", "10.0.0.5"))


def test_public_https_url_is_accepted_with_the_addresses_to_connect_to() -> None:
    target = check_callback_url(
        "https://hooks.example.com:8443/in?x=1", resolver=resolving_to("93.184.216.34", "2606:2800:220:1::1")
    )
    assert (target.host, target.port, target.scheme) == ("hooks.example.com", 8443, "https")
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1::1")


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/",
        "ftp://hooks.example.com/",
        "https://user:pw@hooks.example.com/",
        "https:///nohost",
        "not a url",
        "",
        42,
        "https://hooks.example.com:99999/",
    ],
)
def test_malformed_or_plain_http_urls_are_refused_by_default(url: object) -> None:
    with pytest.raises(InvalidRequest):
        check_callback_url(url, resolver=resolving_to("93.184.216.34"))


def test_unresolvable_host_is_refused() -> None:
    def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(InvalidRequest, match="does not resolve"):
        check_callback_url("https://nowhere.invalid/", resolver=nxdomain)


def test_loopback_and_http_only_with_the_explicit_local_allowance() -> None:
    target = check_callback_url("http://127.0.0.1:9000/hook", allow_http=True, allow_loopback=True)
    assert target.addresses == ("127.0.0.1",)
    with pytest.raises(InvalidRequest):
        check_callback_url("http://10.0.0.1/hook", allow_http=True, allow_loopback=True)
