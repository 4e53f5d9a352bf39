"""The secret that signs the CLI's own tokens: ``--secret``, JWT_SECRET, or the dev secret.

``roomcast serve`` without JWT_SECRET keeps its generated secret in ROOMCAST_DEV_SECRET_FILE
(default ``.roomcast-dev-secret`` in the directory it runs in). The tools that talk to it
look there the same way, and never create the file: a new secret would only sign tokens
the running gateway rejects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from roomcast import config
from roomcast.exceptions import ConfigError

NO_SECRET = (
    "no JWT_SECRET, and no development secret at {path}: run this in the directory where "
    "`roomcast serve` runs, or set JWT_SECRET (or ROOMCAST_DEV_SECRET_FILE) to the "
    "gateway's secret"
)


@dataclass(frozen=True)
class Secret:
    """A signing secret and where it came from (for messages; never the value)."""

    value: str
    source: str

    @property
    def is_dev_file(self) -> bool:
        return self.source not in ("--secret", "JWT_SECRET")


def dev_secret_path() -> Path:
    """Where ``roomcast serve`` started here keeps its development secret."""
    configured = os.environ.get("ROOMCAST_DEV_SECRET_FILE") or config.Settings.dev_secret_file
    return Path(configured).absolute()


def find_secret(explicit: str | None = None) -> Secret | None:
    """``explicit``, else JWT_SECRET, else the development secret file; None if none."""
    if explicit:
        return Secret(config.check_secret(explicit, "--secret"), "--secret")
    env = os.environ.get("JWT_SECRET")
    if env:
        return Secret(config.check_secret(env), "JWT_SECRET")
    path = dev_secret_path()
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the development secret {path}: {exc.strerror}") from None
    return Secret(config.check_secret(value, f"the development secret in {path}"), str(path))


def require_secret(explicit: str | None = None) -> Secret:
    """Like :func:`find_secret`, but a ConfigError saying what to do when there is none."""
    secret = find_secret(explicit)
    if secret is None:
        raise ConfigError(NO_SECRET.format(path=dev_secret_path()))
    return secret


def rejected(secret: Secret | None, url: str, reason: str) -> str:
    """What to do when the gateway at ``url`` refused a token the CLI signed."""
    if secret is None:
        missing = NO_SECRET.format(path=dev_secret_path())
        return f"the gateway at {url} wants credentials ({reason}); {missing}, or pass --api-key"
    where = (
        f"the development secret in {secret.source}" if secret.is_dev_file else secret.source
    )
    return (
        f"the gateway at {url} rejected a token signed with {where} ({reason}): it runs with "
        "another secret; set JWT_SECRET to the gateway's secret (or pass --api-key)"
    )
