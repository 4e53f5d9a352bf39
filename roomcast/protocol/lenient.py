"""Reading frames as browsers really send them (pure: no I/O).

Two things a strict JSON parser gets wrong for the React client:

- ``JSON.stringify`` of a string cut inside a surrogate pair (an emoji cut in two
  by ``slice``) writes a lone surrogate escape such as ``"\\ud83d"``. That is valid
  JSON grammar (RFC 8259 allows any ``\\uXXXX``), but no valid Unicode; Go's decoder
  turns it into U+FFFD, the replacement character. orjson refuses the whole frame.
  :func:`replace_lone_surrogates` rewrites such escapes to ``\\ufffd`` first.
- A frame that cannot be parsed at all still deserves an answer carrying the
  client's ``id``, or the client waits 10 s for a timeout. :func:`recover_id` reads
  the top-level ``"id"`` string out of a broken or truncated frame, looking only at
  its two ends so that a large frame costs no more than a small one.
"""

from __future__ import annotations

import enum
import itertools
import json
import re
from collections.abc import Iterator
from typing import Final, TypeGuard

# One escape at a time, left to right, so "\\\\ud83d" (an escaped backslash followed
# by the letters ud83d) is never taken for an escape. Pairs are kept; lone halves
# (a high one not followed by a low one, or a low one alone) become U+FFFD.
_ESCAPE: Final = re.compile(
    r"\\\\"
    r"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)
_SURROGATE_HINT: Final = re.compile(r"\\u[dD][89a-fA-F]")
_MAX_ID: Final = 128


def _fix(match: re.Match[str]) -> str:
    text = match.group(0)
    # 2 characters: an escaped backslash; 12: a valid pair. 6: a lone half.
    return "\\ufffd" if len(text) == 6 else text


def replace_lone_surrogates(text: str) -> str:
    """``text`` with every lone UTF-16 surrogate escape replaced by ``\\ufffd``.

    Returns ``text`` itself when it has none (the common case costs one search).
    """
    if _SURROGATE_HINT.search(text) is None:
        return text
    return _ESCAPE.sub(_fix, text)


def recover_id(frame: str | bytes) -> str | None:
    """The string value of the top-level ``"id"`` of a possibly broken JSON object.

    The work is bounded whatever the frame (a client may send 50 frames a second of up
    to 128 KiB of anything, and this runs on the event loop): only the first and the
    last :data:`WINDOW` characters (bytes, of a binary frame) are read, as at most
    :data:`MAX_TOKENS` tokens at each end. A regular expression cuts the tokens at C
    speed in one pass (possessive quantifiers: no character is tried twice), so a call
    costs at most some 2 x WINDOW characters of C and 2 x MAX_TOKENS steps of Python:
    a few µs when the id comes first, at most about 0.3 ms, where a walk over 128 KiB
    one character at a time in Python took 20-40 ms.

    1. Forwards from the start, members are stepped over in order (nested values
       skipped whole) until the ``id`` member or the first thing that cannot be read.
       A frame that fits in the window is read whole this way, so that is the answer.
    2. Otherwise, if the window or the tokens ran out first, the frame is read
       backwards from its end: its closing ``}``, then member after member, for an
       ``id`` among the last ones (as ``{...message, id}`` puts it). The closing ``}``
       is taken on trust: a large frame cut just after a nested object ending in an
       ``"id"`` member gives that nested id.

    An id in neither window (in the middle of a large frame, behind more than
    MAX_TOKENS tokens, or across a window's edge) is not found: the reply goes without
    one. Escapes in the id are decoded (lone surrogates as U+FFFD); an id longer than
    128 characters or not a string gives None. Never raises.
    """
    if isinstance(frame, bytes):
        head = frame[:WINDOW].decode("utf-8", "replace")
        tail = frame[-WINDOW:].decode("utf-8", "replace")
    else:
        head, tail = frame[:WINDOW], frame[-WINDOW:]
    found = _head_id(_tokens(_FORWARD, head))
    if found is _Cut.END and len(frame) <= WINDOW:
        return None  # the whole frame was read
    if isinstance(found, _Cut):
        found = _tail_id(_tokens(_BACKWARD, tail[::-1]))
    return None if isinstance(found, _Cut) else found


#: Characters (bytes) read at each end of a frame: room for ``{"id": ...}`` with the
#: longest id fully escaped (128 surrogate pairs of 12 characters each) and more.
WINDOW: Final = 2048
#: Tokens read at each end, about 0.5 µs of Python each: room for the members a
#: message puts before its id (or after it), nested ones included.
MAX_TOKENS: Final = 256


class _Cut(enum.Enum):
    """Why the tokens ran out before an answer."""

    END = "the end of the window, or an unterminated string"
    BUDGET = "MAX_TOKENS read"


_WS: Final = r"[ \t\r\n]*+"
_OTHER: Final = r'|[][{}:,]|[^][{}:," \t\r\n]++'
#: One token after whitespace, or none: at the end of the window, or at a string the
#: window ends in. Each character is looked at once (possessive: no backtracking).
_FORWARD: Final = re.compile(_WS + r'(?P<token>"[^"\\]*+(?:\\.[^"\\]*+)*+"' + _OTHER + ")?",
                             re.DOTALL)
#: The same in the reversed text, where an escaped quote is one followed by an odd
#: number of backslashes. Read backwards from a ``}`` or ``,`` outside any string, the
#: first quote of a string is always its real closing one.
_BACKWARD: Final = re.compile(_WS + r'(?P<token>"(?:[^"]++|"(?=(?:\\\\)*+\\(?!\\)))*+"'
                              + _OTHER + ")?")
_OPEN: Final = frozenset("{[")
_CLOSE: Final = frozenset("}]")
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
#: Every way to write the key ``id`` (the hex digits of ``i`` and ``d`` have no letters).
_ID_KEYS: Final = frozenset({'"id"', r'"\u0069d"', r'"i\u0064"', r'"\u0069\u0064"'})


def _tokens(pattern: re.Pattern[str], window: str) -> Iterator[str | _Cut]:
    """The first :data:`MAX_TOKENS` tokens of ``window``, then a :class:`_Cut` forever.

    Tokens are ``{ } [ ] : ,``, a whole string literal with its quotes, or a run of
    anything else (a number, ``true``, junk). The regular expression's work is linear
    in the part of ``window`` it reaches, the Python work linear in the tokens.
    """
    for match in itertools.islice(pattern.finditer(window), MAX_TOKENS):
        if (token := match["token"]) is None:
            cut = _Cut.END
            break
        yield token
    else:
        cut = _Cut.BUDGET
    while True:
        yield cut


def _head_id(tokens: Iterator[str | _Cut]) -> str | _Cut | None:
    """Forwards: ``{``, then key, ``:``, value (skipped), ``,``... until the id."""
    if (token := next(tokens)) != "{":
        return _fail(token)
    while True:
        key = next(tokens)
        if not _is_string(key):
            return _fail(key)
        if (token := next(tokens)) != ":":
            return _fail(token)
        token = next(tokens)
        if key in _ID_KEYS:
            return _id(token) if _is_string(token) else _fail(token)
        depth = 0
        while depth or token != ",":
            if isinstance(token, _Cut):
                return token
            depth += (token in _OPEN) - (token in _CLOSE)
            if depth < 0:
                return None  # the object ended without an id
            token = next(tokens)


def _tail_id(tokens: Iterator[str | _Cut]) -> str | _Cut | None:
    """Backwards: ``}``, then value, ``:``, key, ``,``... until the id or ``{``."""
    if (token := next(tokens)) != "}":
        return _fail(token)
    while True:
        value = token = next(tokens)
        depth = count = 0
        while depth or token != ":":
            if isinstance(token, _Cut):
                return token
            depth += (token in _CLOSE) - (token in _OPEN)
            if depth < 0 or (depth == 0 and token == ","):
                return None
            count += 1
            token = next(tokens)
        key = next(tokens)
        if not _is_string(key):
            return _fail(key)
        if (token := next(tokens)) not in (",", "{"):
            return _fail(token)
        if key[::-1] in _ID_KEYS:
            return _id(value[::-1]) if count == 1 and _is_string(value) else None
        if token == "{":
            return None  # the object's first member: no id


def _is_string(token: str | _Cut) -> TypeGuard[str]:
    return isinstance(token, str) and token[0] == '"'


def _fail(token: str | _Cut) -> _Cut | None:
    """Ran out (an answer may lie beyond), or a token that does not fit (None)."""
    return token if isinstance(token, _Cut) else None


def _decode(literal: str) -> str | None:
    """A string literal's value, lone surrogates as U+FFFD; None for a bad escape."""
    if "\\" not in literal:
        value = literal[1:-1]
    else:
        try:
            value = json.loads(literal, strict=False)  # not strict: control characters
        except ValueError:
            return None
    return _SURROGATE.sub("\ufffd", value)


def _id(literal: str) -> str | None:
    value = _decode(literal)
    return value if value is not None and len(value) <= _MAX_ID else None
