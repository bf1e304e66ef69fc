"""Hostile input never reaches a parser or the database as a 500 (issue 9).

Every test here walks the application's own route table, so a route added tomorrow is
covered without anyone remembering to add it: ids longer than their column, NUL in any
string, JSON nested far too deep, booleans for integers, impossible dates, integers past
BIGINT, oversized headers, and OPTIONS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from app.context import AppContext
from app.http import EndpointSpec, IdConvertor
from tests.auth.helpers import kiosk
from tests.factories import Machine, machine, resident

JSON = {"content-type": "application/json"}
OWN: dict[str, str] = {}  # path parameter -> an id the callers own (set by `callers`)
SCOPE_KIND = {
    "admin": "admin",
    "status:write": "authority",
    "venues:manage": "operator",
    "gates:scan": "gate",
    "codes:verify": "gate",
    "encounters:write": "hospital",
    "kiosk:sessions": "kiosk",
}


@dataclass(frozen=True)
class Operation:
    route: Route
    method: str
    spec: EndpointSpec

    @property
    def name(self) -> str:
        return f"{self.method} {self.route.path}"

    def path(self, overrides: dict[str, str] | None = None) -> str:
        # The callers' own venue, so tenant checks pass and validation is what answers.
        values = {name: OWN.get(name, "x1") for name in self.route.param_convertors}
        values.update(overrides or {})
        return re.sub(r"{(\w+)(:\w+)?}", lambda m: values[m.group(1)], self.route.path)


def operations(app: Any) -> Iterator[Operation]:
    for route in app.router.routes:
        spec = getattr(getattr(route, "endpoint", None), "__endpoint_spec__", None)
        if isinstance(route, Route) and spec is not None:
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    yield Operation(route, method, spec)


@pytest.fixture
async def callers(client: httpx.AsyncClient, ctx: AppContext) -> dict[str, dict[str, str]]:
    """Headers of a caller for every kind of `auth` an endpoint declares."""
    admin = await machine(client, ctx, "admin")
    venue = await client.post(
        "/v1/venues",
        json={"name": "Hostile museum", "kind": "museum", "capacity": 10},
        headers=admin.headers,
    )
    assert venue.status_code == 201, venue.text
    hospital = await client.post(
        "/v1/hospitals", json={"name": "Hostile hospital"}, headers=admin.headers
    )
    assert hospital.status_code == 201, hospital.text
    OWN["venue_id"] = venue.json()["id"]
    tenants = {
        "gate": venue.json()["id"],
        "operator": venue.json()["id"],
        "hospital": hospital.json()["id"],
    }
    machines: dict[str, Machine] = {"admin": admin}
    for kind in ("authority", "operator", "gate", "hospital"):
        machines[kind] = await machine(client, ctx, kind, tenants.get(kind))
    machines["kiosk"] = await kiosk(client, ctx)
    headers = {scope: machines[kind].headers for scope, kind in SCOPE_KIND.items()}
    headers["resident"] = (await resident(client, ctx)).headers
    return headers


def caller_for(spec: EndpointSpec, callers: dict[str, dict[str, str]]) -> dict[str, str]:
    if spec.auth is None:
        return {}
    return callers[spec.auth.split(" or ")[0]]


def assert_refused(response: httpx.Response, operation: Operation, *statuses: int) -> None:
    assert response.status_code in statuses, (
        f"{operation.name}: {response.status_code} {response.text}"
    )
    assert response.headers["content-type"].startswith("application/problem+json")


def test_every_path_parameter_is_an_id_with_limits(app: Any) -> None:
    # The convertor is what keeps a too-long or strange id from reaching a lookup.
    loose = [
        f"{op.name} {{{name}}}"
        for op in operations(app)
        for name, convertor in op.route.param_convertors.items()
        if not isinstance(convertor, IdConvertor)
    ]
    assert loose == []


async def test_ids_longer_than_their_column_are_not_found(
    app: Any, client: httpx.AsyncClient, callers: dict[str, dict[str, str]]
) -> None:
    for op in operations(app):
        for name, convertor in op.route.param_convertors.items():
            too_long = "x" * (getattr(convertor, "max_length", 40) + 1)
            for bad in (too_long, "a%00b", "a%20b"):
                response = await client.request(
                    op.method,
                    op.path({name: bad}),
                    headers={**caller_for(op.spec, callers), **JSON},
                    content=b"{}",
                )
                assert_refused(response, op, 404)


async def test_nul_in_a_body_or_query_is_refused(
    app: Any, client: httpx.AsyncClient, callers: dict[str, dict[str, str]]
) -> None:
    for op in operations(app):
        headers = caller_for(op.spec, callers)
        if op.spec.body is not None:
            fields = op.spec.body.model_json_schema().get("properties", {})
            body = "{" + ",".join(f'"{f}":"a\\u0000"' for f in fields) + "}"
            response = await client.request(
                op.method, op.path(), content=body.encode(), headers={**headers, **JSON}
            )
            assert_refused(response, op, 422, 404, 403)
        if op.spec.query is not None:
            for field in op.spec.query.model_json_schema().get("properties", {}):
                response = await client.request(
                    op.method, op.path(), params={field: "a\x00"}, headers=headers
                )
                assert_refused(response, op, 422, 404, 403)


async def test_json_nested_a_thousand_deep_is_malformed(
    app: Any, client: httpx.AsyncClient, callers: dict[str, dict[str, str]]
) -> None:
    deep = b"[" * 1000 + b"]" * 1000
    nested_object = b'{"a":' * 1000 + b"1" + b"}" * 1000
    for op in operations(app):
        if op.spec.body is None:
            continue
        for body in (deep, nested_object):
            response = await client.request(
                op.method, op.path(), content=body, headers={**caller_for(op.spec, callers), **JSON}
            )
            assert_refused(response, op, 400, 404, 403)


def _integer_fields(schema: dict[str, Any]) -> list[str]:
    def is_integer(prop: dict[str, Any]) -> bool:
        return prop.get("type") == "integer" or any(
            p.get("type") == "integer" for p in prop.get("anyOf", [])
        )

    return [name for name, prop in schema.get("properties", {}).items() if is_integer(prop)]


async def test_a_boolean_is_never_taken_for_an_integer(
    app: Any, client: httpx.AsyncClient, callers: dict[str, dict[str, str]]
) -> None:
    checked = 0
    for op in operations(app):
        if op.spec.body is None:
            continue
        for field in _integer_fields(op.spec.body.model_json_schema()):
            response = await client.request(
                op.method,
                op.path(),
                json={field: True},
                headers={**caller_for(op.spec, callers)},
            )
            assert_refused(response, op, 422, 404, 403)
            if response.status_code == 422:
                fields = {e["field"] for e in response.json()["errors"]}
                assert field in fields, f"{op.name}: {field}=true was accepted"
                checked += 1
    assert checked >= 3  # capacity, quantities, prices at least


async def test_whole_numbers_written_as_floats_are_integers_and_fractions_are_not(
    client: httpx.AsyncClient, callers: dict[str, dict[str, str]]
) -> None:
    # JSON Schema's integer includes 212.0 and 2.12e2; generated clients may send them.
    body = {"name": "Floats", "kind": "museum"}
    for capacity, status in ((212.0, 201), (2.12e2, 201), (212.5, 422), (True, 422)):
        response = await client.post(
            "/v1/venues", json={**body, "capacity": capacity}, headers=callers["admin"]
        )
        assert response.status_code == status, (capacity, response.text)
        if status == 201:
            assert response.json()["capacity"] == 212


def _query_values(prop: dict[str, Any]) -> list[str]:
    kinds = {prop.get("format"), *(p.get("format") for p in prop.get("anyOf", []))}
    types = {prop.get("type"), *(p.get("type") for p in prop.get("anyOf", []))}
    if "date" in kinds:
        return ["2026-02-30", "9999-12-31", "0001-01-01"]
    if "date-time" in kinds:
        return ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00Z"]
    if "integer" in types:
        return [str(2**63), str(2**64 + 1), str(-(2**63) - 1)]
    return []


async def test_impossible_dates_and_huge_integers_in_queries_are_refused(
    app: Any, client: httpx.AsyncClient, callers: dict[str, dict[str, str]]
) -> None:
    checked = 0
    for op in operations(app):
        if op.spec.query is None:
            continue
        for field, prop in op.spec.query.model_json_schema().get("properties", {}).items():
            for value in _query_values(prop):
                response = await client.request(
                    op.method,
                    op.path(),
                    params={field: value},
                    headers=caller_for(op.spec, callers),
                )
                assert_refused(response, op, 422, 404, 403)
                checked += 1
    assert checked >= 6  # day, date, since, cursor at least


async def test_too_many_or_too_large_headers_get_431(client: httpx.AsyncClient) -> None:
    many = {f"x-h{i}": "1" for i in range(100)}
    response = await client.get("/healthz", headers=many)
    assert response.status_code == 431
    assert response.json()["code"] == "headers_too_large"
    response = await client.get("/healthz", headers={"x-big": "a" * 20_000})
    assert response.status_code == 431
    assert (await client.get("/healthz", headers={"x-small": "a" * 1000})).status_code == 200


async def test_options_lists_every_method_of_the_path(app: Any, client: httpx.AsyncClient) -> None:
    by_path: dict[str, set[str]] = {}
    for op in operations(app):
        by_path.setdefault(op.path(), set()).add(op.method)
    for path, methods in by_path.items():
        response = await client.options(path)
        assert response.status_code == 204, path
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert methods | {"OPTIONS"} <= allowed, path
    # A method the path lacks: 405 with the same full list.
    response = await client.delete("/v1/venues")
    assert response.status_code == 405
    assert {"GET", "POST", "OPTIONS"} <= {m.strip() for m in response.headers["allow"].split(",")}
