"""The browser tests' fixtures: ONE real server for the package (demo data seeded, SQLite
and the embedded store in a temporary VAR_DIR, console SMS), ONE Chromium for the package (Debian's
package, driven by Playwright with `executable_path`), a new browser context per test.

Chromium missing is a failure, never a skip: `.ci/run` installs it (`apt-get install -y
chromium`)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from tests.browser import SeededServer, dev_server_env, launch_chromium, seeded_server
from tests.factories import valid_id_number

PHONE: ViewportSize = {"width": 390, "height": 844}
# Short code lifetimes so refresh and expiry happen within a test.
REFRESH_AFTER_S = 3
LIFETIME_S = 8


PagesServer = SeededServer


def _env(var_dir: Path) -> dict[str, str]:
    return dev_server_env(
        var_dir,
        SUISHEN_CODES_REFRESH_AFTER_S=str(REFRESH_AFTER_S),
        SUISHEN_CODES_LIFETIME_S=str(LIFETIME_S),
        SUISHEN_OTP_PER_PHONE_HOUR="100",
        SUISHEN_OTP_PER_PHONE_MINUTE="10",
    )


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PagesServer]:
    var_dir = tmp_path_factory.mktemp("pages-var")
    with seeded_server(var_dir, _env(var_dir), migrate=False) as running:
        yield running


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = launch_chromium(playwright)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    created = browser.new_context(viewport=PHONE, locale="zh-CN", timezone_id="Asia/Shanghai")
    created.set_default_timeout(10_000)
    yield created
    created.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where a test keeps its screenshots (the test's own output folder)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


def new_phone() -> str:
    return f"139{random.randrange(10**8):08d}"


def new_id_number() -> str:
    born = date(1950, 1, 1) + timedelta(days=random.randrange(365 * 50))
    return valid_id_number(born)


@dataclass
class Person:
    phone: str
    tokens: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


def api_resident(server: PagesServer, *, bind: bool = True) -> Person:
    """A resident logged in through the API (for tests about other pages than login)."""
    phone = new_phone()
    sent = httpx.post(f"{server.base_url}/v1/auth/otp", json={"phone": phone}).json()
    tokens = httpx.post(
        f"{server.base_url}/v1/auth/login", json={"phone": phone, "otp": sent["debug_code"]}
    ).json()
    person = Person(phone, tokens)
    if bind:
        bound = httpx.put(
            f"{server.base_url}/v1/residents/me/identity",
            json={"name": "王小红", "id_number": new_id_number()},
            headers=person.headers,
        )
        assert bound.status_code == 200, bound.text
    return person


def open_as(page: Page, server: PagesServer, person: Person, route: str) -> None:
    """Open the pages with the person's session in place, as the login page leaves it."""
    page.goto(f"{server.base_url}/app/#/login")
    session = {
        "access": person.tokens["access_token"],
        "refresh": person.tokens["refresh_token"],
        "expiresAt": int(time.time() * 1000) + person.tokens["expires_in"] * 1000,
    }
    page.evaluate("s => localStorage.setItem('suishen.session', JSON.stringify(s))", session)
    page.goto(f"{server.base_url}/app/#/{route}")
    page.reload()
