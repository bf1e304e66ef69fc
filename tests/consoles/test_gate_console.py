"""The gate console (/gate/) in Chromium against one real server: pairing, keyboard-wedge
scans decided online (admit, already_inside, exit, annul), offline from the verified bundle
(queue in IndexedDB surviving a reload, sync on return), the code format's test vectors
verified by the browser module, and the scan-to-verdict time."""

from __future__ import annotations

import json
import random
import statistics
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, Playwright

from tests.browser import launch_chromium
from tests.conftest import REPO
from tests.consoles.conftest import CHROMIUM_ARGS, CONSOLE_VIEWPORT, ConsoleServer
from tests.factories import valid_id_number


class Resident:
    def __init__(self, server: ConsoleServer, name: str = "王小红") -> None:
        self.base = server.base_url
        self.phone = f"137{random.randrange(10**8):08d}"
        sent = httpx.post(f"{self.base}/v1/auth/otp", json={"phone": self.phone}).json()
        tokens = httpx.post(
            f"{self.base}/v1/auth/login", json={"phone": self.phone, "otp": sent["debug_code"]}
        ).json()
        self.headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        born = date(1960, 1, 1) + timedelta(days=random.randrange(365 * 40))
        self.name = name
        self.id_number = valid_id_number(born, region=random.choice(("310101", "310112")))
        bound = httpx.put(
            f"{self.base}/v1/residents/me/identity",
            json={"name": name, "id_number": self.id_number},
            headers=self.headers,
        )
        assert bound.status_code == 200, bound.text
        self.subject_id: str = bound.json()["subject_id"]

    def code(self) -> str:
        answer = httpx.get(f"{self.base}/v1/codes/me", headers=self.headers)
        assert answer.status_code == 200, answer.text
        code: str = answer.json()["code"]
        return code


def _operator(server: ConsoleServer) -> tuple[str, dict[str, str]]:
    venue = server.credentials["venue"]
    token = server.machine_token(venue["operator"])
    return venue["id"], {"Authorization": f"Bearer {token}"}


def _pairing_code(
    server: ConsoleServer,
    direction: str = "both",
    venue: tuple[str, dict[str, str]] | None = None,
) -> str:
    """A one-time pairing code for a new gate of `venue` (id, operator headers; the demo
    venue by default)."""
    venue_id, headers = venue or _operator(server)
    gate = httpx.post(
        f"{server.base_url}/v1/venues/{venue_id}/gates",
        json={"name": f"Console {random.randrange(10**6)}", "direction": direction},
        headers=headers,
    )
    assert gate.status_code == 201, gate.text
    made = httpx.post(
        f"{server.base_url}/v1/venues/{venue_id}/gates/{gate.json()['id']}/pairing",
        headers=headers,
    )
    assert made.status_code == 201, made.text
    code: str = made.json()["pairing_code"]
    return code


def _paired(
    page: Page, server: ConsoleServer, venue: tuple[str, dict[str, str]] | None = None
) -> None:
    page.goto(f"{server.base_url}/gate/")
    page.fill("#pairing-code", _pairing_code(server, venue=venue))
    page.click("#pair")
    page.wait_for_selector("[data-testid=scan]", timeout=20_000)  # a loaded 2-core machine
    _until(page, "document.body.dataset.ready === '1'")


