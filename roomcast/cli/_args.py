"""Argument types shared by several subcommands."""

from __future__ import annotations

import argparse
from typing import Any

import orjson


def json_object(raw: str) -> dict[str, Any]:
    """``--data``: a JSON object, or a one-line usage error."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, like '{\"text\": \"hi\"}'")
    return value
