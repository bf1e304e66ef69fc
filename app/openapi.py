"""The OpenAPI 3.1 document, generated from the route table and the pydantic schemas."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route

from app.errors import (
    PROBLEM_JSON,
    BodyMalformed,
    BodyTooLarge,
    Forbidden,
    InternalError,
    NotFound,
    Problem,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from app.http import EndpointSpec, IdConvertor, route_template
from app.idempotency import HEADER as IDEMPOTENCY_HEADER
from app.idempotency import MAX_KEY_LENGTH

_REF = "#/components/schemas/{model}"
# What the server checks of the request headers it reads (app/idempotency.py).
HEADER_SCHEMAS: dict[str, dict[str, Any]] = {
    IDEMPOTENCY_HEADER: {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$",  # no edge spaces
    },
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details with a stable machine-readable `code`.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def _specs(routes: Sequence[BaseRoute]) -> list[tuple[Route, str, EndpointSpec]]:
    found = []
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        spec = getattr(route.endpoint, "__endpoint_spec__", None)
        if spec is None:
            continue
        for method in sorted(route.methods or []):
            if method != "HEAD":
                found.append((route, method.lower(), spec))
    return found


class OpenAPIDocument:
    """An application's document, generated on first use: generating it takes a good part
    of a second, which a server start should not wait for."""

    def __init__(self, routes: Sequence[BaseRoute], *, title: str, version: str) -> None:
        self._routes = list(routes)
        self._title = title
        self._version = version
        self._document: dict[str, Any] | None = None
        self._json: bytes | None = None

    @property
    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = build_openapi(self._routes, title=self._title, version=self._version)
        return self._document

    @property
    def json(self) -> bytes:
        if self._json is None:
            self._json = json.dumps(self.document).encode()
        return self._json


def build_openapi(routes: Sequence[BaseRoute], *, title: str, version: str) -> dict[str, Any]:
    specs = _specs(routes)
    models: set[type[BaseModel]] = set()
    for _, _, spec in specs:
        for model in (spec.body, spec.response, spec.query):
            if model is not None:
                models.add(model)
    ordered = sorted(models, key=lambda m: (m.__module__, m.__qualname__))
    modes: list[tuple[type[BaseModel], Any]] = []
    for model in ordered:
        modes.append((model, "validation"))
        modes.append((model, "serialization"))
    refs, defs = models_json_schema(modes, ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    # A model used for input and output, or two models of one name in two domains, share a
    # title; generated clients name types by title and would lose one. The key is unique.
    for name, schema in schemas.items():
        schema["title"] = name
        _refuse_nul(schema)
    schemas["Problem"] = PROBLEM_SCHEMA

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        schema: dict[str, Any] = refs[(model, mode)]  # type: ignore[index]
        return schema

    paths: dict[str, dict[str, Any]] = {}
    for route, method, spec in specs:
        paths.setdefault(route_template(route.path), {})[method] = _operation(
            route, method, spec, ref
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


# Every string the server reads refuses NUL (app.http); free-text strings say so.
NO_NUL = "^[^\\u0000]*$"


def _refuse_nul(schema: Any) -> None:
    """Give every free-text string in `schema` (no pattern, format or enum of its own) the
    no-NUL pattern, so generated requests are ones the server accepts."""
    if isinstance(schema, dict):
        if (
            schema.get("type") == "string"
            and not {"pattern", "format", "enum", "const"} & schema.keys()
        ):
            schema["pattern"] = NO_NUL
        if schema.get("type") == "object" and isinstance(schema.get("additionalProperties"), dict):
            schema.setdefault("propertyNames", {"pattern": NO_NUL})
        for value in schema.values():
            _refuse_nul(value)
    elif isinstance(schema, list):
        for value in schema:
            _refuse_nul(value)


def _problem_responses(route: Route, spec: EndpointSpec) -> dict[str, Any]:
    errors: list[type[Problem]] = list(spec.errors)
    if route.param_convertors:
        errors.append(NotFound)  # an id that names nothing (or nothing the caller may see)
    if spec.body is not None:
        errors += [BodyMalformed, ValidationFailed, BodyTooLarge, UnsupportedMediaType]
    elif spec.query is not None:
        errors.append(ValidationFailed)
    if spec.auth is not None:
        errors += [Unauthorized, Forbidden]
    errors.append(InternalError)
    by_status: dict[int, list[str]] = {}
    for problem in errors:
        codes = by_status.setdefault(problem.status, [])
        if problem.code not in codes:
            codes.append(problem.code)
    return {
        str(status): {
            "description": "codes: " + ", ".join(codes),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status, codes in sorted(by_status.items())
    }


def _path_schema(convertor: object) -> dict[str, Any]:
    """What the route's convertor matches, so a client never builds a path that cannot match."""
    if isinstance(convertor, IdConvertor):
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": convertor.max_length,
            "pattern": f"^{convertor.regex}$",
        }
    return {"type": "string", "pattern": "^[^/]+$"}


def _operation(route: Route, method: str, spec: EndpointSpec, ref: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": spec.summary,
        "operationId": f"{method}_{route.name}",
        "tags": list(spec.tags)
        or [route.path.split("/")[2] if route.path.startswith("/v1/") else "system"],
    }
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(convertor)}
        for name, convertor in route.param_convertors.items()
    ]
    if spec.query is not None:
        schema = spec.query.model_json_schema(ref_template=_REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            _refuse_nul(prop)
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    for header, description in spec.headers.items():
        parameters.append(
            {
                "name": header,
                "in": "header",
                "required": header in spec.required_headers,
                "description": description,
                "schema": HEADER_SCHEMAS.get(header, {"type": "string"}),
            }
        )
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(spec.body, "validation")}},
        }
    ok: dict[str, Any] = {"description": "success"}
    content: dict[str, Any] = {}
    if spec.response is not None:
        content["application/json"] = {"schema": ref(spec.response, "serialization")}
    for media in spec.media_types:
        content[media] = {"schema": {"type": "string"}}
    if content:
        ok["content"] = content
    operation["responses"] = {str(spec.status): ok, **_problem_responses(route, spec)}
    if spec.auth is not None:
        operation["security"] = [{"bearer": []}]
        operation["description"] = f"Requires: {spec.auth}"
    return operation
