"""``roomcast token``: mint a JWT in the Go gateway's format, for development and scripts."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from roomcast import config
from roomcast.auth import mint_token
from roomcast.auth.mint import PrivateKey, load_private_key
from roomcast.cli._secret import require_secret
from roomcast.exceptions import ConfigError

_TTL = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[smhd]?)", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def register(sub: Any) -> None:
    """Add the ``token`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "token",
        help="mint a JWT for a user",
        description="Print a token with the Go gateway's claims: HS256 signed with "
        "--secret, else JWT_SECRET, else the development secret of the `roomcast serve` "
        "started in this directory (or a parent); or, with --key, signed with a PEM "
        "private key as an identity provider would (RS256, ES256, EdDSA, ...).",
    )
    parser.add_argument("--user", required=True, help="user_id claim")
    parser.add_argument("--name", help="character_name claim (default: the user id)")
    parser.add_argument("--character-id", type=int, help="character_id claim (default 0)")
    parser.add_argument(
        "--groups", default="", help="comma-separated group ids (the optional groups claim)"
    )
    parser.add_argument("--scopes", default="", help="space-separated scopes claim")
    parser.add_argument("--admin", action="store_true", help="add the admin scope")
    parser.add_argument(
        "--ttl", type=parse_ttl, default=3600.0, help="lifetime: 30s, 15m, 1h, 7d (default 1h)"
    )
    parser.add_argument(
        "--secret",
        help="signing secret, at least 32 bytes [env JWT_SECRET] (--secret=VALUE if it starts "
        "with -)",
    )
    parser.add_argument(
        "--key", metavar="PEM_FILE",
        help="sign with this private key instead of a secret (RSA, EC or Ed25519, unencrypted)",
    )
    parser.add_argument(
        "--alg", help="algorithm for --key (default by key: RS256, ES256/384/512, EdDSA)",
    )
    parser.add_argument("--kid", help="kid header (the key's id in the provider's JWKS)")
    parser.add_argument(
        "--audience", help="aud claim (for gateways with ROOMCAST_JWT_AUDIENCE)",
    )
    parser.set_defaults(func=run)


def parse_ttl(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h`` or ``7d`` as seconds."""
    match = _TTL.fullmatch(text.strip())
    if match is None or float(match["n"]) <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (use e.g. 30s, 15m, 1h, 7d)")
    return float(match["n"]) * _UNIT[match["unit"].lower()]


def _signer(args: argparse.Namespace) -> tuple[str | PrivateKey, str]:
    """The key and algorithm the token is signed with."""
    if args.key is not None:
        if args.secret is not None:
            raise ConfigError("give --key or --secret, not both")
        try:
            with open(args.key, "rb") as f:
                pem = f.read()
        except OSError as exc:
            raise ConfigError(f"--key: cannot read {args.key}: {exc.strerror}") from None
        try:
            return load_private_key(pem, args.alg)
        except ConfigError as exc:
            raise ConfigError(f"--key {args.key}: {exc}") from None
    if args.alg not in (None, "HS256"):
        raise ConfigError(f"--alg {args.alg} needs --key (a secret signs HS256 only)")
    secret = require_secret(args.secret)
    if secret.is_dev_file:
        print(
            f"roomcast: no JWT_SECRET; signed with the development secret in {secret.source}",
            file=sys.stderr,
        )
    return secret.value, "HS256"


def run(args: argparse.Namespace) -> int:
    key, algorithm = _signer(args)
    scopes = args.scopes.split()
    if args.admin:
        scopes.append(os.environ.get("ROOMCAST_ADMIN_SCOPE") or config.Settings.admin_scope)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    print(
        mint_token(
            key,
            args.user,
            name=args.name,
            character_id=args.character_id,
            groups=groups or None,
            scopes=" ".join(dict.fromkeys(scopes)),
            ttl=args.ttl,
            issuer=os.environ.get("JWT_ISSUER") or "go-falcon",
            algorithm=algorithm,
            kid=args.kid,
            user_claim=os.environ.get("ROOMCAST_JWT_USER_CLAIM") or "user_id",
            audience=args.audience,
        )
    )
    return 0
