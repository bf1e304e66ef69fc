"""The hospital desk (`/desk/`) in Chromium against the package's real server: log in with
the demo hospital's client, scan a resident's code (keyboard wedge: the code and Enter),
charge lines with running totals, close with a double click (one settlement), see the
split and the status, refund a line, today's list and the daily statement."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, Request

from tests.consoles.conftest import ConsoleServer
from tests.factories import valid_id_number

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def keep_for_docs(source: Path, name: str) -> None:
    """Copy a screenshot into docs/img/ when the run has UPDATE_DOCS_IMG=1."""
    if os.environ.get("UPDATE_DOCS_IMG") == "1":
        shutil.copyfile(source, DOCS_IMG / name)


def shot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def enrolled_resident(server: ConsoleServer) -> dict[str, str]:
    """A resident made through the API: OTP login, identity, credit enrolment."""
    base = server.base_url
    phone = f"137{random.randrange(10**8):08d}"
    sent = httpx.post(f"{base}/v1/auth/otp", json={"phone": phone})
    assert sent.status_code in (200, 201), sent.text
    login = httpx.post(
        f"{base}/v1/auth/login", json={"phone": phone, "otp": sent.json()["debug_code"]}
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    born = date(1960, 1, 1) + timedelta(days=random.randrange(365 * 40))
    bound = httpx.put(
        f"{base}/v1/residents/me/identity",
        json={"name": "王小红", "id_number": valid_id_number(born)},
        headers=headers,
    )
    assert bound.status_code == 200, bound.text
    enrolled = httpx.post(
        f"{base}/v1/credit/enroll",
        json={
            "payment_method": "pm_sandbox_ok",
            # A sandbox persona: 在职 45+, deductible (1,500 yuan) met this medical year,
            # 10.00 in the current-year account and 5.00 in the accumulated one.
            "insurance": {
                "persona": "employee_45",
                "deductible_met_fen": 150_000,
                "current_account_fen": 1_000,
                "accumulated_account_fen": 500,
            },
        },
        headers=headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    return headers


def code_of(server: ConsoleServer, headers: dict[str, str]) -> str:
    answer = httpx.get(f"{server.base_url}/v1/codes/me", headers=headers)
    assert answer.status_code == 200, answer.text
    code: str = answer.json()["code"]
    return code


def log_in(page: Page, server: ConsoleServer) -> dict[str, str]:
    client: dict[str, str] = server.credentials["hospital"]["client"]
    page.goto(f"{server.base_url}/desk/")
    page.fill("[name=client_id]", client["client_id"])
    page.fill("[name=client_secret]", "wrong secret")
    page.click("button[type=submit]")
    page.wait_for_selector(".problem")  # a sentence, not JSON
    assert "{" not in (page.text_content(".problem") or "")
    page.fill("[name=client_secret]", client["client_secret"])
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=scan]")
    # The secret stays in this tab's sessionStorage only.
    assert page.evaluate("() => localStorage.length") == 0 or "secret" not in str(
        page.evaluate("() => JSON.stringify(localStorage)")
    )
    return client


def add_line(page: Page, code: str, name: str, qty: int, price: str, klass: str) -> None:
    count = page.locator("[data-testid=lines] tbody tr").count()
    page.fill("[name=item_code]", code)
    page.fill("[name=item_name]", name)
    page.fill("[name=quantity]", str(qty))
    page.fill("[name=unit_price]", price)
    page.select_option("[name=insurance_class]", klass)
    page.click("[data-testid=charge-form] button[type=submit]")
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=lines] tbody tr').length === {count + 1}"
    )


def test_desk_from_scan_to_settled_bill_refund_and_statement(
    console_server: ConsoleServer, page_factory: Callable[[], Page], tmp_path: Path
) -> None:
    server = console_server
    folder = tmp_path / "screenshots"
    folder.mkdir()
    resident = enrolled_resident(server)
    page = page_factory()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    client = log_in(page, server)
    problems.clear()  # the wrong secret's 401 is logged by Chromium on purpose
    keep_for_docs(shot(page, folder, "desk-login"), "desk-login.png")

    # The keyboard wedge: the scanner types the code and Enter into the focused field.
    page.select_option("[name=department]", label="外科")
    page.keyboard.type(code_of(server, resident))
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=encounter] [data-testid=patient]")
    assert "*" in (page.text_content("[data-testid=patient]") or "")
    assert page.text_content("[data-testid=enc-status]") == "就诊中"

    add_line(page, "D001", "阿莫西林胶囊", 2, "12.50", "A")  # 25.00, class A
    add_line(page, "E010", "血常规", 1, "30", "B")  # 30.00, class B
    add_line(page, "M900", "一次性口罩", 1, "5.00", "C")  # 5.00, self-pay
    assert page.text_content("[data-testid=running-total]") == "合计 ¥60.00"
    charges = [r for r in posts if r.url.endswith("/charges")]
    assert len({(r.post_data_json or {})["charge_id"] for r in charges}) == 3
    keep_for_docs(shot(page, folder, "desk-charges"), "desk-charges.png")

    # The quote before closing, by the rule file at the demo hospital's tier 3 (60 % for
    # employee_45): self-paid items 5.00 (C) + 3.00 (B's 10 %); covered 52.00: current
    # account 10.00, co-pay 42.00 -> fund 25.20, patient 16.80 = accumulated 5.00 + cash 11.80.
    page.click("[data-testid=quote-button]")
    page.wait_for_selector("[data-testid=quote]")
    expected = {
        "total": "¥60.00",
        "self_paid_items_fen": "¥8.00",
        "current_account_fen": "¥10.00",
        "self_segment_accumulated_fen": "¥0.00",
        "self_segment_cash_fen": "¥0.00",
        "fund_fen": "¥25.20",
        "copay_accumulated_fen": "¥5.00",
        "copay_cash_fen": "¥11.80",
        "insurance": "¥40.20",
        "cash": "¥19.80",
    }
    quoted = {name: page.text_content(f"[data-testid=quote-{name}]") for name in expected}
    assert quoted == expected
    assert "患者需付" in (page.text_content("[data-testid=quote]") or "")

    # A double click on close: one request, one settlement.
    page.dblclick("[data-testid=close]")
    page.wait_for_selector("[data-testid=split]")
    closes = [r for r in posts if r.url.endswith("/close")]
    assert len(closes) == 1 and closes[0].headers.get("idempotency-key")
    assert page.text_content("[data-testid=split-total]") == "¥60.00"
    insurance = page.text_content("[data-testid=split-insurance]") or ""
    self_pay = page.text_content("[data-testid=split-self]") or ""
    assert insurance == "¥40.20"  # exactly the quote: accounts 15.00 + fund 25.20
    assert self_pay == "¥19.80"
    assert page.text_content("[data-testid=settle-status]") == "已结清"
    assert page.text_content("[data-testid=enc-status]") == "已结算"
    keep_for_docs(shot(page, folder, "desk-settled"), "desk-settled.png")

    token = server.machine_token(client)
    hospital = {"Authorization": f"Bearer {token}"}
    bills = httpx.get(f"{server.base_url}/v1/bills", headers=resident).json()["bills"]
    assert len(bills) == 1 and bills[0]["status"] == "paid"
    assert bills[0]["total_fen"] == 6_000

    # Refund the self-paid mask (after settlement): a keyed refund, the line marked.
    row = page.locator("[data-testid=lines] tbody tr", has_text="M900")
    row.locator("button").dblclick()
    page.wait_for_selector(".notice")
    assert "¥5.00" in (page.text_content(".notice") or "")
    assert row.locator("button").is_disabled()
    refunds = [r for r in posts if r.url.endswith("/refunds")]
    assert len(refunds) == 1

    # Today's list and the statement (after the refund they were refreshed).
    today = page.locator("[data-testid=today] tbody tr").first
    assert "外科" in (today.text_content() or "") and "已结清" in (today.text_content() or "")
    assert page.text_content("[data-testid=stmt-refunds]") == "1 · ¥5.00"
    day = page.evaluate("() => new Date().toLocaleDateString('sv-SE')")
    listed = httpx.get(f"{server.base_url}/v1/encounters?date={day}", headers=hospital).json()
    mine = [e for e in listed["encounters"] if e["department"] == "外科"]
    assert mine and mine[0]["bill"]["total_fen"] == 6_000
    keep_for_docs(shot(page, folder, "desk-today"), "desk-today.png")

    # English catalogue: same screen, other words.
    page.click("header button:has-text('English')")
    page.wait_for_selector("text=Today's encounters")
    # A new line makes the quote stale; the English quote names the patient's charge.
    # The department chosen before the switch is still chosen (surgery, now in English).
    assert page.input_value("[name=department]") == "surgery"
    page.fill("[data-testid=scan]", code_of(server, enrolled_resident(server)))
    page.press("[data-testid=scan]", "Enter")
    page.wait_for_selector("[data-testid=charge-form]")
    add_line(page, "D002", "Ibuprofen", 1, "10", "A")
    page.click("[data-testid=quote-button]")
    page.wait_for_selector("[data-testid=quote]")
    assert "The patient will be charged" in (page.text_content("[data-testid=quote]") or "")
    assert problems == []


def test_a_retried_close_reuses_its_key(
    console_server: ConsoleServer, page_factory: Callable[[], Page]
) -> None:
    """The close request fails on the network once; the retry sends the same key, and the
    server settles once."""
    server = console_server
    resident = enrolled_resident(server)
    page = page_factory()
    log_in(page, server)
    page.keyboard.type(code_of(server, resident))
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=charge-form]")
    add_line(page, "T1", "治疗", 1, "10", "A")
    keys: list[str] = []
    failed = {"done": False}

    def flaky(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        if not failed["done"]:
            failed["done"] = True
            route.abort()
        else:
            route.continue_()

    page.route("**/close", flaky)
    page.click("[data-testid=close]")
    page.wait_for_selector(".problem")
    assert "网络" in (page.text_content(".problem") or "")
    page.click("[data-testid=close]")
    page.wait_for_selector("[data-testid=split]")
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]
    bills = httpx.get(f"{server.base_url}/v1/bills", headers=resident).json()["bills"]
    assert len(bills) == 1
