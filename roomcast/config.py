"""Settings: every option has a flag, an environment variable and a default."""

from __future__ import annotations

import argparse
import os
import re
import secrets
import ssl
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from roomcast.exceptions import ConfigError
from roomcast.history.policy import HistoryPolicy
from roomcast.server.proxy import TrustedProxies

#: RFC 7518 (3.2): an HS256 key must be at least as long as the hash, 256 bits.
MIN_SECRET_BYTES = 32


def check_secret(secret: str, what: str = "JWT_SECRET") -> str:
    """``secret`` if it is long enough to sign HS256 tokens, else a ConfigError saying so."""
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{what} is too short: an HS256 secret must be at least {MIN_SECRET_BYTES} bytes "
            f"(RFC 7518), this one has {size}"
        )
    return secret


def _port(raw: str) -> int:
    if not raw.strip().isdigit() or not 0 <= int(raw) <= 65535:
        raise ValueError("not a port number (0-65535)")
    return int(raw)


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _origins(raw: str) -> frozenset[str]:
    out: set[str] = set()
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if item == "*":
            out.add(item)
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"{item!r} is not an origin like https://app.example.com")
        out.add(f"{parts.scheme}://{parts.netloc}".lower())
    return frozenset(out)


def _tristate(raw: str) -> bool | None:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("", "auto"):
        return None
    raise ValueError("must be on, off or auto")


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be a number >= 0")
    return value


def _on_off(raw: str) -> bool:
    value = _tristate(raw)
    if value is None:
        raise ValueError("must be on or off")
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < float("inf"):
        raise ValueError("must be a number of seconds >= 0")
    return value


def _names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError("must be one of " + ", ".join(allowed))
        return raw

    return parse


def _path(raw: str) -> str:
    return raw


def _prefix(raw: str) -> str:
    """``/api`` or ``/api/v1``; empty for none (the Go gateway's API_PREFIX)."""
    value = raw.strip().rstrip("/")
    if value and (not value.startswith("/") or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value)):
        raise ValueError("must be a path like /api (letters, digits, . _ ~ -)")
    return value


def _opt(env: str, parse: Callable[[str], Any], help: str, default: Any = None) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "help": help})


