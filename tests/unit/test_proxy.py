"""Which forwarded headers are believed, and what they say (no sockets: the pure part)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.server.proxy import ClientView, TrustedProxies, resolve

LOCAL = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8, ::1")


def x_headers(peer: str, trusted: TrustedProxies, xff: str = "", proto: str = "",
              host: str = "") -> ClientView | None:
    return resolve(peer, trusted, [], [xff] if xff else [], [proto] if proto else [],
                   [host] if host else [])


def test_parse_and_refuse_bad_items() -> None:
    assert not TrustedProxies.parse("")
    assert TrustedProxies.parse("*").trusts("203.0.113.9")
    assert LOCAL.trusts("10.1.2.3") and LOCAL.trusts("::1") and not LOCAL.trusts("10.0.0")
    assert LOCAL.trusts("::ffff:127.0.0.1")  # an IPv4 peer on a dual-stack socket
    assert str(TrustedProxies.parse("10.0.0.0/8,*")) == "10.0.0.0/8,*"
    with pytest.raises(ValueError, match=r"'proxy\.example' is not an IP address"):
        TrustedProxies.parse("127.0.0.1, proxy.example")


def test_an_untrusted_peer_is_never_believed() -> None:
    assert x_headers("203.0.113.9", LOCAL, "1.2.3.4", "https", "app.example") is None
    assert x_headers("127.0.0.1", TrustedProxies(), "1.2.3.4", "https", "app.example") is None


def test_one_proxy_in_front() -> None:
    view = x_headers("127.0.0.1", LOCAL, "198.51.100.7", "https", "app.example")
    assert view == ClientView("198.51.100.7", "https", "app.example")


def test_a_spoofed_chain_start_is_skipped() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; our proxy appended the real address.
    view = x_headers("127.0.0.1", LOCAL, "1.1.1.1, 198.51.100.7, 10.0.0.5", "https")
    assert view is not None and view.ip == "198.51.100.7"


def test_proto_and_host_per_hop_or_from_the_nearest() -> None:
    view = x_headers("127.0.0.1", LOCAL, "198.51.100.7, 10.0.0.5", "https, http")
    assert view is not None and view.scheme == "https"  # the client's hop
    view = x_headers("127.0.0.1", LOCAL, "198.51.100.7, 10.0.0.5", "http, https, https")
    assert view is not None and view.scheme == "https"  # not one per hop: the nearest


def test_forwarded_header_wins_over_x_headers() -> None:
    hops = [{"for": "[2001:db8::7]:4711", "proto": "https", "host": "app.example:8443"},
            {"for": "10.0.0.5", "proto": "http"}]
    view = resolve("127.0.0.1", LOCAL, hops, ["6.6.6.6"], ["http"], [])
    assert view == ClientView("2001:db8::7", "https", "app.example:8443")


def test_nonsense_values_are_ignored() -> None:
    view = x_headers("127.0.0.1", LOCAL, "unknown", "gopher", "evil.example/path")
    assert view == ClientView("127.0.0.1", None, None)
    view = x_headers("127.0.0.1", LOCAL, proto="WSS", host="[::1]:443")
    assert view == ClientView("127.0.0.1", "https", "[::1]:443")


_public = st.ip_addresses(v=4).filter(lambda ip: ip.is_global).map(str)
_proxies = st.lists(st.ip_addresses(network="10.0.0.0/8").map(str), max_size=5)


@given(junk=st.lists(_public, max_size=4), client=_public, hops=_proxies)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
        junk: list[str], client: str, hops: list[str]) -> None:
    """Whatever a client prepends, the address our trusted proxies saw is the one used."""
    view = x_headers("127.0.0.1", LOCAL, ", ".join([*junk, client, *hops]))
    assert view is not None and view.ip == client
    assert ipaddress.ip_address(view.ip)
