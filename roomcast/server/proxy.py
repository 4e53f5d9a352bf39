"""Behind a reverse proxy: who the client is, and which scheme and host it used.

A proxy that terminates TLS reaches roomcast over plain HTTP from its own
address; it tells the truth in ``Forwarded`` (RFC 7239) or ``X-Forwarded-For``
/ ``-Proto`` / ``-Host``. Anyone can send those headers, so they are believed
only from peers listed in ``ROOMCAST_TRUSTED_PROXIES``. The middleware rewrites
``request.remote``, ``.scheme`` and ``.host`` once (``request.clone``, the aiohttp
way), so the own-origin check, ``Secure`` cookies, URLs in answers and logs all
see the client's view.

aiohttp-remotes was not used: its strict mode answers 400 to every peer that is
not a trusted proxy, and a gateway must also serve direct clients and probes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: A host as a browser puts it in Host: name or IPv4 or [IPv6], with an optional port.
_HOST: Final = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$")
_SCHEMES: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
#: Most hops believed in one chain: a longer header is someone's padding.
MAX_HOPS: Final = 32


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """Which peers may speak for the client (``*``: every peer)."""

    networks: tuple[IPNetwork, ...] = ()
    everyone: bool = False

    @classmethod
    def parse(cls, raw: str) -> TrustedProxies:
        """``"127.0.0.1, 10.0.0.0/8, ::1"`` or ``"*"``; raises ValueError naming a bad item."""
        networks: list[IPNetwork] = []
        everyone = False
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            if item == "*":
                everyone = True
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return cls(tuple(networks), everyone)

    def __bool__(self) -> bool:
        return self.everyone or bool(self.networks)

    def trusts(self, address: str | None) -> bool:
        ip = _ip(address)
        if ip is None:
            # A Unix socket has no address: only a local proxy can be on the other end.
            return address == "" and self.everyone
        return self.everyone or any(ip in net for net in self.networks)

    def __str__(self) -> str:
        items = [str(n) for n in self.networks] + (["*"] if self.everyone else [])
        return ",".join(items)


def _ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not address:
        return None
    address = address.strip()
    if address.startswith("["):  # RFC 7239: "[2001:db8::1]:4711"
        address = address[1:].partition("]")[0]
    elif address.count(":") == 1:  # "192.0.2.1:4711"
        address = address.partition(":")[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    # An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True, slots=True)
class ClientView:
    """The client's address and the scheme and host it addressed."""

    ip: str
    scheme: str | None
    host: str | None


def resolve(
    peer: str | None,
    trusted: TrustedProxies,
    forwarded: Sequence[dict[str, str]],
    x_for: Sequence[str],
    x_proto: Sequence[str],
    x_host: Sequence[str],
) -> ClientView | None:
    """The client's view from a trusted peer's headers; None when there is nothing to believe.

    The chain of addresses is read from the right (nearest hop) and every trusted
    proxy is skipped: the first address not trusted is the client. Its scheme
    and host come from the same hop when the header lists one per hop, else
    from the nearest one (the value our own proxy wrote).
    """
    if not trusted or not trusted.trusts(peer):
        return None
    if forwarded:
        hops = forwarded[-MAX_HOPS:]
        chain = [hop.get("for", "") for hop in hops]
        protos = [hop.get("proto", "") for hop in hops]
        hosts = [hop.get("host", "") for hop in hops]
    else:
        chain = _split(x_for)
        protos, hosts = _split(x_proto), _split(x_host)
    if not chain and not protos and not hosts:
        return None
    index = len(chain) - 1
    while index > 0 and trusted.trusts(chain[index]):
        index -= 1
    client = chain[index].strip() if chain else ""
    ip = _ip(client)
    return ClientView(
        ip=str(ip) if ip is not None else (peer or ""),
        scheme=_SCHEMES.get(_pick(protos, index, len(chain)).lower()),
        host=_valid_host(_pick(hosts, index, len(chain))),
    )


def _split(values: Sequence[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",")][-MAX_HOPS:]


def _pick(values: list[str], index: int, hops: int) -> str:
    """The value of hop ``index`` when one per hop is listed, else the nearest hop's."""
    if not values:
        return ""
    return values[index] if len(values) == hops and index >= 0 else values[-1]


def _valid_host(host: str) -> str | None:
    host = host.strip()
    return host if _HOST.match(host) else None


def client_ip(request: web.Request) -> str:
    """The client's IP address, for logs and per-IP limits.

    The peer's address, or the one a trusted proxy forwarded (see the module
    docstring); ``""`` for a Unix socket peer without a forwarded address.
    """
    return request.remote or ""


def middleware(trusted: TrustedProxies) -> Middleware:
    """An aiohttp middleware applying trusted forwarded headers to every request."""

    @web.middleware
    def forwarded_headers(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        # Not a coroutine: its frame would stay for a WebSocket's whole life.
        view = resolve(
            request.remote,
            trusted,
            [dict(hop) for hop in request.forwarded] if hdrs.FORWARDED in request.headers else [],
            request.headers.getall(hdrs.X_FORWARDED_FOR, []),
            request.headers.getall(hdrs.X_FORWARDED_PROTO, []),
            request.headers.getall(hdrs.X_FORWARDED_HOST, []),
        )
        if view is not None:
            request = request.clone(
                remote=view.ip,
                scheme=view.scheme or request.scheme,
                host=view.host or request.host,
            )
        return handler(request)

    return forwarded_headers
