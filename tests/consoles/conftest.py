"""The console browser tests' fixtures: ONE real server for the package, ONE Chromium.

The server runs on PostgreSQL + Redis when TEST_DATABASE_URL and TEST_REDIS_URL are set (a
database of its own, `<TEST_DATABASE_URL's db>_consoles`, dropped, created and migrated by
the fixture, and Redis db 12), else on SQLite + the embedded store in a temporary VAR_DIR.
Demo data is seeded with `python -m app.cli seed-demo`. Chromium is Debian's package driven
by Playwright; missing Chromium is a failure, never a skip.

Fixtures: `console_server` (base_url, credentials, env), `browser`, `context` (1280x800,
zh-CN, Asia/Shanghai) and `page_factory` (new pages in fresh contexts, closed after the test).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.browser import CHROMIUM_ARGS as BASE_ARGS
from tests.browser import SeededServer, dev_server_env, launch_chromium, seeded_server

# Sound cues play without a click in the tests.
CHROMIUM_ARGS = [*BASE_ARGS, "--autoplay-policy=no-user-gesture-required"]
CONSOLE_VIEWPORT = {"width": 1280, "height": 800}
REDIS_DB = 12


ConsoleServer = SeededServer


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def _recreate_postgres(url: str) -> str:
    """Drop and create `<db>_consoles` beside TEST_DATABASE_URL's database; its URL."""
    import asyncio

    import asyncpg

    base = urlsplit(url).path.lstrip("/") or "postgres"
    name = f"{base}_consoles"
    admin = _with_db(url, "postgres").replace("postgres://", "postgresql://", 1)

    async def run() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(run())
    return _with_db(url, name)


def _env(var_dir: Path) -> dict[str, str]:
    env = dev_server_env(
        var_dir, SUISHEN_OTP_PER_PHONE_HOUR="1000", SUISHEN_OTP_PER_PHONE_MINUTE="100"
    )
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if database_url and redis_url:
        env["DATABASE_URL"] = _recreate_postgres(database_url)
        env["REDIS_URL"] = _with_redis_db(redis_url, REDIS_DB)
        import redis

        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    return env


@pytest.fixture(scope="package")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    var_dir = tmp_path_factory.mktemp("consoles-var")
    with seeded_server(var_dir, _env(var_dir), migrate=True) as running:
        yield running


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser_args() -> list[str]:
    """Chromium's flags; a package may extend them (the fake camera, for one)."""
    return list(CHROMIUM_ARGS)


@pytest.fixture(scope="package")
def browser(playwright: Playwright, browser_args: list[str]) -> Iterator[Browser]:
    launched = launch_chromium(playwright, browser_args)
    yield launched
    launched.close()


def _new_context(browser: Browser) -> BrowserContext:
    created = browser.new_context(
        viewport={"width": CONSOLE_VIEWPORT["width"], "height": CONSOLE_VIEWPORT["height"]},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )
    created.set_default_timeout(10_000)
    return created


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    created = _new_context(browser)
    yield created
    created.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def page_factory(browser: Browser) -> Iterator[Callable[[], Page]]:
    """New pages, each in a fresh context of its own (1280x800), closed after the test."""
    made: list[BrowserContext] = []

    def new_page() -> Page:
        created = _new_context(browser)
        made.append(created)
        return created.new_page()

    yield new_page
    for created in made:
        created.close()
