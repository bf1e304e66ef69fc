"""The error model and HTTP hygiene, through a real app built by create_app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.clock import FrozenClock
from app.domain import Domain
from app.domains import load_domains
from app.errors import Conflict
from app.http import endpoint, json_response, read_json
from app.main import create_app
from app.settings import Settings
from tests.factories import assert_problem


class Order(BaseModel):
    item: str = Field(min_length=1)
    quantity: int = Field(ge=1, le=10)


@endpoint(summary="echo an order", body=Order, response=Order)
async def echo(request: Request) -> Response:
    order = await read_json(request, Order)
    if order.item == "conflict":
        raise Conflict("already there")
    if order.item == "crash":
        raise RuntimeError("secret internal detail 13812345678")
    return json_response(order)


PROBE = Domain(name="probe", routes=[Route("/v1/probe", echo, methods=["POST"])])


@pytest.fixture
async def probe(settings: Settings, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings, clock=clock, domains=[*load_domains(), PROBE])
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_valid_body_is_served(probe: httpx.AsyncClient) -> None:
    response = await probe.post("/v1/probe", json={"item": "tea", "quantity": 2})
    assert response.status_code == 200
    assert response.json() == {"item": "tea", "quantity": 2}


async def test_malformed_json_is_400_body_malformed(probe: httpx.AsyncClient) -> None:
    response = await probe.post(
        "/v1/probe", content=b'{"item": "tea",', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "body_malformed")


async def test_schema_violation_names_the_fields(probe: httpx.AsyncClient) -> None:
    response = await probe.post("/v1/probe", json={"item": "", "quantity": 99})
    body = assert_problem(response, 422, "validation_failed")
    assert {e["field"] for e in body["errors"]} == {"item", "quantity"}


async def test_body_over_64k_is_413(probe: httpx.AsyncClient) -> None:
    response = await probe.post("/v1/probe", json={"item": "x" * 70_000, "quantity": 1})
    assert_problem(response, 413, "body_too_large")


async def test_streamed_body_over_limit_without_length_is_413(probe: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192

    response = await probe.post(
        "/v1/probe", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "body_too_large")


async def test_wrong_content_type_is_415(probe: httpx.AsyncClient) -> None:
    response = await probe.post(
        "/v1/probe", content=b"item=tea", headers={"content-type": "text/plain"}
    )
    assert_problem(response, 415, "unsupported_media_type")


async def test_unknown_path_is_404_not_found(probe: httpx.AsyncClient) -> None:
    assert_problem(await probe.get("/v1/nowhere"), 404, "not_found")


async def test_wrong_method_is_405_with_allow(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/v1/probe")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_domain_problem_keeps_its_code(probe: httpx.AsyncClient) -> None:
    response = await probe.post("/v1/probe", json={"item": "conflict", "quantity": 1})
    assert_problem(response, 409, "conflict")


async def test_unexpected_error_is_500_without_internals(
    probe: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await probe.post("/v1/probe", json={"item": "crash", "quantity": 1})
    body = assert_problem(response, 500, "internal_error")
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert body["detail"] == "Internal server error"


async def test_sane_request_id_is_echoed_and_insane_replaced(probe: httpx.AsyncClient) -> None:
    echoed = await probe.get("/healthz", headers={"x-request-id": "gate-7:abc.123"})
    assert echoed.headers["x-request-id"] == "gate-7:abc.123"
    replaced = await probe.get(
        "/healthz", headers={"x-request-id": "bad id\twith spaces" + "x" * 200}
    )
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"
    assert len(replaced.headers["x-request-id"]) == 32


async def test_problem_responses_carry_one_request_id_also_in_the_body(
    probe: httpx.AsyncClient,
) -> None:
    for response in (
        await probe.get("/v1/nowhere"),
        await probe.get("/v1/probe"),
        await probe.post("/v1/probe", json={"item": "conflict", "quantity": 1}),
        await probe.post("/v1/probe", json={"item": "crash", "quantity": 1}),
        await probe.post("/v1/probe", json={"item": "x" * 70_000, "quantity": 1}),
    ):
        assert response.headers.get_list("x-request-id") == [response.json()["request_id"]]
