"""User presence across instances: the store contract, its backends and the tracker."""

from roomcast.presence.base import Change, Entry, PresenceStore, UserPresence
from roomcast.presence.memory import MemoryPresenceStore

__all__ = ["Change", "Entry", "MemoryPresenceStore", "PresenceStore", "UserPresence"]
