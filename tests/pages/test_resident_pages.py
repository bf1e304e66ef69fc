"""The resident pages in Chromium against one real server: log in, bind identity, the
code (decoded from a screenshot and verified by a gate), refresh without reload, a
dependent's code, booking, paying, elder mode, English, offline, expired sessions,
double taps, accessibility (axe-core) and the headers the pages are served with."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Request

from app.pages import build_site, security_headers
from app.settings import SettingsError
from tests.factories import valid_id_number
from tests.pages.conftest import (
    LIFETIME_S,
    PagesServer,
    Person,
    api_resident,
    new_id_number,
    new_phone,
    open_as,
)

pytestmark = pytest.mark.e2e

AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
HIDE = """hidden => {
    Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
    document.dispatchEvent(new Event('visibilitychange'));
}"""
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def shot(page: Page, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def decode_qr(path: Path) -> str:
    image = cv2.imread(str(path))
    assert image is not None, path
    text, _points, _ = cv2.QRCodeDetectorAruco().detectAndDecode(image)
    assert text, f"no QR code decoded from {path}"
    return str(text)


def gate_verify(server: PagesServer, code: str) -> dict[str, Any]:
    gate = server.credentials["venue"]["gates"][0]
    token = server.machine_token(
        {"client_id": gate["client_id"], "client_secret": gate["client_secret"]}
    )
    answer = httpx.post(
        f"{server.base_url}/v1/codes/verify",
        json={"code": code},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    verdict: dict[str, Any] = answer.json()
    return verdict


def requests_to(page: Page, method: str, pattern: str) -> list[Request]:
    seen: list[Request] = []
    page.on(
        "request",
        lambda r: seen.append(r) if r.method == method and re.search(pattern, r.url) else None,
    )
    return seen


def serious_violations(page: Page) -> list[str]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))  # over DevTools: CSP does not apply
    found: list[str] = page.evaluate(
        """async () => (await axe.run(document)).violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"""
    )
    return found


def keep_for_docs(path: Path, name: str) -> None:
    """The main screenshots are committed under docs/img; UPDATE_DOCS_IMG=1 refreshes them."""
    if os.environ.get("UPDATE_DOCS_IMG") == "1":
        shutil.copyfile(path, DOCS_IMG / name)


# -- logging in, identity, the code --------------------------------------------------------


def test_login_bind_show_code_that_a_gate_accepts_and_refresh_without_reload(
    page: Page, server: PagesServer, shots: Path
) -> None:
    page.goto(f"{server.base_url}/app/")
    page.wait_for_selector("#login-phone")
    page.fill("#login-phone", new_phone())
    page.click("#send-otp")
    hint = page.text_content("#debug-code") or ""
    otp = re.search(r"(\d{6})", hint)
    assert otp, hint  # the dev hint with the code the API returned as debug_code
    page.fill("#login-otp", otp.group(1))
    keep_for_docs(shot(page, shots, "login"), "app-login.png")
    assert serious_violations(page) == []
    page.click("#login-submit")

    # Real-name binding: a wrong ID number is answered in Chinese beside the field.
    page.wait_for_selector("#identity-form")
    page.fill("#identity-name", "王小红")
    page.fill("#identity-id_number", "110105194912310021")
    page.click("#identity-submit")
    error = page.locator("#identity-id_number-error")
    error.wait_for()
    page.wait_for_function("() => document.querySelector('#identity-id_number-error').textContent")
    assert error.text_content() == "身份证号码不正确，请检查地区码、出生日期和校验位。"
    assert "{" not in (page.text_content("main") or "")  # never raw JSON
    page.fill("#identity-name", "1")
    page.fill("#identity-id_number", new_id_number())
    page.click("#identity-submit")
    page.wait_for_function("() => document.querySelector('#identity-name-error').textContent")
    assert "姓名应为" in (page.text_content("#identity-name-error") or "")
    keep_for_docs(shot(page, shots, "identity"), "app-identity.png")
    assert serious_violations(page) == []
    page.fill("#identity-name", "王小红")
    page.click("#identity-submit")

    # The code: frame in the status colour with its name, the masked name, a countdown.
    page.wait_for_selector("#qr[data-code]")
    assert page.text_content("#code-status") == "绿码"
    assert page.text_content("#masked-name") == "王*红"
    assert "秒后自动刷新" in (page.text_content("#countdown") or "")
    assert "status-green" in (page.get_attribute("#code-frame", "class") or "")
    path = shot(page, shots, "code")
    keep_for_docs(path, "app-code.png")
    shown = page.get_attribute("#qr", "data-code")
    decoded = decode_qr(path)
    assert decoded == shown
    verdict = gate_verify(server, decoded)
    assert verdict["valid"] is True and verdict["reason"] == "ok"
    assert verdict["subject"]["masked_name"] == "王*红"
    assert serious_violations(page) == []

    # Refreshed in place after refresh_after: same document, a new code.
    page.evaluate("() => { window.__sameDocument = true; }")
    page.wait_for_function(
        "old => document.querySelector('#qr').dataset.code !== old", arg=shown, timeout=8000
    )
    assert page.evaluate("() => window.__sameDocument") is True
    renewed = decode_qr(shot(page, shots, "code-refreshed"))
    assert renewed != decoded and gate_verify(server, renewed)["valid"] is True


def test_code_first_render_is_fast_and_pauses_while_hidden(
    page: Page, server: PagesServer, shots: Path
) -> None:
    person = api_resident(server)
    open_as(page, server, person, "code")
    page.wait_for_selector("#qr[data-code]")
    page.reload()
    page.wait_for_selector("#qr[data-code]")
    first_render_ms = page.evaluate("() => performance.now()")
    (shots / "first-render-ms.txt").write_text(f"{first_render_ms:.0f}\n")
    print(f"code page first render: {first_render_ms:.0f} ms")
    # Hidden: no code is fetched; shown again past refresh time: renewed at once.
    fetches = requests_to(page, "GET", r"/v1/codes/me")
    page.evaluate(HIDE, True)
    page.wait_for_timeout(4500)
    assert fetches == []
    page.evaluate(HIDE, False)
    page.wait_for_timeout(500)
    assert len(fetches) == 1


def test_a_dependents_code(page: Page, server: PagesServer, shots: Path) -> None:
    person = api_resident(server)
    open_as(page, server, person, "me")
    page.fill("#dependent-name", "王小明")
    page.fill("#dependent-id_number", _child_id())
    page.select_option("#dependent-relation", "child")
    page.click("#dependent-add")
    page.wait_for_selector("#dependents li")
    keep_for_docs(shot(page, shots, "me"), "app-me.png")
    assert serious_violations(page) == []
    page.goto(f"{server.base_url}/app/#/code")
    page.wait_for_selector("#qr[data-code]")
    page.click("text=亲友码：王*明")
    page.wait_for_function("() => document.querySelector('#masked-name').textContent === '王*明'")
    page.wait_for_function("() => document.querySelector('#code-frame').dataset.state === 'valid'")
    path = shot(page, shots, "code-dependent")
    decoded = decode_qr(path)
    verdict = gate_verify(server, decoded)
    assert verdict["valid"] is True and verdict["subject"]["masked_name"] == "王*明"


def _child_id() -> str:
    return valid_id_number(date(2016, 3, 1) + timedelta(days=random.randrange(900)))


# -- booking ---------------------------------------------------------------------------------


def _slots_tomorrow(server: PagesServer, *capacities: int) -> list[dict[str, Any]]:
    venue = server.credentials["venue"]
    operator = server.machine_token(venue["operator"])
    tomorrow = (datetime.now(UTC) + timedelta(hours=8) + timedelta(days=1)).date()
    made = []
    for i, capacity in enumerate(capacities):
        start = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 1 + i, tzinfo=UTC)
        start += timedelta(minutes=hash(new_phone()) % 50)
        answer = httpx.post(
            f"{server.base_url}/v1/venues/{venue['id']}/slots",
            json={
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(minutes=30)).isoformat(),
                "capacity": capacity,
                "walk_in": 0,
            },
            headers={"Authorization": f"Bearer {operator}"},
        )
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    return made


def _open_tomorrow(page: Page, server: PagesServer) -> None:
    page.click(f"button[data-venue='{server.credentials['venue']['id']}']")
    tomorrow = (datetime.now(UTC) + timedelta(hours=8) + timedelta(days=1)).date().isoformat()
    page.click(f"button[data-day='{tomorrow}']")
    page.wait_for_selector("#booking-rules")


def test_book_with_a_double_tap_then_cancel_and_problems_as_sentences(
    page: Page, server: PagesServer, shots: Path
) -> None:
    roomy, full = _slots_tomorrow(server, 20, 1)
    other = api_resident(server)
    taken = httpx.post(
        f"{server.base_url}/v1/reservations", json={"slot_id": full["id"]}, headers=other.headers
    )
    assert taken.status_code == 201, taken.text
    person = api_resident(server)
    open_as(page, server, person, "book")
    _open_tomorrow(page, server)
    rules = page.text_content("#booking-rules") or ""
    assert "每次最多 5 人" in rules and "每人每天只能预约一次" in rules  # before any request

    # slot_full, as a sentence.
    page.click(f"button[data-slot='{full['id']}']")
    page.wait_for_selector("#book-status .notice.error")
    assert page.text_content("#book-status") == "这个时段已经约满了，请换一个时段。"

    # A double tap books once.
    posts = requests_to(page, "POST", r"/v1/reservations$")
    page.dblclick(f"button[data-slot='{roomy['id']}']")
    page.wait_for_selector("#book-status .notice.ok")
    assert len(posts) == 1
    row = page.locator("#my-bookings li.booking.booked")
    row.wait_for()
    assert "已预约" in (row.text_content() or "")
    keep_for_docs(shot(page, shots, "book"), "app-book.png")
    assert serious_violations(page) == []

    # Booking twice that day: already_booked, as a sentence.
    page.click(f"button[data-slot='{roomy['id']}']")
    page.wait_for_selector("#book-status .notice.error")
    assert "当天已预约过这个场馆" in (page.text_content("#book-status") or "")

    page.click("#my-bookings li.booking.booked button.cancel")
    page.wait_for_selector("#my-bookings li.booking.cancelled")
    assert page.text_content("#book-status") == "已取消预约。"
    mine = httpx.get(f"{server.base_url}/v1/residents/me/reservations", headers=person.headers)
    assert [r["status"] for r in mine.json()["items"]] == ["cancelled"]


# -- paying ----------------------------------------------------------------------------------


def _bill_through_the_hospital(server: PagesServer, person: Person) -> dict[str, Any]:
    hospital = server.machine_token(server.credentials["hospital"]["client"])
    headers = {"Authorization": f"Bearer {hospital}"}
    code = httpx.get(f"{server.base_url}/v1/codes/me", headers=person.headers).json()["code"]
    key = new_phone()
    opened = httpx.post(
        f"{server.base_url}/v1/encounters",
        json={"code": code, "department": "internal-medicine"},
        headers={**headers, "Idempotency-Key": f"open-{key}"},
    )
    assert opened.status_code in (200, 201), opened.text
    encounter = opened.json()["id"]
    charged = httpx.post(
        f"{server.base_url}/v1/encounters/{encounter}/charges",
        json={
            "charge_id": "rx-1",
            "items": [
                {"item_code": "A001", "name": "诊查费", "category": "consultation",
                 "quantity": 1, "unit_price_fen": 5000, "insurance_class": "A"},
                {"item_code": "B104", "name": "阿莫西林", "category": "drug",
                 "quantity": 2, "unit_price_fen": 3150, "insurance_class": "B"},
            ],
        },
        headers=headers,
    )  # fmt: skip
    assert charged.status_code in (200, 201), charged.text
    closed = httpx.post(
        f"{server.base_url}/v1/encounters/{encounter}/close",
        json={},
        headers={**headers, "Idempotency-Key": f"close-{key}"},
    )
    assert closed.status_code == 200, closed.text
    settled: dict[str, Any] = closed.json()
    return settled


def test_enrol_get_billed_and_pay_with_a_double_tap(
    page: Page, server: PagesServer, shots: Path
) -> None:
    person = api_resident(server)
    open_as(page, server, person, "pay")
    page.select_option("#enrol-method", "pm_sandbox_declined")
    page.click("#enrol")
    page.wait_for_selector("#available")
    assert page.text_content("#available") == "可用额度 ¥3000.00 / 总额度 ¥3000.00"

    closed = _bill_through_the_hospital(server, person)
    assert closed["status"] == "payment_pending"  # the declined card could not be charged
    page.reload()
    bill = page.locator(f"li.bill[data-bill='{closed['bill_id']}']")
    bill.wait_for()
    text = bill.text_content() or ""
    assert "待支付" in text and "总额 ¥113.00" in text
    assert f"医保支付 ¥{closed['insurance_fen'] / 100:.2f}" in text
    bill.locator("summary").click()
    bill.locator("details li").first.wait_for()
    assert "诊查费 × 1" in (bill.locator("details").text_content() or "")
    keep_for_docs(shot(page, shots, "pay"), "app-pay.png")
    assert serious_violations(page) == []

    posts = requests_to(page, "POST", r"/pay$")
    bill.locator("select").select_option("pm_sandbox_ok")
    bill.locator("button.pay").dblclick()
    page.wait_for_selector("#pay-status .notice.ok")
    assert len(posts) == 1 and posts[0].headers.get("idempotency-key")
    page.locator(f"li.bill.paid[data-bill='{closed['bill_id']}']").wait_for()
    shot(page, shots, "pay-paid")
    answer = httpx.get(f"{server.base_url}/v1/bills/{closed['bill_id']}", headers=person.headers)
    assert answer.json()["status"] == "paid"


# -- elder mode, languages, phones -------------------------------------------------------------


def test_elder_mode_sizes_are_remembered_and_english_switch(
    page: Page, server: PagesServer, shots: Path
) -> None:
    person = api_resident(server)
    open_as(page, server, person, "book")
    page.wait_for_selector("button.venue")
    page.click("#elder-toggle")
    page.reload()
    page.wait_for_selector("button.venue")
    size = page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert size >= 22
    heights = page.evaluate(
        """() => [...document.querySelectorAll('main button:not([hidden]), header button')]
                 .filter(b => b.offsetParent !== null)
                 .map(b => b.getBoundingClientRect().height)"""
    )
    assert heights and min(heights) >= 56, heights
    keep_for_docs(shot(page, shots, "book-elder"), "app-elder.png")
    assert serious_violations(page) == []

    page.click("#lang-toggle")
    page.wait_for_selector("text=My code")
    assert page.text_content("h1") == "Book a visit"
    page.reload()
    page.wait_for_selector("text=My code")  # remembered too
    shot(page, shots, "book-english")


@pytest.mark.parametrize("size", [(360, 640), (414, 896)])
def test_pages_fit_small_and_large_phones(
    page: Page, server: PagesServer, shots: Path, size: tuple[int, int]
) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    person = api_resident(server)
    for route in ("code", "book", "pay", "me"):
        open_as(page, server, person, route)
        page.wait_for_selector("main h1")
        page.wait_for_load_state("networkidle")
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= size[0], f"{route} overflows at {size}"
        shot(page, shots, f"{route}-{size[0]}x{size[1]}")
        assert serious_violations(page) == [], route


# -- bad network, expired sessions -------------------------------------------------------------


def test_offline_banner_and_an_expired_code_is_never_shown_as_valid(
    context: BrowserContext, page: Page, server: PagesServer, shots: Path
) -> None:
    person = api_resident(server)
    open_as(page, server, person, "code")
    page.wait_for_selector("#qr[data-code]")
    assert page.is_hidden("#offline")
    context.set_offline(True)
    page.wait_for_selector("#offline", state="visible")
    assert "网络已断开" in (page.text_content("#offline") or "")
    page.wait_for_function(
        "() => document.querySelector('#code-frame').dataset.state === 'expired'",
        timeout=(LIFETIME_S + 2) * 1000,
    )
    assert page.text_content("#code-overlay") == "已失效，等待网络恢复后刷新"
    assert "expired" in (page.get_attribute("#code-frame", "class") or "")
    keep_for_docs(shot(page, shots, "code-offline"), "app-offline.png")
    context.set_offline(False)
    page.wait_for_selector("#offline", state="hidden")
    page.wait_for_function("() => document.querySelector('#code-frame').dataset.state === 'valid'")


def test_an_expired_session_goes_to_login_keeps_the_draft_and_comes_back(
    page: Page, server: PagesServer
) -> None:
    person = api_resident(server, bind=False)
    open_as(page, server, person, "me")
    page.fill("#identity-name", "赵六")
    page.fill("#identity-id_number", "3101")
    page.evaluate(
        """() => localStorage.setItem('suishen.session', JSON.stringify(
                 {access: 'expired', refresh: 'rt_revoked', expiresAt: Date.now() + 600000}))"""
    )
    page.click("#identity-submit")
    page.wait_for_selector("#login-phone")
    assert "登录已过期" in (page.text_content("main") or "")
    page.fill("#login-phone", person.phone)
    page.click("#send-otp")
    hint = page.text_content("#debug-code") or ""
    page.fill("#login-otp", re.findall(r"\d{6}", hint)[0])
    page.click("#login-submit")
    page.wait_for_selector("#identity-form")
    assert page.input_value("#identity-name") == "赵六"
    assert page.input_value("#identity-id_number") == "3101"


def test_the_token_is_refreshed_before_it_expires(page: Page, server: PagesServer) -> None:
    person = api_resident(server)
    open_as(page, server, person, "code")
    page.wait_for_selector("#qr[data-code]")
    refreshes = requests_to(page, "POST", r"/v1/auth/refresh$")
    page.evaluate(
        """() => { const s = JSON.parse(localStorage.getItem('suishen.session'));
                   s.expiresAt = Date.now() + 30000;
                   localStorage.setItem('suishen.session', JSON.stringify(s)); }"""
    )
    page.reload()
    page.wait_for_function(
        "() => JSON.parse(localStorage.getItem('suishen.session')).expiresAt > Date.now() + 600000"
    )
    assert len(refreshes) == 1
    stored = json.loads(page.evaluate("() => localStorage.getItem('suishen.session')"))
    assert stored["refresh"] != person.tokens["refresh_token"]  # rotated
    page.click("a[href='#/me']")
    page.click("#logout")
    page.wait_for_selector("#login-phone")
    assert page.evaluate("() => localStorage.getItem('suishen.session')") is None


# -- how the pages are served ------------------------------------------------------------------


def test_served_with_csp_hashed_immutable_assets_and_no_inline_script(
    server: PagesServer,
) -> None:
    index = httpx.get(f"{server.base_url}/app/")
    assert index.status_code == 200 and index.headers["cache-control"] == "no-cache"
    csp = index.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'self'" in csp and index.headers["x-frame-options"] == "SAMEORIGIN"
    assert index.headers["x-content-type-options"] == "nosniff"
    assert index.headers["referrer-policy"] == "no-referrer"
    site = build_site()
    assert f"script-src 'self' {site.import_map_hash}" in csp
    assert httpx.get(f"{server.base_url}/app").headers["location"] == "/app/"
    urls = re.findall(r'(?:src|href)="(/app/assets/[^"]+)"', index.text)
    assert urls
    for url in urls:
        asset = httpx.get(f"{server.base_url}{url}")
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert re.search(r"\.[0-9a-f]{10}\.\w+$", url)
    assert httpx.get(f"{server.base_url}/app/assets/js/main.js").status_code == 404
    document = httpx.get(f"{server.base_url}/openapi.json").json()
    assert not [p for p in document["paths"] if p.startswith("/app")]


def test_frame_ancestors_come_from_the_setting() -> None:
    site = build_site()
    host = security_headers({"SUISHEN_PAGES_FRAME_ANCESTORS": "https://mini.example.cn"}, site)
    assert "frame-ancestors https://mini.example.cn" in host["Content-Security-Policy"]
    assert "X-Frame-Options" not in host
    none = security_headers({"SUISHEN_PAGES_FRAME_ANCESTORS": "'none'"}, site)
    assert none["X-Frame-Options"] == "DENY"
    with pytest.raises(SettingsError):
        security_headers({"SUISHEN_PAGES_FRAME_ANCESTORS": "x; script-src *"}, site)


def test_every_string_has_both_languages(page: Page, server: PagesServer) -> None:
    page.goto(f"{server.base_url}/app/")
    page.wait_for_selector("#login-phone")
    keys = page.evaluate(
        """async () => {
             const map = JSON.parse(document.querySelector('script[type=importmap]').textContent);
             const zh = (await import(map.imports['/app/assets/i18n/zh-CN.js'])).default;
             const en = (await import(map.imports['/app/assets/i18n/en.js'])).default;
             return [Object.keys(zh).sort(), Object.keys(en).sort()];
           }"""
    )
    assert keys[0] == keys[1] and len(keys[0]) > 100
