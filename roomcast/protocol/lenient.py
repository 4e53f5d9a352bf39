"""Reading frames as browsers really send them (pure: no I/O).

Two things a strict JSON parser gets wrong for the React client:

- ``JSON.stringify`` of a string cut inside a surrogate pair (an emoji cut in two
  by ``slice``) writes a lone surrogate escape such as ``"\\ud83d"``. That is valid
  JSON grammar (RFC 8259 allows any ``\\uXXXX``), but no valid Unicode; Go's decoder
  turns it into U+FFFD, the replacement character. orjson refuses the whole frame.
  :func:`replace_lone_surrogates` rewrites such escapes to ``\\ufffd`` first.
- A frame that cannot be parsed at all still deserves an answer carrying the
  client's ``id``, or the client waits 10 s for a timeout. :func:`recover_id` reads
  the top-level ``"id"`` string out of a broken or truncated frame.
"""

from __future__ import annotations

import re
from typing import Final

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

    Scans the object's members in order until the ``id`` member or the first
    thing it cannot read; never raises. Escapes in the id are decoded; an id
    longer than 128 characters or not a string gives None.
    """
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    scanner = _Scanner(text)
    try:
        return scanner.top_level_id()
    except _Stop:
        return None


class _Stop(Exception):
    """The scanner cannot go on."""


_WS: Final = " \t\r\n"
_ESCAPES: Final = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n",
                   "r": "\r", "t": "\t"}


class _Scanner:
    """Just enough of a JSON reader to step over members of one object."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def top_level_id(self) -> str | None:
        self._skip_ws()
        self._expect("{")
        while True:
            self._skip_ws()
            key = self._string()
            self._skip_ws()
            self._expect(":")
            self._skip_ws()
            if key == "id":
                if self._peek() != '"':
                    return None
                value = self._string()
                return value if len(value) <= _MAX_ID else None
            self._skip_value()
            self._skip_ws()
            self._expect(",")

    def _peek(self) -> str:
        if self.at >= len(self.text):
            raise _Stop
        return self.text[self.at]

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise _Stop
        self.at += 1

    def _skip_ws(self) -> None:
        while self.at < len(self.text) and self.text[self.at] in _WS:
            self.at += 1

    def _string(self) -> str:
        self._expect('"')
        out: list[str] = []
        while True:
            char = self._peek()
            self.at += 1
            if char == '"':
                return "".join(out)
            if char != "\\":
                out.append(char)
                continue
            esc = self._peek()
            self.at += 1
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
            elif esc == "u":
                digits = self.text[self.at : self.at + 4]
                if len(digits) < 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise _Stop
                code = int(digits, 16)
                self.at += 4
                low = self.text[self.at + 2 : self.at + 6]
                if (0xD800 <= code <= 0xDBFF and self.text[self.at : self.at + 2] == "\\u"
                        and len(low) == 4 and low[0] in "dD" and low[1] in "cdefCDEF"):
                    code = 0x10000 + ((code - 0xD800) << 10) + (int(low, 16) - 0xDC00)
                    self.at += 6
                # A lone surrogate becomes U+FFFD, as everywhere else.
                out.append("\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code))
            else:
                raise _Stop

    def _skip_value(self) -> None:
        """Step over one value, nested ones included, without reading it."""
        depth = 0
        while True:
            char = self._peek()
            if char == '"':
                self._string()
            elif char in "{[":
                depth += 1
                self.at += 1
            elif char in "}]":
                if depth == 0:
                    return
                depth -= 1
                self.at += 1
            elif char == "," and depth == 0:
                return
            else:
                self.at += 1
