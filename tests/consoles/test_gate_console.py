"""The gate console (/gate/) and the operator view (/gate/operator/) in Chromium."""

from __future__ import annotations

import httpx

from tests.consoles.conftest import ConsoleServer


def test_server_is_seeded(console_server: ConsoleServer) -> None:
    assert httpx.get(f"{console_server.base_url}/readyz").status_code == 200
    assert console_server.credentials["venue"]["gates"]
