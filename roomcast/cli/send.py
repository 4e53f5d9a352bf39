"""``roomcast send``: placeholder until implemented."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``send`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser("send", help="(not yet implemented)")
    parser.set_defaults(func=lambda args: 2)
