"""``roomcast groups``: placeholder until implemented."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``groups`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser("groups", help="(not yet implemented)")
    parser.set_defaults(func=lambda args: 2)
