"""The request-body deadline and the frame size that counts once refuse bad values clearly."""

from __future__ import annotations

import pytest

from roomcast import config
from roomcast.exceptions import ConfigError

SECRET = {"JWT_SECRET": "s" * 40}


@pytest.mark.parametrize(("name", "value", "says"), [
    ("ROOMCAST_BODY_TIMEOUT", "0", "must be a positive number"),
    ("ROOMCAST_BODY_TIMEOUT", "-1", "must be a positive number"),
    ("ROOMCAST_BODY_TIMEOUT", "ten", "could not convert"),
    ("ROOMCAST_CLIENT_FRAME_BYTES", "-1", "must be an integer >= 0"),
    ("ROOMCAST_CLIENT_FRAME_BYTES", "8k", "invalid literal"),
])
def test_a_bad_value_names_the_setting(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config.load(None, {**SECRET, name: value})
    assert name in str(refused.value) and says in str(refused.value)


def test_defaults_and_the_off_switch() -> None:
    settings = config.load(None, SECRET)
    assert (settings.body_timeout, settings.client_frame_bytes) == (10.0, 8192)
    assert config.load(None, {**SECRET, "ROOMCAST_CLIENT_FRAME_BYTES": "0"}).client_frame_bytes == 0
