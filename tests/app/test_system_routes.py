"""The operations endpoints: /healthz, /readyz, /metrics and /openapi.json."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route
from tortoise.context import TortoiseContext, _current_context

from app.clock import FrozenClock
from app.db import tortoise_config
from app.domain import Domain
from app.domains import load_domains
from app.errors import DependencyUnavailable, NotFound
from app.http import endpoint, json_response, read_json
from app.kv import create_store
from app.main import StaticPaths, create_app
from app.routes import HEALTHY_BODY
from app.settings import Settings
from tests.conftest import Backend, free_port
from tests.factories import assert_problem


class Note(BaseModel):
    text: str = Field(min_length=1, max_length=50)


class NoteOut(BaseModel):
    note_id: str
    text: str


@endpoint(summary="read a note", response=NoteOut, errors=[NotFound], tags=["probe"])
async def read_note(request: Request) -> Response:
    note_id = request.path_params["note_id"]
    if note_id == "missing":
        raise NotFound("no such note")
    return json_response(NoteOut(note_id=note_id, text="hello"))


@endpoint(summary="write a note", body=Note, response=NoteOut, status=201, auth="resident")
async def write_note(request: Request) -> Response:
    note = await read_json(request, Note)
    return json_response(NoteOut(note_id="n1", text=note.text), status=201)


PROBE = Domain(
    name="probe",
    routes=[
        Route("/v1/notes/{note_id:id}", read_note, methods=["GET"]),
        Route("/v1/notes", write_note, methods=["POST"]),
    ],
)


@pytest.fixture
async def probe_app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Any]:
    application = create_app(settings, clock=clock, domains=[*load_domains(), PROBE])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def probe(probe_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=probe_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# -- liveness and readiness -------------------------------------------------------------


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.content == HEALTHY_BODY == b'{"status":"ok"}'
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]


async def test_readyz_checks_database_and_store(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "kv": "ok"}}


async def test_readyz_is_503_when_the_store_is_down_while_healthz_stays_up(
    app: Any, client: httpx.AsyncClient
) -> None:
    # The store stops answering after start: a real client aimed at a closed port.
    working = app.state.ctx.kv
    app.state.ctx.kv = create_store(f"redis://127.0.0.1:{free_port()}/0", "down")
    try:
        response = await client.get("/readyz")
        body = assert_problem(response, 503, "dependency_unavailable")
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["kv"].startswith("down: ")
        assert "127.0.0.1" not in response.text  # the reason is named, not leaked
        assert (await client.get("/healthz")).status_code == 200
    finally:
        await app.state.ctx.kv.close()
        app.state.ctx.kv = working


@pytest.fixture
async def broken_database(backend: Backend, tmp_path: Path) -> AsyncIterator[TortoiseContext]:
    """A real database connection that fails: PostgreSQL on a closed port, or an SQLite
    file that is not a database."""
    if backend.is_real:
        url = f"postgres://postgres@127.0.0.1:{free_port()}/gone"
    else:
        garbage = tmp_path / "garbage.db"
        garbage.write_bytes(b"not a database " * 100)
        url = f"sqlite://{garbage}"
    db = TortoiseContext()
    # Opened like app.db.open_db, minus the global fallback the app's own database holds.
    token = _current_context.set(db)
    try:
        await db.init(config=tortoise_config(url))
    finally:
        _current_context.reset(token)
    try:
        yield db
    finally:
        await db.close_connections()


async def test_readyz_is_503_when_the_database_is_down(
    app: Any, client: httpx.AsyncClient, broken_database: TortoiseContext
) -> None:
    working, app.state.db = app.state.db, broken_database
    try:
        response = await client.get("/readyz")
        body = assert_problem(response, 503, "dependency_unavailable")
        assert body["checks"]["database"].startswith("down: ")
        assert body["checks"]["kv"] == "ok"
        assert (await client.get("/healthz")).status_code == 200
    finally:
        app.state.db = working


def test_server_does_not_start_when_redis_does_not_answer(
    settings: Settings, clock: FrozenClock
) -> None:
    down = settings.with_(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    application = create_app(down, clock=clock)

    async def start() -> None:
        async with application.router.lifespan_context(application):
            pass

    with pytest.raises(DependencyUnavailable):
        asyncio.run(start())


# -- metrics ---------------------------------------------------------------------------


def _samples(text: str, name: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            found[labels] = float(value)
    return found


async def test_metrics_label_route_templates_never_raw_paths(probe: httpx.AsyncClient) -> None:
    for note_id in ("a1", "b2", "c3"):
        assert (await probe.get(f"/v1/notes/{note_id}")).status_code == 200
    assert (await probe.get("/v1/notes/missing")).status_code == 404
    assert (await probe.get("/v1/no/such/path/9f8e7d")).status_code == 404
    text = (await probe.get("/metrics")).text
    counts = _samples(text, "suishen_http_requests_total")
    assert counts['{method="GET",route="/v1/notes/{note_id}",status="200"}'] == 3
    assert counts['{method="GET",route="/v1/notes/{note_id}",status="404"}'] == 1
    assert counts['{method="GET",route="<unmatched>",status="404"}'] == 1
    for raw in ("a1", "b2", "c3", "missing", "9f8e7d"):
        assert raw not in text


async def test_metrics_have_a_latency_histogram_per_route(probe: httpx.AsyncClient) -> None:
    await probe.get("/healthz")
    await probe.get("/healthz")
    response = await probe.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    counts = _samples(response.text, "suishen_http_request_duration_seconds_count")
    assert counts['{method="GET",route="/healthz"}'] == 2
    buckets = _samples(response.text, "suishen_http_request_duration_seconds_bucket")
    assert buckets['{le="+Inf",method="GET",route="/healthz"}'] == 2


async def test_each_app_has_its_own_metrics(
    settings: Settings, clock: FrozenClock, app: Any, client: httpx.AsyncClient
) -> None:
    await client.get("/healthz")
    other = create_app(settings, clock=clock)
    assert other.state.metrics is not app.state.metrics
    assert 'route="/healthz"' in app.state.metrics.render()[0].decode()
    assert 'route="/healthz"' not in other.state.metrics.render()[0].decode()


# -- OpenAPI -----------------------------------------------------------------------------


async def test_openapi_document_is_valid_openapi_3_1(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document).validate()


async def test_openapi_of_the_real_app_is_valid_openapi_3_1(client: httpx.AsyncClient) -> None:
    OpenAPIV31SpecValidator((await client.get("/openapi.json")).json()).validate()


def _routes(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, Route]]:
    found = []
    for route in routes:
        if isinstance(route, Mount):
            found += _routes(list(route.routes), prefix + route.path)
        elif isinstance(route, Route) and not route.include_in_schema:
            continue  # the static pages (app/pages.py): not API, not in the document
        elif isinstance(route, Route):
            found.append((prefix + route.path, route))
        else:
            raise AssertionError(f"route of an unexpected kind: {route!r}")
    return found


def test_every_route_of_the_app_has_an_endpoint_spec(settings: Settings) -> None:
    # So a route added later cannot be left out of the document.
    app = create_app(settings)
    missing = [
        path
        for path, route in _routes(list(app.routes))
        if getattr(route.endpoint, "__endpoint_spec__", None) is None
    ]
    assert not missing, f"routes without @endpoint(...): {missing}"


def test_every_route_appears_in_the_document_with_its_methods(settings: Settings) -> None:
    app = create_app(settings)
    paths = app.state.openapi.document["paths"]
    for path, route in _routes(list(app.routes)):
        template = re.sub(r"{(\w+):\w+}", r"{\1}", path)  # {venue_id:id} -> {venue_id}
        for method in route.methods or []:
            if method != "HEAD":
                assert method.lower() in paths.get(template, {}), f"{method} {path} not documented"


def test_every_operation_documents_success_and_problem_responses(settings: Settings) -> None:
    document = create_app(settings).state.openapi.document
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            success = [s for s in responses if s.startswith("2")]
            assert success, f"{method} {path} documents no success response"
            assert "500" in responses, f"{method} {path} documents no 500"
            for status, response in responses.items():
                if status[0] in "45":
                    schema = response["content"]["application/problem+json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}
                    assert response["description"].startswith("codes: ")
            for name in re.findall(r"{(\w+)}", path):
                params = {p["name"] for p in operation.get("parameters", [])}
                assert name in params, f"{method} {path} does not document {name}"


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema["$ref"]
    assert ref.startswith("#/components/schemas/")
    resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def test_endpoint_schemas_come_from_the_pydantic_models(settings: Settings) -> None:
    document = create_app(settings, domains=[*load_domains(), PROBE]).state.openapi.document
    read = document["paths"]["/v1/notes/{note_id}"]["get"]
    ok = read["responses"]["200"]["content"]["application/json"]["schema"]
    assert _resolve(document, ok)["properties"].keys() == {"note_id", "text"}
    assert read["responses"]["404"]["description"] == "codes: not_found"
    assert read["parameters"][0] == {
        "name": "note_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 40,
                   "pattern": "^[A-Za-z0-9_.:\\-]{1,40}$"},
    }  # fmt: skip

    write = document["paths"]["/v1/notes"]["post"]
    body = _resolve(document, write["requestBody"]["content"]["application/json"]["schema"])
    assert body["properties"]["text"]["maxLength"] == 50
    assert "201" in write["responses"]
    errors = {s: r["description"] for s, r in write["responses"].items() if s[0] in "45"}
    assert errors == {
        "400": "codes: body_malformed",
        "401": "codes: unauthorized",
        "403": "codes: forbidden",
        "413": "codes: body_too_large",
        "415": "codes: unsupported_media_type",
        "422": "codes: validation_failed",
        "500": "codes: internal_error",
    }
    assert write["security"] == [{"bearer": []}]


def test_no_two_component_schemas_share_a_title(settings: Settings) -> None:
    # Generated clients name their types by title; two schemas of one title lose one.
    schemas = create_app(settings).state.openapi.document["components"]["schemas"]
    titles = [schema.get("title", name) for name, schema in schemas.items()]
    assert len(titles) == len(set(titles))
    assert all(schema.get("title", name) == name for name, schema in schemas.items())


def _router_choice(routes: list[BaseRoute], scope: dict[str, Any]) -> BaseRoute | None:
    """The route Starlette's router takes: the first full match in table order."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def test_the_static_path_shortcut_takes_the_route_the_router_would() -> None:
    router = create_app(Settings.from_env()).router
    shortcut = StaticPaths(router)
    assert {"/healthz", "/v1/gates/scan", "/v1/codes/me", "/v1/codes/verify"} <= set(
        shortcut.by_path
    )
    checked = 0
    for route in router.routes:
        if not isinstance(route, Route):
            continue
        # Every path the table serves, with its parameters filled in, and every method.
        path = re.sub(r"{[^}]+}", "x1", route.path)
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]:
            scope = {"type": "http", "path": path, "method": method, "root_path": ""}
            fast = next(
                (r for r in shortcut.by_path.get(path, ()) if r.matches(scope)[0] is Match.FULL),
                None,
            )
            if fast is not None:
                assert fast is _router_choice(router.routes, scope), (method, path)
                checked += 1
    assert checked >= 50
