"""What every thin handler uses: parse a body or query into a schema, answer JSON, and
describe itself for the OpenAPI document (`@endpoint`).

This is the edge where hostile input stops (issue 9): bodies are validated strictly from
their JSON text (no `true` taken as 1, no string taken as a number), nesting is bounded by
the JSON parser's depth limit, NUL is refused in every body, query and path, and path ids
match the `{name:id}` / `{name:longid}` convertors or the route does not match at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from app.errors import BodyMalformed, Problem, UnsupportedMediaType, ValidationFailed
from app.types import ID_MAX, LONG_ID_MAX

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class EndpointSpec:
    """How an endpoint presents itself in /openapi.json."""

    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: Sequence[type[Problem]] = ()
    auth: str | None = None  # the scope required, "resident", or None for anyone
    tags: Sequence[str] = ()
    media_types: Sequence[str] = ()  # extra response media types (image/png, text/csv ...)
    headers: Mapping[str, str] = field(default_factory=dict)  # request headers -> description
    required_headers: Sequence[str] = ()  # those of `headers` the endpoint refuses to go without


def endpoint(**spec: Any) -> Callable[[Handler], Handler]:
    """Attach an `EndpointSpec` to a handler; the OpenAPI generator reads it off the route."""

    def wrap(handler: Handler) -> Handler:
        handler.__endpoint_spec__ = EndpointSpec(**spec)  # type: ignore[attr-defined]
        return handler

    return wrap


class IdConvertor(Convertor[str]):
    """A path segment that is one of our ids: a route whose id is too long, empty or made
    of other characters does not match (404), so no lookup ever sees it."""

    regex = f"[A-Za-z0-9_.:\\-]{{1,{ID_MAX}}}"
    max_length = ID_MAX

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class LongIdConvertor(IdConvertor):
    """Subject ids and ids a client chose (scan_id), up to 64 characters."""

    regex = f"[A-Za-z0-9_.:\\-]{{1,{LONG_ID_MAX}}}"
    max_length = LONG_ID_MAX


def route_template(path: str) -> str:
    """What clients, logs and metrics call a route: `{venue_id:id}` shows as `{venue_id}`."""
    return _CONVERTOR_SUFFIX.sub(r"{\1}", path)


_CONVERTOR_SUFFIX = re.compile(r"{(\w+):\w+}")
register_url_convertor("id", IdConvertor())
register_url_convertor("longid", LongIdConvertor())

# `\u0000` in JSON text that is not itself an escaped backslash: a NUL in some string.
# PostgreSQL cannot store NUL in text, and no field of ours has a use for it.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "(body)",
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]


def raw_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a header, straight from the ASGI scope (`name` lower-case, as
    ASGI servers deliver names): on hot paths, building Starlette's Headers view for one
    lookup costs more than the lookup."""
    return next((value for key, value in scope["headers"] if key == name), None)


async def read_json(request: Request, model: type[M]) -> M:
    """Parse and validate the JSON body. Bad media type, bad JSON and schema violations
    become their problem codes; the body-size limit is enforced by the middleware."""
    content_type = (raw_header(request.scope, b"content-type") or b"").decode("latin-1")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"expected application/json, got {media or 'no Content-Type'}")
    raw = await request.body()
    if not raw.strip():
        raise BodyMalformed("the request body is empty")
    if _JSON_NUL.search(raw):
        raise ValidationFailed(
            [{"field": "(body)", "message": "NUL characters are not allowed", "type": "nul"}]
        )
    try:
        # Strict, from the JSON text itself: JSON types must match the schema's.
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            # Also what a body nested past the parser's depth limit gets.
            raise BodyMalformed("the request body is not valid JSON") from None
        if any(e["type"] == "int_type" for e in errors):
            return _with_whole_numbers(model, raw)
        raise ValidationFailed(_field_errors(exc)) from None


def _whole(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def _with_whole_numbers(model: type[M], raw: bytes) -> M:
    """JSON Schema counts 212.0 and 2.12e2 as integers; strict validation does not. Only a
    body strict validation refused comes here (no cost on the usual path): its whole-valued
    numbers are written as integers and it is validated again, still strictly."""
    rewritten = json.dumps(json.loads(raw, parse_float=_whole), ensure_ascii=False)
    try:
        return model.model_validate_json(rewritten, strict=True)
    except ValidationError as exc:
        raise ValidationFailed(_field_errors(exc)) from None


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(_field_errors(exc)) from None


def read_query(request: Request, model: type[M]) -> M:
    """Validate query parameters against a schema (repeated keys become lists)."""
    data: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        if any("\x00" in v for v in values) or "\x00" in key:
            raise ValidationFailed(
                [{"field": key, "message": "NUL characters are not allowed", "type": "nul"}]
            )
        data[key] = values if len(values) > 1 else values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(_field_errors(exc)) from None


class JSONModelResponse(Response):
    """JSON straight from pydantic's serializer (fast, and RFC 3339 datetimes)."""

    media_type = "application/json"

    def __init__(
        self,
        content: BaseModel | Mapping[str, Any] | Sequence[Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(content, status_code, headers)

    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):
            return content.model_dump_json().encode()
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def json_response(
    content: BaseModel | Mapping[str, Any] | Sequence[Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> JSONModelResponse:
    return JSONModelResponse(content, status, headers)
