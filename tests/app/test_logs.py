"""Structured logs: JSON lines in production format, one access line per request, and no
phone number, OTP, token, ID number or name in any line, whatever the requests carry."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.clock import FrozenClock
from app.domain import Domain
from app.domains import load_domains
from app.http import endpoint, json_response, read_json
from app.logs import (
    ACCESS_LOGGER,
    RedactingFilter,
    SuishenHandler,
    access_fields,
    configure_logging,
)
from app.logs import write_access_line as log_access
from app.main import create_app
from app.settings import Settings
from tests.conftest import ServerProcess

PHONE = "13812345678"
OTP = "493817"
TOKEN = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJyZXMtOTkifQ.c2lnbmF0dXJlLWJ5dGVz"
ID_NUMBER = "11010519491231002X"
NAME = "张三明"
SECRETS = {"phone": PHONE, "otp": OTP, "token": TOKEN, "id number": ID_NUMBER, "name": NAME}
PII_BODY = {
    "phone": PHONE,
    "otp": OTP,
    "code": OTP,
    "name": NAME,
    "id_number": ID_NUMBER,
    "refresh_token": TOKEN,
    "client_secret": TOKEN,
}
PII_HEADERS = {"authorization": f"Bearer {TOKEN}", "x-request-id": PHONE}


def assert_no_secrets(text: str) -> None:
    assert text, "nothing was logged"
    for what, value in SECRETS.items():
        assert value not in text, f"a {what} reached the logs"
    assert TOKEN.split(".")[2] not in text, "a token signature reached the logs"


class Login(BaseModel):
    phone: str
    otp: str
    name: str | None = None
    id_number: str | None = None


log = logging.getLogger("suishen.probe")


@endpoint(summary="log in (probe)", body=Login)
async def probe_login(request: Request) -> Response:
    login = await read_json(request, Login)
    # A careless handler: the redaction filter is the second line of defence.
    log.info(
        "login for %s with otp=%s", login.phone, login.otp, extra={"fields": {"phone": login.phone}}
    )
    if login.otp == "crash":
        raise RuntimeError(f"login failed for {login.phone} id {login.id_number} token {TOKEN}")
    return json_response({"ok": True})


@endpoint(summary="look up a resident (probe)")
async def probe_lookup(request: Request) -> Response:
    return json_response({"found": request.path_params["phone"] != ""})


PROBE = Domain(
    name="probe",
    routes=[
        Route("/v1/probe/login", probe_login, methods=["POST"]),
        Route("/v1/probe/residents/{phone}", probe_lookup, methods=["GET"]),
    ],
)


@contextlib.contextmanager
def production_logs(log_format: str = "json") -> Iterator[Callable[[], str]]:
    """Production logging (suishen's handler, JSON lines) into a buffer, inside a test's
    body. Replacing the root handlers takes pytest's capture handlers out too, so the
    access log's direct path is the one under test, as in a real process."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging(log_format, "INFO")
    handler = root.handlers[0]
    assert isinstance(handler, SuishenHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)

    def read() -> str:
        handler.flush()
        return buffer.getvalue()

    try:
        yield read
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.fixture
async def probe(settings: Settings, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings, clock=clock, domains=[*load_domains(), PROBE])
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def access_lines(text: str) -> list[dict[str, Any]]:
    return [entry for entry in lines(text) if entry["logger"] == ACCESS_LOGGER]


# -- the access line ------------------------------------------------------------------------


async def test_every_line_is_json_and_every_request_one_access_line(
    probe: httpx.AsyncClient,
) -> None:
    with production_logs() as logs:
        responses = [
            await probe.get("/healthz"),
            await probe.get("/v1/probe/residents/abc"),
            await probe.post("/v1/probe/login", json={"phone": "x", "otp": "y"}),
            await probe.get("/nowhere"),
        ]
        entries = access_lines(logs())
    assert [(e["route"], e["status"]) for e in entries] == [
        ("/healthz", 200),
        ("/v1/probe/residents/{phone}", 200),
        ("/v1/probe/login", 200),
        ("<unmatched>", 404),
    ]
    for entry, response in zip(entries, responses, strict=True):
        assert entry["request_id"] == response.headers["x-request-id"]
        assert entry["level"] == "info"
        assert isinstance(entry["duration_ms"], float | int) and entry["duration_ms"] >= 0
        assert isinstance(entry["pid"], int)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["ts"])
        assert entry["msg"].split()[1:3] == [entry["route"], str(entry["status"])]


def test_access_line_written_directly_equals_the_logging_record() -> None:
    with production_logs() as logs:
        log_access("GET", "/v1/venues/{venue_id}", 200, 1.23456, "rid-1")
        logging.getLogger(ACCESS_LOGGER).info(
            "GET /v1/venues/{venue_id} 200 1.2ms",
            extra={"fields": access_fields("/v1/venues/{venue_id}", 200, 1.23, "rid-1")},
        )
        direct, record = lines(logs())
    assert direct.pop("ts") and record.pop("ts")
    assert direct == record
    assert list(direct) == list(record)  # same key order, so the same bytes


def test_text_access_line_written_directly_equals_the_logging_record() -> None:
    with production_logs("text") as logs:
        log_access("POST", "/v1/gates/scan", 201, 0.5, "rid-2")
        logging.getLogger(ACCESS_LOGGER).info(
            "POST /v1/gates/scan 201 0.5ms",
            extra={"fields": access_fields("/v1/gates/scan", 201, 0.5, "rid-2")},
        )
        direct, record = logs().splitlines()
    assert direct[9:] == record[9:]  # all but the HH:MM:SS clock
    assert direct[9:] == (
        "INFO    suishen.access: POST /v1/gates/scan 201 0.5ms "
        "request_id=rid-2 route=/v1/gates/scan status=201 duration_ms=0.5"
    )


async def test_access_lines_of_one_loop_turn_are_written_together_in_order() -> None:
    with production_logs():
        stream = logging.getLogger().handlers[0].stream  # type: ignore[attr-defined]
        log_access("GET", "/a", 200, 1.0, "r1")
        log_access("GET", "/b", 200, 1.0, "r2")
        assert stream.getvalue() == ""  # gathered until the loop turns
        logging.getLogger("suishen.other").warning("between")
        log_access("GET", "/c", 200, 1.0, "r3")
        assert len(stream.getvalue().splitlines()) == 3
        await asyncio.sleep(0)
        entries = lines(stream.getvalue())
    assert [e.get("route", e["msg"]) for e in entries] == ["/a", "/b", "between", "/c"]


def test_outside_an_event_loop_access_lines_are_written_at_once() -> None:
    with production_logs():
        stream = logging.getLogger().handlers[0].stream  # type: ignore[attr-defined]
        log_access("GET", "/a", 200, 1.0, "r1")
        assert json.loads(stream.getvalue())["route"] == "/a"


