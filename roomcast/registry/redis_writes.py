"""One flush of the Redis registry's writes, sent as one script call.

A connect storm's flush writes, per connection, its entry, its user's set and its
personal room's set and name, each with a TTL: some six commands, and as many
replies for redis-py to read (each under its own read timeout). Gathered here and
sent as the arguments of :data:`FLUSH`, they cost one command and one reply.
"""

from __future__ import annotations

from typing import Any

#: Runs the writes ``ARGV`` lists, one key of ``KEYS`` each, in order. A key holding
#: another type is skipped (``pcall``) and returned, so one foreign key never blocks
#: the rest. Members go in chunks (Lua's stack bounds ``unpack``).
FLUSH = """
local wrong = {}
local function call(key, ...)
    local r = redis.pcall(...)
    if type(r) == 'table' and r.err then wrong[#wrong + 1] = key end
end
local i, k = 1, 0
while i <= #ARGV do
    local op = ARGV[i]
    k = k + 1
    local key = KEYS[k]
    if op == 'S' then
        call(key, 'SET', key, ARGV[i + 1], 'EX', ARGV[i + 2])
        i = i + 3
    elseif op == 'D' then
        call(key, 'DEL', key)
        i = i + 1
    else
        local n, ttl = tonumber(ARGV[i + 1]), ARGV[i + 2]
        local first = i + 3
        for from = first, first + n - 1, 1000 do
            local to = math.min(from + 999, first + n - 1)
            call(key, op == 'A' and 'SADD' or 'SREM', key, unpack(ARGV, from, to))
        end
        if op == 'A' then call(key, 'EXPIRE', key, ttl) end
        i = first + n
    end
end
return wrong
"""


class Writes:
    """The writes of one flush: set changes grouped by set, then in :data:`FLUSH` form."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.argv: list[Any] = []
        #: set key -> (members added, members removed, TTL after an addition)
        self._sets: dict[str, tuple[list[str], list[str], int]] = {}

    def set(self, key: str, value: bytes | str, ttl: int) -> None:
        self.keys.append(key)
        self.argv += ["S", value, ttl]

    def delete(self, key: str) -> None:
        self.keys.append(key)
        self.argv.append("D")

    def add(self, key: str, member: str, ttl: int) -> None:
        self._sets.setdefault(key, ([], [], ttl))[0].append(member)

    def remove(self, key: str, member: str) -> None:
        self._sets.setdefault(key, ([], [], 0))[1].append(member)

    def add_all(self, key: str, members: list[str], ttl: int) -> None:
        for member in members:
            self.add(key, member, ttl)

    def remove_all(self, key: str, members: list[str]) -> None:
        for member in members:
            self.remove(key, member)

    def script_args(self) -> tuple[list[str], list[Any]]:
        """``KEYS`` and ``ARGV`` of :data:`FLUSH`: single keys in the order written, then
        each set's additions before its removals."""
        keys, argv = list(self.keys), list(self.argv)
        for key, (added, removed, ttl) in self._sets.items():
            if added:
                keys.append(key)
                argv += ["A", len(added), ttl, *added]
            if removed:
                keys.append(key)
                argv += ["R", len(removed), 0, *removed]
        return keys, argv
