"""Prometheus metrics of this instance (served at ``/metrics``).

Hot paths count once per publication or per batch, never per recipient call.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CONNECTIONS_ACTIVE = Gauge(
    "roomcast_connections_active", "Open WebSocket connections", registry=REGISTRY
)
CONNECTIONS_TOTAL = Counter(
    "roomcast_connections", "WebSocket connections accepted", registry=REGISTRY
)
ROOMS = Gauge(
    "roomcast_rooms", "Local rooms by type (computed at scrape time)", ["type"], registry=REGISTRY
)
MESSAGES_RECEIVED = Counter(
    "roomcast_messages_received", "Client messages received, by type", ["type"], registry=REGISTRY
)
MESSAGES_SENT = Counter(
    "roomcast_messages_published", "Messages published, by type", ["type"], registry=REGISTRY
)
DELIVERIES = Counter(
    "roomcast_deliveries", "Frames queued to local connections", registry=REGISTRY
)
REJECTED = Counter(
    "roomcast_messages_rejected", "Client messages rejected, by error code", ["code"],
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "roomcast_auth_failures", "Refused handshakes and API calls, by reason", ["reason"],
    registry=REGISTRY,
)
HANDSHAKE_REFUSALS = Counter(
    "roomcast_handshake_refusals", "WebSocket handshakes refused, by reason (origin, a token "
    "reason such as expired or bad_signature, revoked, kicked, unavailable)", ["reason"],
    registry=REGISTRY,
)
TOKEN_CLOSES = Counter(
    "roomcast_token_closes", "Connections closed for their token, by reason "
    "(expired, revoked, kicked)", ["reason"], registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "roomcast_token_refreshes", "Token refreshes of live connections, by outcome "
    "(ok or the refusal reason)", ["outcome"], registry=REGISTRY,
)
JWKS_FETCHES = Counter(
    "roomcast_jwks_fetches", "JWKS fetches, by outcome (ok, error)", ["outcome"],
    registry=REGISTRY,
)
SLOW_CONSUMERS = Counter(
    "roomcast_slow_consumers_dropped", "Connections closed for a full write queue",
    registry=REGISTRY,
)
BROKER_PUBLISH_ERRORS = Counter(
    "roomcast_broker_publish_errors", "Publishes the broker could not carry out",
    registry=REGISTRY,
)
BROKER_DUPLICATES = Counter(
    "roomcast_broker_duplicates_dropped",
    "Publications from other instances received again and dropped (same publisher and id)",
    registry=REGISTRY,
)
TASK_FAILURES = Counter(
    "roomcast_background_task_failures",
    "Background tasks that raised (each is logged and restarted), by task",
    ["task"], registry=REGISTRY,
)
HANDSHAKE_SECONDS = Histogram(
    "roomcast_handshake_seconds", "Time from upgrade request to welcome message",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "roomcast_api_requests", "Admin/server HTTP API calls, by operation and status",
    ["operation", "status"], registry=REGISTRY,
)
API_SECONDS = Histogram(
    "roomcast_api_seconds", "Admin/server HTTP API call duration, by operation", ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
MEMBERSHIP_FETCHES = Counter(
    "roomcast_membership_fetches",
    "Membership reads from the application over HTTP, by result (ok, cached, error, skipped)",
    ["result"], registry=REGISTRY,
)
CONNECTIONS_REFUSED = Counter(
    "roomcast_connections_refused",
    "TCP connections or handshakes cut or refused by a limit, by reason (head_timeout, "
    "head_too_large, pending_cap, per_user, per_ip, flooding, unmasked_frame, "
    "fragmented_message_unfinished)", ["reason"], registry=REGISTRY,
)
PUBLICATIONS_DROPPED = Counter(
    "roomcast_publications_dropped",
    "Publications not delivered on this instance, by reason (oversize: larger than the "
    "write-queue limit)", ["reason"], registry=REGISTRY,
)
HISTORY_GAPS_REPAIRED = Counter(
    "roomcast_history_gaps_repaired",
    "Publications lost between instances and delivered from the room's stream instead",
    registry=REGISTRY,
)
HISTORY_GAPS_UNREPAIRED = Counter(
    "roomcast_history_gaps_unrepaired",
    "Gaps in a room's offsets the stream could not fill (its connections closed with 3010)",
    registry=REGISTRY,
)
HISTORY_DUPLICATES = Counter(
    "roomcast_history_duplicates_dropped",
    "Publications of a room received twice by this instance and delivered once",
    registry=REGISTRY,
)


#: Children of the counters above that are counted per message, by label value.
_CHILDREN: dict[tuple[Counter, str], Any] = {}


def by_type(counter: Counter, kind: str) -> Any:
    """``counter.labels(kind)`` for a message type, looked up once.

    Only for labels of a small fixed set (the protocol's message types): per message,
    prometheus_client's label lookup cost more than the increment.
    """
    key = (counter, kind)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = counter.labels(kind)
    return child