def _until(page: Page, expression: str, timeout_s: float = 10) -> None:
    """Poll a page expression (wait_for_function evaluates strings, which the CSP forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(f"() => Boolean({expression})"):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.002)


def _scan(page: Page, code: str) -> dict[str, str]:
    seq = page.eval_on_selector("#verdict", "e => Number(e.dataset.seq || 0)")
    page.focus("[data-testid=scan]")
    page.keyboard.insert_text(code)
    page.keyboard.press("Enter")
    _until(page, f"Number(document.querySelector('#verdict').dataset.seq) > {seq}")
    shown: dict[str, str] = page.eval_on_selector("#verdict", "e => ({...e.dataset})")
    return shown


def test_pair_and_scan_online(console_server: ConsoleServer, page: Page) -> None:
    page.goto(f"{console_server.base_url}/gate/")
    page.fill("#pairing-code", "AAAA-BBBB")
    page.click("#pair")
    page.wait_for_selector("text=配对码无效、已使用或已过期")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _paired(page, console_server)
    ann, bo = Resident(console_server), Resident(console_server)
    first = _scan(page, ann.code())
    assert (first["decision"], first["reason"], first["mode"]) == ("admit", "ok", "online")
    assert page.is_visible("text=通行")
    again = _scan(page, ann.code())
    assert (again["decision"], again["reason"]) == ("deny", "already_inside")
    assert page.is_visible("text=已在场内")
    page.check("#dir-out")
    out = _scan(page, ann.code())
    assert (out["decision"], out["reason"]) == ("admit", "ok")
    page.check("#dir-in")
    admitted = _scan(page, bo.code())
    assert admitted["decision"] == "admit"
    page.click("#annul")
    _until(page, "document.querySelector('#verdict').dataset.reason === 'annulled'")
    typed = bo.code()
    page.focus("[data-testid=scan]")
    page.keyboard.type(typed[:20], delay=5)  # a slow scanner: keystrokes with gaps
    page.keyboard.insert_text(typed[20:])
    page.keyboard.press("Enter")
    _until(page, "document.querySelector('#verdict').dataset.reason !== 'annulled'")
    assert page.eval_on_selector("#verdict", "e => e.dataset.decision") == "admit"
    page.screenshot(path=str(REPO / "docs" / "img" / "gate-console.png")) if _update() else None
    # A code another gate already took is code_replayed here, in words.
    cy = Resident(console_server)
    taken = cy.code()
    other = console_server.credentials["venue"]["gates"][0]
    elsewhere = httpx.post(
        f"{console_server.base_url}/v1/gates/scan",
        json={"scan_id": f"elsewhere-{random.randrange(10**9)}", "code": taken, "direction": "in"},
        headers={"Authorization": f"Bearer {console_server.machine_token(other)}"},
    )
    assert elsewhere.status_code == 200, elsewhere.text
    replayed = _scan(page, taken)
    assert (replayed["decision"], replayed["reason"]) == ("deny", "code_replayed")
    assert page.is_visible("text=码已被使用")
    assert not errors, errors


def _update() -> bool:
    import os

    return os.environ.get("UPDATE_DOCS_IMG") == "1"


def test_offline_from_bundle_queue_then_syncs(console_server: ConsoleServer, page: Page) -> None:
    _paired(page, console_server)
    _until(page, "!document.querySelector('#bundle-age').textContent.includes('无')")
    ann, bo = Resident(console_server), Resident(console_server)
    code_ann = ann.code()
    page.context.set_offline(True)
    first = _scan(page, code_ann)
    assert (first["decision"], first["reason"], first["mode"]) == ("admit", "ok", "offline")
    again = _scan(page, ann.code())
    assert (again["decision"], again["reason"]) == ("deny", "already_inside")
    # The queue is in IndexedDB (the reload while offline: the test below).
    assert page.eval_on_selector("#queue", "e => e.dataset.count") == "2"
    third = _scan(page, bo.code())
    assert (third["decision"], third["mode"]) == ("admit", "offline")
    # Meanwhile an online gate admitted ann again: the sync reports the conflict.
    page.context.set_offline(False)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_selector("[data-testid=synced]", timeout=15_000)
    assert page.eval_on_selector("#queue", "e => e.dataset.count") == "0"


def test_code_vectors_in_the_browser(console_server: ConsoleServer, page: Page) -> None:
    """Every vector of tests/vectors, printed codes included, gives in the browser what it
    gives in Python: validity, reason, type, expiry, code id, pseudonym, and the replay rule
    over its presentations (a printed code is never consumed)."""
    page.goto(f"{console_server.base_url}/gate/")
    url = page.evaluate(
        "JSON.parse(document.querySelector('script[type=importmap]').textContent).imports"
    )
    module = next(v for k, v in url.items() if k.endswith("common/gate-offline.js"))
    vectors = [
        json.loads(p.read_text()) for p in sorted((REPO / "tests" / "vectors").glob("*.json"))
    ]
    results: list[dict[str, Any]] = page.evaluate(
        """async ([module, vectors]) => {
          const m = await import(module);
          const out = [];
          const kinds = {identity: m.TYPE_IDENTITY, place: m.TYPE_PLACE, printed: m.TYPE_PRINTED};
          for (const v of vectors) {
            const keys = await m.importKeys(v.jwks);
            const now = Date.parse(v.now);
            const skew = (v.skew_s ?? 30) * 1000;
            const revoked = new Set(v.revoked || []);
            const r = await m.verify(v.code, keys, revoked, now, skew, kinds[v.kind]);
            const row = {valid: r.valid, reason: r.reason, code_id: r.codeId ?? null,
              type: r.kind ?? null, status: r.status ?? null,
              expires_at: r.valid
                ? new Date((r.issuedAt + r.lifetime) * 1000).toISOString() : null};
            if (v.gate_keys) row.pseudonym = await m.dailyPseudonym(r, v.gate_keys);
            if (v.presentations) {
              const memory = new m.OfflineGate();  // its replay memory, one verifier at a time
              memory.seen = new Map();
              row.presented = v.presentations.map((p) => {
                memory.gateId = p.verifier;
                return memory.present(r, now).reason;
              });
            }
            out.push(row);
          }
          return out;
        }""",
        [module, vectors],
    )
    assert len(results) == len(vectors)
    assert {v["kind"] for v in vectors} == {"identity", "place", "printed"}
    for vector, got in zip(vectors, results, strict=True):
        want = vector["expected"]
        name = vector["name"]
        assert (got["valid"], got["reason"]) == (want["valid"], want["reason"]), name
        if "type" in want:
            assert got["type"] == want["type"], name
        if "status" in want or want.get("type") == "printed":
            assert got["status"] == want.get("status"), name  # a printed code: none
        if want.get("expires_at"):
            assert got["expires_at"].replace(".000Z", "Z") == want["expires_at"], name
        if want.get("code_id"):
            assert got["code_id"] == want["code_id"], name
        if want.get("daily_pseudonym"):
            assert got["pseudonym"] == want["daily_pseudonym"], name
        if "presentations" in vector:
            assert got["presented"] == [p["reason"] for p in vector["presentations"]], name


def test_scan_to_verdict_time(console_server: ConsoleServer, page: Page) -> None:
    _paired(page, console_server)
    _until(page, "!document.querySelector('#bundle-age').textContent.includes('无')")
    people = [Resident(console_server) for _ in range(4)]
    timings: dict[str, list[float]] = {"online": [], "offline": []}
    for mode in ("online", "offline"):
        page.context.set_offline(mode == "offline")
        for i in range(200):
            shown = _scan(page, people[i % 4].code())
            assert shown["mode"] == mode
            timings[mode].append(float(shown["ms"]))
    page.context.set_offline(False)
    for mode, values in timings.items():
        values.sort()
        median = statistics.median(values)
        p99 = values[int(len(values) * 0.99) - 1]
        print(f"scan-to-verdict {mode}: median {median:.1f} ms, p99 {p99:.1f} ms")
    assert statistics.median(timings["offline"]) < 50
    assert statistics.median(timings["online"]) < 100


def test_reload_offline_keeps_queue_and_syncs_conflict(
    console_server: ConsoleServer, page: Page
) -> None:
    """The service worker serves the shell with no network; the IndexedDB queue survives the
    reload; on return the sync reports the conflict (admitted online elsewhere meanwhile)."""
    _paired(page, console_server)
    _until(page, "!document.querySelector('#bundle-age').textContent.includes('无')")
    _until(page, "document.body.dataset.sw === 'ready'")
    ann, bo = Resident(console_server), Resident(console_server)
    page.context.set_offline(True)
    assert _scan(page, ann.code())["mode"] == "offline"
    assert _scan(page, bo.code())["decision"] == "admit"
    page.reload()
    page.wait_for_selector("[data-testid=scan]")
    _until(page, "document.body.dataset.ready === '1'")
    assert page.eval_on_selector("#queue", "e => e.dataset.count") == "2"
    assert page.eval_on_selector("#net", "e => e.dataset.state") == "offline"
    # Meanwhile another gate, online, admitted ann: ann's offline admit is a conflict.
    venue_id, headers = _operator(console_server)
    other = httpx.post(
        f"{console_server.base_url}/v1/venues/{venue_id}/gates",
        json={"name": f"Online {random.randrange(10**6)}", "direction": "in"},
        headers=headers,
    ).json()
    pairing = httpx.post(
        f"{console_server.base_url}/v1/venues/{venue_id}/gates/{other['id']}/pairing",
        headers=headers,
    ).json()["pairing_code"]
    creds = httpx.post(
        f"{console_server.base_url}/v1/gates/pair", json={"pairing_code": pairing}
    ).json()
    gate_token = console_server.machine_token(creds)
    online = httpx.post(
        f"{console_server.base_url}/v1/gates/scan",
        json={"scan_id": f"t-{random.randrange(10**12)}", "code": ann.code(), "direction": "in"},
        headers={"Authorization": f"Bearer {gate_token}"},
    )
    assert online.json()["decision"] == "admit", online.text
    page.context.set_offline(False)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_selector("[data-testid=synced]", timeout=15_000)
    assert page.eval_on_selector("#queue", "e => e.dataset.count") == "0"
    conflicts = page.eval_on_selector_all(
        "[data-testid=conflict]", "es => es.map(e => [e.dataset.conflicts, e.textContent])"
    )
    assert len(conflicts) == 1, conflicts
    kinds, words = conflicts[0]
    assert "already_inside" in kinds or "code_admitted_elsewhere" in kinds, kinds
    assert "已在场内" in words or "其他闸机" in words, words
    page.screenshot(path=str(REPO / "docs" / "img" / "gate-sync.png")) if _update() else None


def test_expired_bundle_and_late_annul_are_refused(
    console_server: ConsoleServer, page: Page
) -> None:
    page.clock.install()
    _paired(page, console_server)
    _until(page, "!document.querySelector('#bundle-age').textContent.includes('无')")
    ann, bo = Resident(console_server), Resident(console_server)
    assert _scan(page, ann.code())["decision"] == "admit"
    page.clock.fast_forward(61_000)
    page.click("#annul")
    _until(page, "document.querySelector('#notice').dataset.key === 'annul_too_late'")
    assert page.is_visible("text=已超过 60 秒，无法撤销上次通行")
    page.context.set_offline(True)
    page.clock.fast_forward("25:00:00")
    shown = _scan(page, bo.code())
    assert (shown["decision"], shown["mode"]) == ("deny", "offline")
    assert page.is_visible("[data-testid=reason] >> text=离线数据已过期，无法离线判定")
    assert page.eval_on_selector("#queue", "e => e.dataset.count") == "0"
    page.screenshot(path=str(REPO / "docs" / "img" / "gate-expired.png")) if _update() else None
    page.context.set_offline(False)


def test_language_switch_is_remembered(console_server: ConsoleServer, page: Page) -> None:
    _paired(page, console_server)
    shown = _scan(page, Resident(console_server).code())
    assert shown["decision"] == "admit"
    page.click("[data-testid=lang]")
    assert page.is_visible("#verdict >> text=ADMIT")
    assert page.eval_on_selector("html", "e => e.lang") == "en"
    page.reload()
    page.wait_for_selector("[data-testid=scan]")
    assert page.is_visible("text=Annul last admit")
    page.click("[data-testid=lang]")
    assert page.is_visible("text=撤销上次通行")


def _y4m_of_png(png: bytes, path: Path, seconds: int = 4, fps: int = 10) -> None:
    """A 640x480 I420 y4m video of the code PNG centred on white (Chromium's fake camera)."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None, "not a PNG"
    side = 400
    code = cv2.resize(image, (side, side), interpolation=cv2.INTER_NEAREST)
    frame = np.full((480, 640), 255, np.uint8)
    frame[40 : 40 + side, 120 : 120 + side] = code
    yuv = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), cv2.COLOR_BGR2YUV_I420)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W640 H480 F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(seconds * fps):
            out.write(b"FRAME\n")
            out.write(yuv.tobytes())


