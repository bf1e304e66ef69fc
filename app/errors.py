"""The one error model: every failure leaves as application/problem+json with a stable code.

Problem                         base of every domain error (one subclass tree per domain)
 ├── BodyMalformed              400 body_malformed
 ├── ValidationFailed           422 validation_failed (with the offending fields)
 ├── BodyTooLarge               413 body_too_large
 ├── HeadersTooLarge            431 headers_too_large
 ├── UnsupportedMediaType       415 unsupported_media_type
 ├── NotFound                   404 not_found
 ├── MethodNotAllowed           405 method_not_allowed
 ├── Unauthorized               401 unauthorized
 ├── Forbidden                  403 forbidden
 ├── RateLimited                429 rate_limited (with Retry-After)
 ├── DependencyUnavailable      503 dependency_unavailable
 ├── IdempotencyKeyReused       422 idempotency_key_reused
 ├── RequestInProgress          409 request_in_progress
 └── InternalError              500 internal_error (never carries internals)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """A failure the client is told about: HTTP status, stable code, human title and detail."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {
            "type": f"https://suishen.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(status={self.status}, code={self.code!r}, detail={self.detail!r})"


class BodyMalformed(Problem):
    """The body is not parseable JSON."""

    status, code, title = 400, "body_malformed", "Request body is not valid JSON"


class ValidationFailed(Problem):
    """The body parsed but breaks the endpoint's schema; `errors` lists each offending field."""

    status, code, title = 422, "validation_failed", "Request does not match the schema"

    def __init__(self, errors: Sequence[Mapping[str, Any]], detail: str | None = None) -> None:
        super().__init__(detail, extra={"errors": list(errors)})


class BodyTooLarge(Problem):
    """The body exceeds the configured limit (64 KiB by default)."""

    status, code, title = 413, "body_too_large", "Request body too large"


class HeadersTooLarge(Problem):
    """Too many request headers, or too many bytes of them."""

    status, code, title = 431, "headers_too_large", "Request headers too large"


class UnsupportedMediaType(Problem):
    """A body was sent with a content type other than JSON."""

    status, code, title = 415, "unsupported_media_type", "Content-Type must be application/json"


class NotFound(Problem):
    """No such route, or no such object visible to the caller."""

    status, code, title = 404, "not_found", "Not found"


class MethodNotAllowed(Problem):
    """The path exists but not with this method."""

    status, code, title = 405, "method_not_allowed", "Method not allowed"


class Unauthorized(Problem):
    """No credentials, or credentials that do not verify."""

    status, code, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    """Authenticated, but the scope or tenant does not allow this."""

    status, code, title = 403, "forbidden", "Not allowed"


class Conflict(Problem):
    """The request conflicts with the current state."""

    status, code, title = 409, "conflict", "Conflict"


class RateLimited(Problem):
    """Too many requests; Retry-After says when to try again."""

    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, retry_after_s: int, detail: str | None = None) -> None:
        retry = max(1, int(retry_after_s))
        super().__init__(detail, extra={"retry_after": retry}, headers={"Retry-After": str(retry)})


class DependencyUnavailable(Problem):
    """A backing service (database, Redis, provider) did not answer in time."""

    status, code, title = 503, "dependency_unavailable", "A backing service is unavailable"


class IdempotencyKeyReused(Problem):
    """The Idempotency-Key was used before with a different request body."""

    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key reused with another body"


class RequestInProgress(Problem):
    """A request with the same Idempotency-Key is still being processed."""

    status, code, title = 409, "request_in_progress", "A request with this key is in progress"


class InternalError(Problem):
    """Anything unexpected. The body never says what went wrong inside."""

    status, code, title = 500, "internal_error", "Internal server error"


def problem_response(problem: Problem, request_id: str | None = None) -> Response:
    # The request id goes in the body only: the platform middleware puts the
    # X-Request-ID header on every response, and a second one would repeat it.
    headers = dict(problem.headers)
    body = problem.body()
    if request_id:
        body["request_id"] = request_id
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=problem.status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )
