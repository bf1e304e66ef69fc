"""The front door in Chromium: `/` says what the server is and links to every entrance;
`/docs` renders every operation of `/openapi.json` with Swagger UI under the pages' CSP,
with no console error, and "Authorize" with a pasted bearer token works for a machine
client and for a resident."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page

from tests.consoles.conftest import ConsoleServer
from tests.consoles.test_desk import enrolled_resident, keep_for_docs

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def shot(page: Page, folder: Path, name: str) -> Path:
    """The visible part only: the reference's full page is megabytes."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def watch(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def test_front_page_links_to_every_entrance(
    console_server: ConsoleServer, page_factory: Callable[[], Page], tmp_path: Path
) -> None:
    page = page_factory()
    problems = watch(page)
    answer = page.goto(console_server.base_url + "/")
    assert answer is not None and answer.status == 200
    csp = answer.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    hrefs = page.eval_on_selector_all("a", "links => links.map(a => a.getAttribute('href'))")
    for target in ("/app/", "/gate/", "/desk/", "/docs", "/openapi.json", "/healthz", "/readyz"):
        assert target in hrefs
    assert "随申" in (page.text_content("h1") or "")
    keep_for_docs(shot(page, tmp_path, "docs-front"), "docs-front.png")
    for target in ("/desk/", "/docs", "/openapi.json", "/healthz", "/readyz"):
        assert httpx.get(console_server.base_url + target, follow_redirects=True).status_code == 200
    assert problems == []


def authorize(page: Page, token: str) -> None:
    page.click(".auth-wrapper .btn.authorize")
    page.fill(".auth-container input", token)
    page.click(".auth-container .btn.modal-btn.auth.authorize")
    page.click(".auth-container .btn-done")


def try_get(page: Page, path: str) -> str:
    """Expand GET `path`, try it out, execute; the live response's status code."""
    block = page.locator(".opblock-get", has=page.locator(f'[data-path="{path}"]'))
    block.locator(".opblock-summary").first.click()
    block.locator(".try-out__btn").click()
    block.locator(".execute").click()
    status = block.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    return (status.text_content() or "").strip()


def test_docs_lists_every_operation_and_authorize_works_for_each_kind(
    console_server: ConsoleServer, page_factory: Callable[[], Page], tmp_path: Path
) -> None:
    server = console_server
    document = httpx.get(f"{server.base_url}/openapi.json").json()
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    page = page_factory()
    problems = watch(page)
    answer = page.goto(f"{server.base_url}/docs")  # 308 to /docs/
    assert answer is not None and answer.status == 200 and page.url.endswith("/docs/")
    csp = answer.headers["content-security-policy"]
    assert "unsafe-eval" not in csp and "unsafe-inline" not in csp
    page.wait_for_selector(".opblock")
    rendered = page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent.trim(),
            b.querySelector('.opblock-summary-path').getAttribute('data-path')])""",
    )
    assert len(rendered) == len(operations)
    assert {(m, p) for m, p in rendered} == operations
    assert "POST /v1/auth/token" in (page.text_content(".intro") or "")
    keep_for_docs(shot(page, tmp_path, "docs-reference"), "docs-reference.png")

    # A machine client: the demo hospital's token lists today's encounters.
    hospital = server.machine_token(server.credentials["hospital"]["client"])
    assert problems == [], problems  # loaded and rendered with no console error
    authorize(page, hospital)
    assert try_get(page, "/v1/encounters") == "200"  # the date prefilled from its example
    assert try_get(page, "/v1/credit/me") == "403"  # a hospital is not a resident

    # A resident: OTP login's token reads their own credit.
    page.goto(f"{server.base_url}/docs/")
    page.wait_for_selector(".opblock")
    resident = enrolled_resident(server)
    authorize(page, resident["Authorization"].removeprefix("Bearer "))
    assert try_get(page, "/v1/credit/me") == "200"
    keep_for_docs(shot(page, tmp_path, "docs-authorized"), "docs-authorized.png")
    # Only the refusals asked for above (Chromium logs a 4xx answer as a console error).
    unexpected = [p for p in problems if not p.startswith("Failed to load resource")]
    assert unexpected == [], unexpected