def test_camera_scan_admits(
    console_server: ConsoleServer, playwright: Playwright, tmp_path: Path
) -> None:
    resident = Resident(console_server)
    png = httpx.get(
        f"{console_server.base_url}/v1/codes/me", params={"format": "png"}, headers=resident.headers
    )
    assert png.status_code == 200, png.text
    video = tmp_path / "code.y4m"
    _y4m_of_png(png.content, video)
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    browser = launch_chromium(playwright, args)
    try:
        size = {"width": CONSOLE_VIEWPORT["width"], "height": CONSOLE_VIEWPORT["height"]}
        context = browser.new_context(viewport=size, locale="zh-CN")  # type: ignore[arg-type]
        context.grant_permissions(["camera"], origin=console_server.base_url)
        page = context.new_page()
        _paired(page, console_server)
        page.click("[data-testid=camera]")
        _until(page, "Number(document.querySelector('#verdict').dataset.seq) >= 1", 20)
        shown = page.eval_on_selector("#verdict", "e => ({...e.dataset})")
        assert (shown["decision"], shown["reason"]) == ("admit", "ok"), shown
        assert page.is_visible("#verdict >> text=通行")
        time.sleep(1.5)  # the code stays in view: still one scan, not one per frame
        assert page.eval_on_selector("#verdict", "e => e.dataset.seq") == "1"
        page.screenshot(path=str(REPO / "docs" / "img" / "gate-camera.png")) if _update() else None
    finally:
        browser.close()
