"""Membership stores: which groups a user belongs to."""

from roomcast.membership.base import Group, MembershipStore

__all__ = ["Group", "MembershipStore"]
