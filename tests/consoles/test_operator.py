"""The operator view (`/gate/operator/`) in Chromium against the package's real server: log
in as the demo venue's operator, make scans at the demo gates through the API, and see the
same occupancy, entries by gate and hour, gates' last contact and slot counts as
GET /v1/venues/{id}/stats; no console error; a screenshot (docs/img/ops-*.png with
UPDATE_DOCS_IMG=1)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page

from tests.consoles.conftest import ConsoleServer
from tests.consoles.test_desk import code_of, enrolled_resident, keep_for_docs, shot


def _scan(server: ConsoleServer, gate: dict[str, str], code: str, direction: str) -> None:
    token = server.machine_token(gate)
    answer = httpx.post(
        f"{server.base_url}/v1/gates/scan",
        json={"scan_id": f"ops-{uuid.uuid4()}", "code": code, "direction": direction},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "admit", answer.text


def _stats(server: ConsoleServer, venue_id: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = httpx.get(f"{server.base_url}/v1/venues/{venue_id}/stats", headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_operator_view_shows_the_stats_of_the_api(
    console_server: ConsoleServer, page_factory: Callable[[], Page], tmp_path: Path
) -> None:
    server = console_server
    folder = tmp_path / "screenshots"
    folder.mkdir()
    venue = server.credentials["venue"]
    operator = venue["operator"]
    headers = {"Authorization": f"Bearer {server.machine_token(operator)}"}
    entrance, exit_ = venue["gates"]
    # A slot running now, so the scans below count as entered in it.
    now = datetime.now(UTC).replace(microsecond=0)
    slot = httpx.post(
        f"{server.base_url}/v1/venues/{venue['id']}/slots",
        json={
            "starts_at": (now - timedelta(minutes=5)).isoformat(),
            "ends_at": (now + timedelta(minutes=55)).isoformat(),
            "capacity": 40,
            "walk_in": 10,
        },
        headers=headers,
    )
    assert slot.status_code == 201, slot.text
    # The package shares one server: earlier tests' walk-ins in this window count too.
    before = next(
        s for s in _stats(server, venue["id"], headers)["slots"] if s["id"] == slot.json()["id"]
    )["entered"]
    ann, bo = enrolled_resident(server), enrolled_resident(server)
    _scan(server, entrance, code_of(server, ann), "in")
    _scan(server, entrance, code_of(server, bo), "in")
    _scan(server, exit_, code_of(server, ann), "out")
    stats = _stats(server, venue["id"], headers)
    assert stats["occupancy"] >= 1

    page = page_factory()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{server.base_url}/gate/operator/")
    page.select_option("[name=venue]", venue["id"])
    page.fill("[name=client_id]", operator["client_id"])
    page.fill("[name=client_secret]", "wrong secret")
    page.click("button[type=submit]")
    page.wait_for_selector(".problem")
    keep_for_docs(shot(page, folder, "ops-login"), "ops-login.png")
    problems.clear()  # the wrong secret's 401 is logged by Chromium on purpose
    page.fill("[name=client_secret]", operator["client_secret"])
    page.click("button[type=submit]")
    page.wait_for_selector("[data-occupancy]")
    stats = _stats(server, venue["id"], headers)

    shown = page.locator("[data-occupancy]")
    assert shown.get_attribute("data-occupancy") == str(stats["occupancy"])
    assert shown.inner_text() == f"{stats['occupancy']} / {stats['capacity']}"
    bars = {
        (b.get_attribute("data-gate"), int(b.get_attribute("data-hour") or -1)): int(
            b.get_attribute("data-entries") or -1
        )
        for b in page.locator("rect.bar-entries").all()
    }
    expected = {(r["gate_id"], r["hour"]): r["entries"] for r in stats["by_gate_hour"]}
    assert bars == {k: v for k, v in expected.items() if v > 0 or k in bars}
    assert sum(bars.values()) >= 2
    for gate in stats["gates"]:
        row = page.locator(f"tr[data-gate='{gate['id']}']")
        assert row.locator(".last-contact").get_attribute("data-at") == (
            gate["last_contact_at"] or ""
        )
        assert gate["last_contact_at"] is not None, "both demo gates scanned"
    for listed in stats["slots"]:
        row = page.locator(f"tr[data-slot='{listed['id']}']")
        assert row.locator(".booked").inner_text() == str(listed["booked"])
        assert row.locator(".entered").inner_text() == str(listed["entered"])
    ours = next(s for s in stats["slots"] if s["id"] == slot.json()["id"])
    assert ours["entered"] == before + 2
    keep_for_docs(shot(page, folder, "ops-view"), "ops-view.png")

    # Refreshed by itself: one more entry appears within the 10 s period.
    cy = enrolled_resident(server)
    _scan(server, entrance, code_of(server, cy), "in")
    after = stats["occupancy"] + 1
    page.wait_for_selector(f"[data-occupancy='{after}']", timeout=15_000)
    page.click("button.lang")
    page.wait_for_selector("text=Inside now")
    assert problems == []
