"""The wire protocol, pure and I/O-free: parse client frames, build server frames.

Nothing here imports asyncio, aiohttp or redis, so it can be unit-tested and
fuzzed with plain bytes. ``codes`` holds error and close codes, ``envelope``
parses client frames, ``messages`` builds server envelopes, ``frames`` frames them.
"""
