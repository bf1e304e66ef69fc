"""The platform middleware: request id, header and body limits, metrics, access log, and
the last-resort 500. One pure ASGI layer, because each extra layer costs on every request."""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import unavailable_error
from app.errors import (
    BodyTooLarge,
    DependencyUnavailable,
    HeadersTooLarge,
    InternalError,
    Problem,
    problem_response,
)
from app.http import route_template
from app.logs import redact, write_access_line
from app.metrics import Metrics

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# No client of ours sends more than a dozen headers or a few KiB of them; what is far
# beyond that is an attack on memory or the log, refused before any handler runs.
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024
error_log = logging.getLogger("suishen.error")


def request_id_of(scope: Scope) -> str | None:
    rid: str | None = scope.get("request_id")
    return rid


class PlatformMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: Metrics,
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.body_limits = dict(body_limits or {})
        self._ids = random.Random(os.urandom(16))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, content_length, chunked, oversize = self._read_headers(scope)
        scope["request_id"] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        received = 0
        limit = self.body_limits.get(scope["path"], self.max_body_bytes)

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"the request body exceeds {limit} bytes")
            return message

        try:
            refusal = _refusal(oversize, content_length, limit)
            if refusal is not None:
                await problem_response(refusal, request_id)(scope, receive, send_with_id)
            elif content_length or chunked:
                await self.app(scope, receive_limited, send_with_id)
            else:
                # Neither Content-Length nor Transfer-Encoding: HTTP/1.1 says there is no
                # body (RFC 9112, 6.3), so there is nothing to count.
                await self.app(scope, receive, send_with_id)
        except Exception as exc:
            problem = _problem_for(exc, scope, request_id)
            if not response_started:
                await problem_response(problem, request_id)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route(scope)
            self.metrics.observe(route, scope["method"], status, elapsed)
            write_access_line(scope["method"], route, status, elapsed * 1000, request_id)

    def _read_headers(self, scope: Scope) -> tuple[str, int | None, bool, bool]:
        """The request id (the client's when sane, else a new one), the Content-Length,
        whether the body comes chunked, and whether the headers are too many or too large."""
        request_id: str | None = None
        content_length: int | None = None
        chunked = False
        headers = scope["headers"]
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                # A client's id that the log redaction would rewrite (it looks like a phone
                # or ID number) is replaced, so the id in the log is the one the client sees.
                if _SANE_REQUEST_ID.match(candidate) and redact(candidate) == candidate:
                    request_id = candidate
            elif name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = None
            elif name == b"transfer-encoding":
                chunked = True
        oversize = len(headers) > MAX_HEADERS or size > MAX_HEADER_BYTES
        if request_id is None:
            # 32 hex digits like uuid4().hex. Request ids are labels, not secrets: a
            # generator seeded from the OS is unique enough and saves a syscall per request.
            request_id = f"{self._ids.getrandbits(128):032x}"
        return request_id, content_length, chunked, oversize


def _refusal(oversize: bool, content_length: int | None, limit: int) -> Problem | None:
    """What a request gets before any handler runs when its headers or declared body are
    past the limits; None for every other request."""
    if oversize:
        return HeadersTooLarge(
            f"at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes of them"
        )
    if content_length is not None and content_length > limit:
        return BodyTooLarge(f"the request body exceeds {limit} bytes")
    return None


def _problem_for(exc: Exception, scope: Scope, request_id: str) -> Problem:
    """The problem an exception from the app becomes, logged when it is not the client's:
    a database outage is 503 (a warning), anything unexpected 500 (with its traceback)."""
    if isinstance(exc, Problem):
        return exc
    fields = {"fields": {"request_id": request_id}}
    if unavailable_error(exc):
        # The database is down, black-holed or overloaded: 503, not a bug's 500.
        error_log.warning(
            "database unavailable (%s) on %s %s",
            type(exc).__name__, scope["method"], _route(scope), extra=fields,
        )  # fmt: skip
        return DependencyUnavailable("the database did not answer in time")
    error_log.error(
        "unhandled %s on %s %s",
        type(exc).__name__, scope["method"], _route(scope), exc_info=exc, extra=fields,
    )  # fmt: skip
    return InternalError()


def _route(scope: Scope) -> str:
    # The route template, never the raw path: raw paths carry ids and explode label sets.
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "<unmatched>"
    template = _TEMPLATES.get(path)
    if template is None:
        template = _TEMPLATES[path] = route_template(path)
    return template


_TEMPLATES: dict[str, str] = {}  # route path -> template; one entry per route