async def test_access_log_goes_through_logging_when_others_listen(
    probe: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        response = await probe.get("/healthz")
    records = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(records) == 1
    fields = records[0].fields  # type: ignore[attr-defined]
    assert fields["request_id"] == response.headers["x-request-id"]
    assert fields["route"] == "/healthz"


# -- what never reaches the logs ------------------------------------------------------------


async def test_personal_data_in_requests_never_reaches_the_logs(
    probe: httpx.AsyncClient,
) -> None:
    with production_logs() as logs:
        await probe.post("/v1/probe/login", json=PII_BODY, headers=PII_HEADERS)
        await probe.post("/v1/probe/login", json={**PII_BODY, "otp": "crash"}, headers=PII_HEADERS)
        await probe.get(f"/v1/probe/residents/{PHONE}?otp={OTP}&name={NAME}", headers=PII_HEADERS)
        await probe.get(f"/v1/unknown/{ID_NUMBER}/{PHONE}", headers=PII_HEADERS)
        await probe.post(
            "/v1/probe/login",
            content=json.dumps(PII_BODY)[:-5],
            headers={**PII_HEADERS, "content-type": "application/json"},
        )
        await probe.post("/v1/probe/login", json={**PII_BODY, "otp": 5}, headers=PII_HEADERS)
        text = logs()
    assert_no_secrets(text)
    entries = lines(text)
    assert len(access_lines(text)) == 6
    crash = [e for e in entries if e["logger"] == "suishen.error"]
    assert len(crash) == 1 and "RuntimeError" in crash[0]["exc"]  # logged, but scrubbed
    careless = [e for e in entries if e["logger"] == "suishen.probe"]
    assert careless and all(e["phone"] == "[phone]" for e in careless)


async def test_no_route_of_the_app_logs_personal_data(
    settings: Settings, clock: FrozenClock
) -> None:
    # Every route every domain registers, called with personal data in the path, the
    # query, the headers and the body: whatever they answer, nothing of it is logged.
    application = create_app(settings, clock=clock)
    called = 0
    with production_logs() as logs:
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                for route in application.routes:
                    assert isinstance(route, Route)
                    path = re.sub(r"{[^}]+}", PHONE, route.path)
                    for method in sorted((route.methods or set()) - {"HEAD"}):
                        await c.request(
                            method,
                            f"{path}?phone={PHONE}&otp={OTP}&name={NAME}",
                            json=PII_BODY if method in ("POST", "PUT", "PATCH") else None,
                            headers=PII_HEADERS,
                        )
                        called += 1
        text = logs()
    assert called > 10
    assert len(access_lines(text)) == called
    assert_no_secrets(text)


def test_real_server_writes_json_lines_without_personal_data(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    with httpx.Client(base_url=server.base_url) as http:
        ids = [http.get("/healthz").headers["x-request-id"] for _ in range(3)]
        http.get(f"/v1/residents/{PHONE}", headers=PII_HEADERS)
        http.post("/v1/auth/login", json=PII_BODY, headers=PII_HEADERS)
    server.process.terminate()
    server.process.wait(timeout=15)
    entries = lines(server.log())  # every line, start-up and shutdown included, is JSON
    access = [e for e in entries if e["logger"] == ACCESS_LOGGER]
    assert [e["request_id"] for e in access if e["route"] == "/healthz"][-3:] == ids
    assert len({e["pid"] for e in access}) == 1
    assert_no_secrets(server.log())


async def test_request_ids_reach_the_log_exactly_as_the_client_sees_them(
    probe: httpx.AsyncClient,
) -> None:
    # A client id that redaction would rewrite (it looks like a phone number) is replaced
    # by a generated one, so the id in the log is always the id the client was given.
    phone_shaped = "req-13812345678"
    with production_logs() as logs:
        response = await probe.get("/healthz", headers={"x-request-id": phone_shaped})
        plain = await probe.get("/healthz", headers={"x-request-id": "req-abc-1"})
        entries = access_lines(logs())
    given = response.headers["x-request-id"]
    assert given != phone_shaped and re.fullmatch(r"[0-9a-f]{32}", given)
    assert [e["request_id"] for e in entries] == [given, "req-abc-1"]
    assert plain.headers["x-request-id"] == "req-abc-1"


def test_redaction_leaves_request_ids_alone() -> None:
    # 32 generated hex digits may hold eleven decimal digits in a row, shaped like a phone.
    generated = "13812345678" + "a" * 21
    record = logging.LogRecord("suishen.error", logging.ERROR, __file__, 1, "boom", None, None)
    record.__dict__["fields"] = {"request_id": generated, "phone": "13812345678"}
    RedactingFilter().filter(record)
    assert record.__dict__["fields"] == {"request_id": generated, "phone": "[phone]"}
