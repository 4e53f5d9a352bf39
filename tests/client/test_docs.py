"""The example in docs/client.md runs as written and prints what the page says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.gateway import GatewayProcess
from tests.helpers.tokens import make_token

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


async def test_documented_example(
    gateway: GatewayProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DOC.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    output = re.search(r"```text\n(.*?)```", text, re.S)
    assert code is not None and output is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)
    await namespace["main"](gateway.ws_url, make_token(gateway.secret, "u1", groups=["ops"]))
    # The room handler runs in its own task: its line may come before or after the ack's.
    printed = capsys.readouterr().out.splitlines()
    assert sorted(printed) == sorted(output.group(1).splitlines())
    assert printed[:2] == output.group(1).splitlines()[:2]
