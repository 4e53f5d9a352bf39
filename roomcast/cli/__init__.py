"""The ``roomcast`` command: one subcommand per module of this package."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from roomcast.exceptions import ConfigError, RoomcastError

#: Subcommand modules; each defines ``register(subparsers) -> None``, which adds its
#: parser and sets ``func`` (``Callable[[argparse.Namespace], int]``) as a default.
SUBCOMMANDS = ("serve", "groups", "token", "listen", "send", "publish")

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="roomcast", description="Real-time WebSocket gateway with automatic rooms."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"roomcast.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    func: Handler = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"roomcast: configuration error: {exc}", file=sys.stderr)
        return 2
    except RoomcastError as exc:
        print(f"roomcast: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
