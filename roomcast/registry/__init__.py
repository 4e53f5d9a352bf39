"""Registries: the cluster-wide view of connections and rooms (admin listings, counts)."""

from roomcast.registry.base import ConnectionInfo, Registry, RoomInfo

__all__ = ["ConnectionInfo", "Registry", "RoomInfo"]
