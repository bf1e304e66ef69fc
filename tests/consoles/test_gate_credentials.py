"""The gate console (/gate/) with what is not a phone's code: printed codes (离线码) decided
offline by the venue's policy and refused once revoked and the bundle refreshed, ID cards
typed by a card reader or by hand (online only), and a guardian's companions (同行人员)
each shown with their own verdict; on a phone-sized screen in elder mode."""

from __future__ import annotations

import json
import os
import random
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page

from tests.conftest import REPO
from tests.consoles.conftest import ConsoleServer
from tests.consoles.test_gate_console import Resident, _operator, _scan, _until
from tests.factories import valid_id_number

Venue = tuple[str, dict[str, str]]  # id, the operator's headers
PHONE = {"width": 390, "height": 844}


def _admin(server: ConsoleServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.machine_token(server.credentials['admin'])}"}


def fresh_venue(server: ConsoleServer, *, capacity: int = 100, **policy: Any) -> Venue:
    """A venue of its own (the package shares one server) with its operator."""
    admin = _admin(server)
    made = httpx.post(
        f"{server.base_url}/v1/venues",
        json={"name": f"闵行区图书馆 {random.randrange(10**6)}", "kind": "library",
              "district": "闵行区", "capacity": capacity, "policy": policy},
        headers=admin,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    venue_id: str = made.json()["id"]
    operator = httpx.post(
        f"{server.base_url}/v1/admin/clients",
        json={"kind": "operator", "tenant_id": venue_id},
        headers=admin,
    )
    assert operator.status_code == 201, operator.text
    token = server.machine_token(operator.json())
    return venue_id, {"Authorization": f"Bearer {token}"}


def printed_card(server: ConsoleServer, who: Resident) -> dict[str, Any]:
    """The card a 24-hour kiosk prints for `who`: identified by ID card + OTP, then issued."""
    admin = _admin(server)
    kiosk = httpx.post(
        f"{server.base_url}/v1/admin/clients",
        json={"kind": "kiosk", "location": "莘庄镇 24 小时自助服务点"},
        headers=admin,
    )
    assert kiosk.status_code == 201, kiosk.text
    kiosk_headers = {"Authorization": f"Bearer {server.machine_token(kiosk.json())}"}
    session = httpx.post(
        f"{server.base_url}/v1/kiosk/sessions",
        json={"name": who.name, "id_number": who.id_number},
        headers=kiosk_headers,
    )
    assert session.status_code == 201, session.text
    challenge = session.json()
    confirmed = httpx.post(
        f"{server.base_url}/v1/kiosk/sessions/{challenge['session_id']}/confirm",
        json={"otp": challenge["debug_code"]},
        headers=kiosk_headers,
    )
    assert confirmed.status_code in (200, 201), confirmed.text
    acting = {"Authorization": f"Bearer {confirmed.json()['access_token']}"}
    card = httpx.post(f"{server.base_url}/v1/codes/printed", json={}, headers=acting)
    assert card.status_code == 201, card.text
    issued: dict[str, Any] = card.json()
    return issued


def _installed(page: Page, server: ConsoleServer, venue: Venue | None = None) -> None:
    """The console set up with a new gate of `venue` (the demo venue by default), its
    credentials put where pairing leaves them: pairing itself is tested in
    test_gate_console.py, and its trades are rate limited per address (10 a minute)."""
    venue_id, headers = venue or _operator(server)
    gate = httpx.post(
        f"{server.base_url}/v1/venues/{venue_id}/gates",
        json={"name": f"Console {random.randrange(10**6)}", "direction": "both"},
        headers=headers,
    )
    assert gate.status_code == 201, gate.text
    page.goto(f"{server.base_url}/gate/")
    page.evaluate(
        "creds => localStorage.setItem('suishen.gate.credentials', creds)", json.dumps(gate.json())
    )
    page.reload()
    page.wait_for_selector("[data-testid=scan]")
    _until(page, "document.body.dataset.ready === '1'")


def _gate_token(server: ConsoleServer, venue: Venue) -> dict[str, str]:
    venue_id, headers = venue
    gate = httpx.post(
        f"{server.base_url}/v1/venues/{venue_id}/gates",
        json={"name": f"API {random.randrange(10**6)}", "direction": "both"},
        headers=headers,
    )
    assert gate.status_code == 201, gate.text
    return {"Authorization": f"Bearer {server.machine_token(gate.json())}"}


def _bundle_loaded(page: Page) -> str:
    """Waits for a verified bundle; its issue time."""
    _until(page, "document.querySelector('#bundle-age').dataset.issued")
    issued: str = page.eval_on_selector("#bundle-age", "e => e.dataset.issued")
    return issued


def _go_offline(page: Page) -> None:
    page.context.set_offline(True)
    page.evaluate("window.dispatchEvent(new Event('offline'))")


def _go_online(page: Page) -> None:
    page.context.set_offline(False)
    page.evaluate("window.dispatchEvent(new Event('online'))")


def _reason_text(page: Page) -> str:
    text: str = page.inner_text("[data-testid=reason]")
    return text


def test_printed_code_is_decided_offline_only_where_the_policy_allows(
    console_server: ConsoleServer, page_factory: Any, tmp_path: Path
) -> None:
    allowing = fresh_venue(console_server, printed_codes_offline=True)
    keeping = fresh_venue(console_server)
    card = printed_card(console_server, Resident(console_server, "李建国"))["code"]
    strict: Page = page_factory()
    _installed(strict, console_server, keeping)
    _bundle_loaded(strict)
    online = _scan(strict, card)
    assert (online["decision"], online["mode"], online["credential"]) == (
        "admit",
        "online",
        "printed",
    )
    assert "离线码" in strict.inner_text("#verdict .who") and "绿码" in strict.inner_text(
        "#verdict .who"
    )
    strict.check("#dir-out")
    assert _scan(strict, card)["decision"] == "admit"
    strict.check("#dir-in")
    _go_offline(strict)
    refused = _scan(strict, card)
    assert (refused["decision"], refused["reason"], refused["mode"]) == (
        "deny", "printed_offline_not_allowed", "offline",
    )  # fmt: skip
    assert _reason_text(strict) == "本场馆离线时不接受离线码"
    lenient: Page = page_factory()
    _installed(lenient, console_server, allowing)
    _bundle_loaded(lenient)
    _go_offline(lenient)
    admitted = _scan(lenient, card)
    assert (admitted["decision"], admitted["reason"], admitted["mode"]) == (
        "admit",
        "ok",
        "offline",
    )
    assert lenient.inner_text("[data-testid=printed-note]") == "离线码：健康状态无法离线核验"
    _shot(lenient, tmp_path, "gate-printed-offline.png")
    again = _scan(lenient, card)
    assert (again["decision"], again["reason"]) == ("admit", "ok"), "the same visit, answered again"
    assert lenient.eval_on_selector("#verdict .occ", "e => e.textContent").startswith("在场 1 ")
    assert lenient.eval_on_selector("#queue", "e => e.dataset.count") == "2"
    _go_online(lenient)
    _until(lenient, "document.querySelector('#queue').dataset.count === '0'", 15)
    _go_online(strict)


def test_revoked_card_is_refused_after_the_bundle_refreshes(
    console_server: ConsoleServer, page: Page
) -> None:
    venue = fresh_venue(console_server, printed_codes_offline=True)
    holder = Resident(console_server, "周桂英")
    card = printed_card(console_server, holder)
    _installed(page, console_server, venue)
    before = _bundle_loaded(page)
    _go_offline(page)
    assert _scan(page, card["code"])["decision"] == "admit", "the bundle predates the revocation"
    page.check("#dir-out")
    assert _scan(page, card["code"])["decision"] == "admit"
    page.check("#dir-in")
    # The card is reported lost in the app: every online gate refuses it (a photocopy too).
    revoked = httpx.post(
        f"{console_server.base_url}/v1/codes/printed/revoke", json={}, headers=holder.headers
    )
    assert revoked.status_code == 200, revoked.text
    photocopy = httpx.post(
        f"{console_server.base_url}/v1/gates/scan",
        json={"scan_id": f"copy-{random.randrange(10**9)}", "code": card["code"],
              "direction": "in"},
        headers=_gate_token(console_server, venue),
    )  # fmt: skip
    assert (photocopy.json()["decision"], photocopy.json()["reason"]) == ("deny", "code_revoked")
    # Back online: the sync reports the offline admission, and a fresh bundle is fetched.
    _go_online(page)
    page.wait_for_selector("[data-testid=synced]", timeout=15_000)
    conflicts = page.eval_on_selector_all(
        "[data-testid=conflict]", "es => es.map(e => [e.dataset.conflicts, e.textContent])"
    )
    assert [c for c in conflicts if "code_revoked" in c[0]], conflicts
    assert any("此码已作废" in words for _, words in conflicts), conflicts
    _until(page, f"document.querySelector('#bundle-age').dataset.issued !== {before!r}", 15)
    _go_offline(page)
    refused = _scan(page, card["code"])
    assert (refused["decision"], refused["reason"], refused["mode"]) == (
        "deny", "code_revoked", "offline",
    )  # fmt: skip
    assert _reason_text(page) == "码已作废"
    _go_online(page)


def _set_status(server: ConsoleServer, subject_id: str, status: str) -> None:
    authority = server.machine_token(server.credentials["authority"])
    valid_until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    done = httpx.put(
        f"{server.base_url}/v1/health-status/{subject_id}",
        json={"status": status, "reason": "测试", "valid_until": valid_until},
        headers={"Authorization": f"Bearer {authority}"},
    )
    assert done.status_code == 200, done.text


def _type_id_card(page: Page, number: str) -> dict[str, str]:
    """Staff type the number into the ID-card field and press the button."""
    seq = page.eval_on_selector("#verdict", "e => Number(e.dataset.seq || 0)")
    page.fill("[data-testid=id-card]", number)
    page.click("#id-card-check")
    _until(page, f"Number(document.querySelector('#verdict').dataset.seq) > {seq}")
    shown: dict[str, str] = page.eval_on_selector("#verdict", "e => ({...e.dataset})")
    return shown


def test_id_card_admits_and_refuses_online_and_is_not_decided_offline(
    console_server: ConsoleServer, page_factory: Any
) -> None:
    page: Page = page_factory()
    _installed(page, console_server)
    _bundle_loaded(page)
    ann, red = Resident(console_server, "王秀英"), Resident(console_server, "陈红")
    # The card reader types the number + Enter into the scan field, like the code scanner.
    read = _scan(page, ann.id_number)
    assert (read["decision"], read["reason"], read["credential"]) == ("admit", "ok", "id_card")
    assert "王*英" in page.inner_text("#verdict .who") and "身份证" in page.inner_text(
        "#verdict .who"
    )
    _set_status(console_server, red.subject_id, "red")
    refused = _type_id_card(page, red.id_number)
    assert (refused["decision"], refused["reason"]) == ("deny", "status_not_allowed")
    assert _reason_text(page) == "健康码颜色不允许入场"
    nobody = _type_id_card(page, valid_id_number(date(1951, 2, 3), region="310112"))
    assert (nobody["decision"], nobody["reason"]) == ("deny", "id_card_unknown")
    assert _reason_text(page) == "身份证未登记，无法核验"
    # A typo is caught by the check character before anything is sent.
    seq = page.eval_on_selector("#verdict", "e => e.dataset.seq")
    typo = ann.id_number[:-1] + ("0" if ann.id_number[-1] != "0" else "1")
    page.fill("[data-testid=id-card]", typo)
    page.click("#id-card-check")
    _until(page, "document.querySelector('#notice').dataset.key === 'id_card_bad'")
    assert page.eval_on_selector("#verdict", "e => e.dataset.seq") == seq
    # Offline nobody can tell whose card it is: the console says so, and queues nothing.
    _go_offline(page)
    offline = _scan(page, ann.id_number)
    assert (offline["decision"], offline["mode"], offline["reason"]) == (
        "deny", "offline", "id_card_offline",
    )  # fmt: skip
    assert _reason_text(page) == "离线时无法核验身份证，请出示随申码或离线码"
    assert page.eval_on_selector("#queue", "e => e.dataset.count") == "0"
    _go_online(page)
    # A venue that takes no ID cards refuses them in words.
    closed: Page = page_factory()
    _installed(closed, console_server, fresh_venue(console_server, id_card_allowed=False))
    shut = _scan(closed, ann.id_number)
    assert (shut["decision"], shut["reason"]) == ("deny", "id_card_not_allowed")
    assert _reason_text(closed) == "本场馆不接受身份证入场"


def _dependent(server: ConsoleServer, guardian: Resident, name: str, born: date) -> str:
    made = httpx.post(
        f"{server.base_url}/v1/residents/me/dependents",
        json={"name": name, "id_number": valid_id_number(born, region="310112"),
              "relation": "child"},
        headers=guardian.headers,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    dependent_id: str = made.json()["dependent_id"]
    return dependent_id


def _book_party(server: ConsoleServer, venue: Venue, guardian: Resident, party: list[str]) -> None:
    venue_id, operator = venue
    now = datetime.now(UTC).replace(microsecond=0)
    slot = httpx.post(
        f"{server.base_url}/v1/venues/{venue_id}/slots",
        json={"starts_at": (now - timedelta(minutes=10)).isoformat(),
              "ends_at": (now + timedelta(hours=2)).isoformat(), "capacity": 10},
        headers=operator,
    )  # fmt: skip
    assert slot.status_code == 201, slot.text
    booked = httpx.post(
        f"{server.base_url}/v1/reservations",
        json={"slot_id": slot.json()["id"], "dependents": party},
        headers=guardian.headers,
    )
    assert booked.status_code == 201, booked.text


def _companions(page: Page) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = page.eval_on_selector_all(
        "[data-testid=companion]",
        "es => es.map(e => ({...e.dataset, text: e.textContent}))",
    )
    return rows


def test_companions_are_shown_each_with_their_verdict(
    console_server: ConsoleServer, browser: Browser, tmp_path: Path
) -> None:
    venue = fresh_venue(console_server, capacity=2)
    guardian = Resident(console_server, "赵国强")
    children = [
        _dependent(console_server, guardian, "赵小明", date(2016, 3, 9)),
        _dependent(console_server, guardian, "赵小红", date(2018, 7, 1)),
    ]
    _book_party(console_server, venue, guardian, children)
    context = browser.new_context(viewport=PHONE, locale="zh-CN", timezone_id="Asia/Shanghai")  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        _installed(page, console_server, venue)
        page.click("[data-testid=elder]")
        assert page.eval_on_selector("html", "e => e.classList.contains('elder')")
        # Two places for a party of three: nobody is admitted, everyone is told why.
        full = _scan(page, guardian.code())
        assert (full["decision"], full["reason"]) == ("deny", "venue_full")
        party = _companions(page)
        assert [(c["decision"], c["reason"]) for c in party] == [("deny", "venue_full")] * 2
        assert all("禁止" in c["text"] and "场馆已满" in c["text"] for c in party), party
        assert {c["text"][:3] for c in party} == {"赵*明", "赵*红"}
        _shot(page, tmp_path, "gate-companions-full.png")
        httpx.patch(
            f"{console_server.base_url}/v1/venues/{venue[0]}",
            json={"capacity": 10},
            headers=venue[1],
        ).raise_for_status()
        admitted = _scan(page, guardian.code())
        assert (admitted["decision"], admitted["reason"]) == ("admit", "ok")
        party = _companions(page)
        assert [(c["decision"], c["reason"]) for c in party] == [("admit", "ok")] * 2
        assert all("通行" in c["text"] and "验证通过" in c["text"] for c in party), party
        assert "在场 3 / 10" in page.inner_text("#verdict .occ")
        _fits_the_screen(page)
        _shot(page, tmp_path, "gate-companions.png")
        page.click("[data-testid=lang]")
        assert all("ADMIT" in c["text"] and "valid" in c["text"] for c in _companions(page))
        page.click("[data-testid=lang]")
        # Elder mode is remembered on the device.
        page.reload()
        page.wait_for_selector("[data-testid=scan]")
        assert page.eval_on_selector("html", "e => e.classList.contains('elder')")
        assert _min_button_height(page) >= 56
    finally:
        context.close()


def test_companions_chosen_at_the_gate(console_server: ConsoleServer, page: Page) -> None:
    venue = fresh_venue(console_server)
    guardian = Resident(console_server, "孙志刚")
    _dependent(console_server, guardian, "孙小宝", date(2017, 5, 5))
    _dependent(console_server, guardian, "孙小贝", date(2019, 9, 9))
    _installed(page, console_server, venue)
    alone = _scan(page, guardian.code())
    assert (alone["decision"], alone["reason"]) == ("admit", "ok")
    assert _companions(page) == []
    picks = page.eval_on_selector_all("#party label", "es => es.map(e => e.textContent)")
    assert sorted(picks) == ["孙*宝", "孙*贝"]
    page.check("#party label:has-text('孙*贝') input")
    page.click("[data-testid=party-send]")
    _until(page, "document.querySelectorAll('[data-testid=companion]').length === 1")
    (chosen,) = _companions(page)
    assert (chosen["decision"], chosen["reason"]) == ("admit", "ok")
    assert chosen["text"].startswith("孙*贝")
    assert "在场 2 / 100" in page.inner_text("#verdict .occ")
    # The one left can still be let through; nobody is counted twice.
    assert page.eval_on_selector_all("#party label", "es => es.map(e => e.textContent)") == [
        "孙*宝"
    ]


def _min_button_height(page: Page) -> float:
    height: float = page.evaluate(
        "Math.min(...[...document.querySelectorAll('button')]"
        ".filter(b => b.offsetParent).map(b => b.getBoundingClientRect().height))"
    )
    return height


def _fits_the_screen(page: Page) -> None:
    """Nothing wider than the phone: no sideways scrolling at 390 px."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("UPDATE_DOCS_IMG") == "1":
        shutil.copy(path, REPO / "docs" / "img" / name)


def _offline_decisions_in_python(
    bundle: dict[str, Any], keys: dict[str, Any], gate_id: str, steps: list[list[Any]]
) -> list[list[Any]]:
    from venues.offline_gate import OfflineGate

    start = datetime.fromisoformat(bundle["document"]["issued_at"])
    gate = OfflineGate.load(bundle["bundle"], keys, gate_id, start)
    out = []
    for scan_id, code, direction, offset_s in steps:
        s = gate.decide(code, direction, start + timedelta(seconds=offset_s), scan_id)
        out.append([s.decision.value, s.reason, s.repeat_of, gate.occupancy])
    return out


def test_offline_decisions_in_the_browser_are_python_s(
    console_server: ConsoleServer, page: Page
) -> None:
    """One bundle, one sequence of scans (printed card, phone codes, a full venue, exits, a
    new visit, garbage): the browser's OfflineGate decides each exactly as
    venues/offline_gate.py does, at a venue allowing printed codes offline and at one not."""
    people = [Resident(console_server, n) for n in ("吴一", "吴二", "吴三")]
    card = printed_card(console_server, Resident(console_server, "吴老伯"))["code"]
    codes = [p.code() for p in people]
    steps = [
        ["s1", card, "in", 1], ["s2", card, "in", 2], ["s3", codes[0], "in", 3],
        ["s4", codes[0], "in", 4], ["s5", codes[1], "in", 5], ["s6", codes[2], "in", 6],
        ["s7", card, "out", 7], ["s8", codes[2], "in", 8], ["s9", codes[0], "out", 9],
        ["s10", card, "in", 10], ["s11", "SC1:NOT A CODE", "in", 11],
        ["s12", card[:-2] + "00", "in", 12], ["s13", codes[1], "in", 3600],
    ]  # fmt: skip
    page.goto(f"{console_server.base_url}/gate/")
    url = page.evaluate(
        "JSON.parse(document.querySelector('script[type=importmap]').textContent).imports"
    )
    module = next(v for k, v in url.items() if k.endswith("common/gate-offline.js"))
    keys = httpx.get(f"{console_server.base_url}/v1/gates/bundle/keys").json()
    for venue, want_card in (
        (fresh_venue(console_server, capacity=3, printed_codes_offline=True), "ok"),
        (fresh_venue(console_server, capacity=3), "printed_offline_not_allowed"),
    ):
        gate_headers = _gate_token(console_server, venue)
        bundle = httpx.get(f"{console_server.base_url}/v1/gates/bundle", headers=gate_headers)
        assert bundle.status_code == 200, bundle.text
        gate_id = "console-gate"
        python = _offline_decisions_in_python(bundle.json(), keys, gate_id, steps)
        browser = page.evaluate(
            """async ([module, token, keys, gateId, steps]) => {
              const m = await import(module);
              const gate = await m.OfflineGate.load(token, keys, gateId, Date.now());
              const t0 = Date.parse(gate.document.issued_at);
              const out = [];
              for (const [sid, code, direction, offset] of steps) {
                const s = await gate.decide(code, direction, t0 + offset * 1000, sid);
                out.push([s.decision, s.reason, s.repeat_of ?? null, gate.occupancy]);
              }
              return out;
            }""",
            [module, bundle.json()["bundle"], keys, gate_id, steps],
        )
        assert browser == python
        assert python[0][:2] == (["admit", "ok"] if want_card == "ok" else ["deny", want_card])
        reasons = {row[1] for row in python}
        assert {"code_malformed", "signature_invalid", "code_expired"} <= reasons, python
        if want_card == "ok":
            assert python[1][2] == "s1", "the same visit: answered with its admission"
            assert python[5][:2] == ["deny", "venue_full"], python
            assert python[9][:3] == ["admit", "ok", None], python


def test_too_many_id_card_checks_are_refused_in_words(
    console_server: ConsoleServer, page: Page
) -> None:
    """The server allows a gate 30 ID-card scans a minute; the 31st is a sentence on the
    console, not an offline decision and not a raw problem."""
    _installed(page, console_server, fresh_venue(console_server))
    creds = page.evaluate("JSON.parse(localStorage.getItem('suishen.gate.credentials'))")
    headers = {"Authorization": f"Bearer {console_server.machine_token(creds)}"}
    someone = Resident(console_server, "钱多多")
    with httpx.Client(base_url=console_server.base_url, headers=headers) as gate:
        for n in range(30):
            body = {"scan_id": f"rl-{n}-{random.randrange(10**9)}", "id_card": someone.id_number,
                    "direction": "in"}  # fmt: skip
            assert gate.post("/v1/gates/scan", json=body).status_code == 200
    shown = _scan(page, someone.id_number)
    assert (shown["decision"], shown["reason"], shown["mode"]) == ("deny", "rate_limited", "online")
    assert _reason_text(page) == "身份证核验过于频繁，请稍后再试"
    assert page.eval_on_selector("#queue", "e => e.dataset.count") == "0"
