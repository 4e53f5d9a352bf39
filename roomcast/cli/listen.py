"""``roomcast listen``: placeholder until implemented."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``listen`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser("listen", help="(not yet implemented)")
    parser.set_defaults(func=lambda args: 2)
