"""Brokers carry publications and control commands between roomcast instances."""

from roomcast.broker.base import (
    Broker,
    BrokerHandler,
    ControlCommand,
    Disconnect,
    MembershipChanged,
    RoomsChanged,
    Target,
    ToAll,
    ToConnection,
    ToRoom,
    ToUser,
)

__all__ = [
    "Broker",
    "BrokerHandler",
    "ControlCommand",
    "Disconnect",
    "MembershipChanged",
    "RoomsChanged",
    "Target",
    "ToAll",
    "ToConnection",
    "ToRoom",
    "ToUser",
]