@dataclass
class Settings:
    """The gateway's configuration; see ``roomcast serve --help``."""

    host: str = _opt("ROOMCAST_HOST", str, "interface to listen on", "127.0.0.1")
    port: int = _opt("ROOMCAST_PORT", _port, "TCP port (0 picks a free one)", 8080)
    jwt_secret: str | None = _opt(
        "JWT_SECRET", str, "HS256 secret of the gateway's tokens (default: a generated dev secret)"
    )
    jwt_issuer: str | None = _opt("JWT_ISSUER", str, "required iss claim, e.g. go-falcon")
    jwt_secret_algorithms: tuple[str, ...] = _opt(
        "ROOMCAST_JWT_SECRET_ALGORITHMS", _names, "algorithms JWT_SECRET verifies", ("HS256",)
    )
    jwt_public_key: str | None = _opt(
        "ROOMCAST_JWT_PUBLIC_KEY", _path, "PEM public key (RSA, EC, Ed25519) verifying tokens"
    )
    jwt_public_key_algorithms: tuple[str, ...] | None = _opt(
        "ROOMCAST_JWT_PUBLIC_KEY_ALGORITHMS", _names,
        "algorithms the public key verifies (default: RS256, ES256/384/512 or EdDSA by key)",
    )
    jwks_url: str | None = _opt("ROOMCAST_JWKS_URL", str, "identity provider's JWKS URL")
    jwks_algorithms: tuple[str, ...] = _opt(
        "ROOMCAST_JWKS_ALGORITHMS", _names, "algorithms the JWKS keys verify",
        ("RS256", "ES256", "EdDSA"),
    )
    jwks_refresh: float = _opt(
        "ROOMCAST_JWKS_REFRESH", _positive_float, "seconds between JWKS refreshes", 300.0
    )
    jwks_min_interval: float = _opt(
        "ROOMCAST_JWKS_MIN_INTERVAL", _seconds,
        "least seconds between JWKS fetches caused by an unknown kid", 10.0,
    )
    jwt_audience: tuple[str, ...] = _opt(
        "ROOMCAST_JWT_AUDIENCE", _names, "accepted aud values, comma-separated (default: any)", ()
    )
    jwt_leeway: float = _opt(
        "ROOMCAST_JWT_LEEWAY", _seconds, "seconds of clock skew allowed on exp/nbf/iat", 5.0
    )
    jwt_user_claim: str = _opt(
        "ROOMCAST_JWT_USER_CLAIM", str, "claim naming the user (user_id as go-falcon, or sub)",
        "user_id",
    )
    token_expiry: bool = _opt(
        "ROOMCAST_TOKEN_EXPIRY", _on_off, "close connections when their token expires", True
    )
    expiry_warning: float = _opt(
        "ROOMCAST_EXPIRY_WARNING", _seconds, "seconds before expiry a connection is warned", 60.0
    )
    revocation_ttl: float = _opt(
        "ROOMCAST_REVOCATION_TTL", _positive_float,
        "seconds a revocation is kept (longer than your longest token lifetime)", 7 * 86400.0,
    )
    websocket_path: str = _opt("WEBSOCKET_PATH", str, "WebSocket endpoint", "/websocket/connect")
    allowed_origins: frozenset[str] = _opt(
        "WEBSOCKET_ALLOWED_ORIGINS",
        _origins,
        "comma-separated browser origins allowed to connect (our own origin always is)",
        frozenset(),
    )
    websocket_url: str | None = _opt("WEBSOCKET_URL", str, "public URL clients use")
    api_prefix: str = _opt(
        "API_PREFIX", _prefix, "path prefix of the HTTP API (status, admin API, docs)", ""
    )
    # RUF009: a frozen dataclass is as immutable as the frozensets above.
    trusted_proxies: TrustedProxies = _opt(  # noqa: RUF009
        "ROOMCAST_TRUSTED_PROXIES",
        TrustedProxies.parse,
        "comma-separated IPs/CIDRs of reverse proxies whose Forwarded / X-Forwarded-* "
        "headers are believed (* = any peer: only when nothing else can reach the gateway)",
        TrustedProxies(),
    )
    redis_url: str | None = _opt("REDIS_URL", str, "Redis for multi-instance pub/sub")
    membership_url: str | None = _opt(
        "ROOMCAST_MEMBERSHIP_URL",
        str,
        "membership store: sqlite path, redis://, postgresql:// or the application's "
        "http(s):// URL template with {user_id} "
        "(default: Redis when REDIS_URL is set, else DATABASE_URL, else the SQLite file)",
    )
    membership_cache: float = _opt(
        "ROOMCAST_MEMBERSHIP_CACHE", _positive_float,
        "seconds an http(s) membership answer is reused", 30.0,
    )
    membership_timeout: float = _opt(
        "ROOMCAST_MEMBERSHIP_TIMEOUT", _positive_float,
        "seconds to wait for the application's membership answer", 2.0,
    )
    membership_authorization: str | None = _opt(
        "ROOMCAST_MEMBERSHIP_AUTHORIZATION", str,
        "Authorization header sent to the http(s) membership URL (e.g. 'Bearer ...')",
    )
    store_timeout: float = _opt(
        "ROOMCAST_STORE_TIMEOUT", _positive_float,
        "seconds a handshake waits for its store reads (memberships, revocations) and an API "
        "call for its answer before 503 (a change still completes when the store answers)",
        2.0,
    )
    database_url: str | None = _opt("DATABASE_URL", str, "PostgreSQL for memberships")
    sqlite_path: str = _opt("ROOMCAST_DB", _path, "SQLite membership file", "roomcast.db")
    dev_login: bool | None = _opt(
        "ROOMCAST_DEV_LOGIN", _tristate, "dev login page: on, off, auto (on without JWT_SECRET)"
    )
    demo: bool | None = _opt(
        "ROOMCAST_DEMO", _tristate, "demo app at /: on, off, auto (= dev login)"
    )
    ssl_certfile: str | None = _opt("ROOMCAST_SSL_CERTFILE", _path, "TLS certificate (PEM)")
    ssl_keyfile: str | None = _opt("ROOMCAST_SSL_KEYFILE", _path, "TLS private key (PEM)")
    max_message_size: int = _opt(
        "ROOMCAST_MAX_MESSAGE_SIZE", _positive_int, "largest client frame in bytes", 65536
    )
    max_queue_bytes: int = _opt(
        "ROOMCAST_MAX_QUEUE_BYTES", _positive_int, "per-connection write queue limit", 1 << 20
    )
    handshake_timeout: float = _opt(
        "ROOMCAST_HANDSHAKE_TIMEOUT", _positive_float,
        "seconds a new TCP connection has to send its request head and finish the "
        "WebSocket handshake", 10.0,
    )
    body_timeout: float = _opt(
        "ROOMCAST_BODY_TIMEOUT", _positive_float,
        "seconds an HTTP API request's body may take to arrive (then 408)", 10.0,
    )
    max_header_bytes: int = _opt(
        "ROOMCAST_MAX_HEADER_BYTES", _positive_int,
        "largest request head (request line and headers) in bytes", 32768,
    )
    max_pending_handshakes: int = _opt(
        "ROOMCAST_MAX_PENDING_HANDSHAKES", _positive_int,
        "connections allowed to be in their handshake at once (the oldest is cut)", 1024,
    )
    fragment_timeout: float = _opt(
        "ROOMCAST_FRAGMENT_TIMEOUT", _positive_float,
        "seconds a client may take to finish a fragmented message (then closed with 1008)",
        10.0,
    )
    ping_interval: float = _opt(
        "ROOMCAST_PING_INTERVAL", _positive_float, "seconds between protocol pings", 30.0
    )
    ping_timeout: float = _opt(
        "ROOMCAST_PING_TIMEOUT", _positive_float, "close a connection silent this long", 60.0
    )
    client_rate: float = _opt(
        "ROOMCAST_CLIENT_RATE", _positive_float, "client messages per second per connection", 50.0
    )
    client_burst: int = _opt(
        "ROOMCAST_CLIENT_BURST", _positive_int, "client message burst allowance", 200
    )
    client_frame_bytes: int = _opt(
        "ROOMCAST_CLIENT_FRAME_BYTES", _non_negative_int,
        "a client frame counts once more against the message rate per this many bytes "
        "(characters of a text frame) beyond the first (0: every frame counts once)", 8192,
    )
    flood_close: float = _opt(
        "ROOMCAST_FLOOD_CLOSE", _positive_float,
        "seconds a connection may stay over its message rate (it is paused meanwhile) "
        "before it is closed with 1008", 10.0,
    )
    max_connections_per_user: int = _opt(
        "ROOMCAST_MAX_CONNECTIONS_PER_USER", _non_negative_int,
        "connections one user may hold on this instance (0: no limit)", 32,
    )
    max_connections_per_ip: int = _opt(
        "ROOMCAST_MAX_CONNECTIONS_PER_IP", _non_negative_int,
        "connections one client IP may hold on this instance (0: no limit; behind a proxy "
        "set ROOMCAST_TRUSTED_PROXIES, or every client has the proxy's IP)", 512,
    )
    room_event_threshold: int = _opt(
        "ROOMCAST_ROOM_EVENT_THRESHOLD",
        _positive_int,
        "rooms above this many members get coalesced room_update events",
        100,
    )
    room_event_interval: float = _opt(
        "ROOMCAST_ROOM_EVENT_INTERVAL", _positive_float, "seconds between coalesced events", 1.0
    )
    room_event_rate: float = _opt(
        "ROOMCAST_ROOM_EVENT_RATE", _positive_float,
        "room_update events per second per room (bursts of twice that); beyond it the "
        "room's events are coalesced", 10.0,
    )
    max_members_listed: int = _opt(
        "ROOMCAST_MAX_MEMBERS_LISTED", _positive_int,
        "most connections one members reply lists (member_count says how many there are)",
        500,
    )
    admin_scope: str = _opt(
        "ROOMCAST_ADMIN_SCOPE", str, "scope that makes a user admin", "websocket:admin"
    )
    admin_users: frozenset[str] = _opt(
        "ROOMCAST_ADMIN_USERS",
        lambda raw: frozenset(u.strip() for u in raw.split(",") if u.strip()),
        "comma-separated user ids that are administrators",
        frozenset(),
    )
    api_key: str | None = _opt("ROOMCAST_API_KEY", str, "X-API-Key of app backends")
    server_id: str = _opt("ROOMCAST_SERVER_ID", str, "this instance's id (default: a UUID)", "")
    broker_mode: str = _opt(
        "ROOMCAST_BROKER_MODE",
        _choice("compat", "sharded", "cluster"),
        "Redis channels: compat, sharded, or cluster (REDIS_URL is a node of a Redis "
        "Cluster: sharded channels, rooms spread over its masters)",
        "compat",
    )

    instance_ttl: float = _opt(
        "ROOMCAST_INSTANCE_TTL",
        _positive_float,
        "with Redis: seconds after which a silent instance's connections vanish from listings",
        15.0,
    )
    presence_grace: float = _opt(
        "ROOMCAST_PRESENCE_GRACE",
        _non_negative_float,
        "seconds a user stays online after their last connection closed (a reconnect "
        "within it shows nothing)",
        5.0,
    )
    history_user_size: int = _opt(
        "ROOMCAST_HISTORY_USER_SIZE", _non_negative_int,
        "publications kept per user: room for recovery (0: no history)", 100,
    )
    history_user_ttl: float = _opt(
        "ROOMCAST_HISTORY_USER_TTL", _seconds,
        "seconds a user: room's history is kept after its last publication (0: no history)",
        300.0,
    )
    history_group_size: int = _opt(
        "ROOMCAST_HISTORY_GROUP_SIZE", _non_negative_int,
        "publications kept per group: room for recovery (0: no history)", 100,
    )
    history_group_ttl: float = _opt(
        "ROOMCAST_HISTORY_GROUP_TTL", _seconds,
        "seconds a group: room's history is kept after its last publication (0: no history)",
        300.0,
    )
    history_meta_ttl: float = _opt(
        "ROOMCAST_HISTORY_META_TTL", _positive_float,
        "seconds a room's epoch and top offset outlive its last publication", 7 * 86400.0,
    )
    history_snapshot: str | None = _opt(
        "ROOMCAST_HISTORY_SNAPSHOT", _path,
        "without Redis: file the history is saved to at a graceful stop and loaded from at "
        "start, so clients recover across a restart (default: none, a restart loses it)",
    )
    recovery_max: int | None = _opt(
        "ROOMCAST_RECOVERY_MAX", _non_negative_int,
        "most missed publications one recovery replays (default: the larger history size)",
    )
    recover_wait: float = _opt(
        "ROOMCAST_RECOVER_WAIT", _positive_float,
        "seconds a ?recover=1 connection waits for its recover message", 2.0,
    )
    permessage_deflate: bool = _opt(
        "ROOMCAST_PERMESSAGE_DEFLATE", _on_off,
        "compress messages for clients that offer permessage-deflate (once per message "
        "for every such recipient, no context takeover)", False,
    )
    workers: int = _opt(
        "ROOMCAST_WORKERS", _positive_int,
        "worker processes sharing the port (SO_REUSEPORT; more than 1 needs REDIS_URL)", 1,
    )
    shutdown_timeout: float = _opt(
        "ROOMCAST_SHUTDOWN_TIMEOUT", _positive_float, "seconds to close clients on SIGTERM", 5.0
    )
    log_level: str = _opt(
        "ROOMCAST_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "log level", "info"
    )
    log_format: str = _opt("ROOMCAST_LOG_FORMAT", _choice("text", "json"), "log format", "text")
    dev_token_ttl: float = _opt(
        "ROOMCAST_DEV_TOKEN_TTL", _positive_float, "lifetime of dev login tokens in seconds",
        300.0,
    )
    dev_secret_file: str = _opt(
        "ROOMCAST_DEV_SECRET_FILE",
        _path,
        "where the generated development secret is kept (so cookies survive restarts)",
        ".roomcast-dev-secret",
    )
    #: True when the secret was generated at start-up (development mode).
    generated_secret: bool = False

    @property
    def redis_cluster(self) -> bool:
        """REDIS_URL names a node of a Redis Cluster."""
        return self.broker_mode == "cluster" and self.redis_url is not None

    @property
    def dev_login_enabled(self) -> bool:
        """compat: the dev login is off whenever JWT_SECRET is set, unless turned on."""
        return self.dev_login if self.dev_login is not None else self.generated_secret

    @property
    def demo_enabled(self) -> bool:
        return self.demo if self.demo is not None else self.dev_login_enabled

    @property
    def identity_provider(self) -> bool:
        """Tokens come from an identity provider's keys (PEM or JWKS)."""
        return self.jwt_public_key is not None or self.jwks_url is not None

    @property
    def history_policy(self) -> HistoryPolicy:
        """Retention per room kind, from the ROOMCAST_HISTORY_* settings."""
        return HistoryPolicy.build(
            user_size=self.history_user_size, user_ttl=self.history_user_ttl,
            group_size=self.history_group_size, group_ttl=self.history_group_ttl,
            meta_ttl=self.history_meta_ttl, recovery_max=self.recovery_max,
        )

    @property
    def tls(self) -> bool:
        return self.ssl_certfile is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server TLS context, or None for plain ws://."""
        if self.ssl_certfile is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS certificate/key: {exc}") from None
        return ctx

    def check(self) -> None:
        """Cross-field validation; raises ConfigError with one line."""
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
        for name in ("ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not os.access(path, os.R_OK):
                raise ConfigError(f"{name.replace('_', '-')}: cannot read {path}")
        if not self.websocket_path.startswith("/"):
            raise ConfigError("WEBSOCKET_PATH must start with /")
        if self.max_queue_bytes < 2 * self.max_message_size:
            # One message (plus its envelope) must fit a connection's queue with room to
            # spare, or every recipient of a large message would be cut as a slow consumer.
            raise ConfigError(
                f"ROOMCAST_MAX_QUEUE_BYTES ({self.max_queue_bytes}) must be at least twice "
                f"ROOMCAST_MAX_MESSAGE_SIZE ({self.max_message_size})"
            )
        if self.ping_timeout <= self.ping_interval:
            raise ConfigError("ping timeout must be longer than the ping interval")
        if self.jwt_secret is not None:
            check_secret(self.jwt_secret)
        if self.sqlite_path and Path(self.sqlite_path).is_dir():
            raise ConfigError(f"ROOMCAST_DB {self.sqlite_path} is a directory")
        if self.broker_mode != "compat" and self.redis_url is None:
            # Without Redis the mode would be ignored in silence: one instance, memory broker.
            raise ConfigError(f"ROOMCAST_BROKER_MODE={self.broker_mode} needs REDIS_URL")


def dev_secret(path: str) -> str:
    """The development JWT secret, created once (mode 0600) and reused across restarts."""
    file = Path(path)
    try:
        existing = file.read_text().strip()
        if len(existing.encode()) >= MIN_SECRET_BYTES:
            return existing
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot read dev secret {path}: {exc.strerror}") from None
    # Hex: 32 random bytes that can never be mistaken for a command-line option.
    secret = secrets.token_hex(32)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write dev secret {path}: {exc.strerror}") from None
    return secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting, documenting its environment variable and default."""
    for f in fields(Settings):
        if "env" not in f.metadata:
            continue
        default = f.default
        if isinstance(default, frozenset):
            default = ",".join(default)
        elif isinstance(default, TrustedProxies):
            default = str(default)
        if f.metadata["parse"] is _tristate:
            default = "auto"
        # A default of None is explained by the help text itself ("default: ...").
        shown = "" if default is None else f"; default {default!r}"
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            metavar=f.metadata["env"],
            help=f"{f.metadata['help']} [env {f.metadata['env']}{shown}]",
        )


def load(
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    dev_secret_ok: bool = True,
) -> Settings:
    """Settings from flags, then environment variables, then defaults.

    Without JWT_SECRET the development secret is read or created, unless ``dev_secret_ok``
    is False (tools that only read settings must not leave a secret file behind).
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        env = f.metadata.get("env")
        if env is None:
            continue
        raw = getattr(args, f.name, None) if args is not None else None
        source = f"--{f.name.replace('_', '-')}"
        if raw is None:
            raw, source = environ.get(env), env
        if raw is None or (raw == "" and f.default is None):
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            raise ConfigError(f"{source}={raw!r}: {exc}") from None
    settings = Settings(**values)
    # With an identity provider and no JWT_SECRET, no secret verifies tokens: a
    # generated one would let the dev login mint tokens for anyone.
    if settings.jwt_secret is None and not settings.identity_provider and dev_secret_ok:
        settings.jwt_secret = dev_secret(settings.dev_secret_file)
        settings.generated_secret = True
    if not settings.server_id:
        settings.server_id = str(uuid.uuid4())
    settings.check()
    return settings
