"""``roomcast publish``: placeholder until implemented."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``publish`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser("publish", help="(not yet implemented)")
    parser.set_defaults(func=lambda args: 2)
