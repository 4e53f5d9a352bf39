"""The deployment files of deploy/ are the ones the docs show, and they hold together."""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path

from roomcast import config

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "deploy.md").read_text()


def _block(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOCS, re.S)


def test_the_docs_show_the_unit_and_env_file_verbatim() -> None:
    assert (ROOT / "deploy" / "roomcast@.service").read_text() in _block("ini")
    assert (ROOT / "deploy" / "roomcast.env").read_text() in _block("sh")


def test_every_setting_of_the_env_file_exists_and_parses(tmp_path: Path) -> None:
    lines = (ROOT / "deploy" / "roomcast.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    known = {f.metadata["env"] for f in fields(config.Settings) if "env" in f.metadata}
    assert set(env) <= known, set(env) - known
    settings = config.load(None, {**env, "ROOMCAST_DB": str(tmp_path / "m.db")})
    assert settings.api_prefix == "/api"
    assert settings.trusted_proxies.trusts("127.0.0.1")
    assert settings.trusted_proxies.trusts("::1")


def test_the_unit_runs_the_cli_with_real_flags() -> None:
    unit = (ROOT / "deploy" / "roomcast@.service").read_text()
    command = re.search(r"^ExecStart=\S+/roomcast (.*)$", unit, re.M)
    assert command is not None
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    args = parser.parse_args(command.group(1).replace("%i", "8081").split()[1:])
    assert (args.host, args.port) == ("127.0.0.1", "8081")


def test_the_container_file_copies_what_exists() -> None:
    text = (ROOT / "deploy" / "Containerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    assert 'ENTRYPOINT ["roomcast", "serve"]' in text
    assert "/healthz" in text
