"""Structured logging: JSON lines in production, readable lines in dev.

Handlers never log bodies or credentials; the redaction filter is the second line of
defence and scrubs anything shaped like a token, an OTP field, a phone or an ID number.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*"), "[jwt]"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1[redacted]"),
    (
        re.compile(
            r"(?i)\b(otp|code|secret|password|token|refresh_token|client_secret)"
            r"(\"?\s*[:=]\s*\"?)[^\s\",}]+"
        ),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "[id-number]"),
    (re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)"), "[phone]"),
]

ACCESS_LOGGER = "suishen.access"


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        fields = getattr(record, "fields", None)
        if fields:
            # Request ids are never rewritten: the middleware only admits ids that redaction
            # leaves alone, and a generated hex id may hold a run of digits shaped like a phone.
            record.fields = {
                k: redact(v) if isinstance(v, str) and k != "request_id" else v
                for k, v in fields.items()
            }
        return True


class _Clock:
    """Formats `created` timestamps, reusing the part that only changes once a second."""

    def __init__(self, local: bool) -> None:
        self.local = local
        self._second = -1
        self._prefix = ""

    def _seconds(self, second: int) -> str:
        if second != self._second:
            self._second = second
            if self.local:
                self._prefix = time.strftime("%H:%M:%S", time.localtime(second))
            else:
                self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return self._prefix

    def iso_ms(self, created: float) -> str:
        second = int(created)
        return f"{self._seconds(second)}.{int((created - second) * 1000):03d}+00:00"

    def hms(self, created: float) -> str:
        return self._seconds(int(created))


# The access line is written on every request, so it skips the LogRecord machinery
# (several times the cost of the rest of the middleware) when only our handler would
# see it. Its fields are safe by construction: the method is an HTTP token, the route
# a template from the code (never the raw path), the request id ours or a client's
# that passed the sanity pattern and `redact`. The line is identical to what the
# formatter makes of the equivalent record (tests compare the two).


def access_fields(route: str, status: int, duration_ms: float, request_id: str) -> dict[str, Any]:
    return {"request_id": request_id, "route": route, "status": status, "duration_ms": duration_ms}


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock(local=False)
        self._pid = os.getpid()  # worker processes are spawned and configure their own
        self._access: dict[tuple[str, str, int], tuple[str, str, str]] = {}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            # Which worker process: several serve behind one port.
            "pid": record.process,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)

    def format_access(
        self,
        created: float,
        method: str,
        route: str,
        status: int,
        duration_ms: float,
        request_id: str,
    ) -> str:
        parts = self._access.get((method, route, status))
        if parts is None:
            # json.dumps escapes the fixed parts once; the variable ones need no escaping.
            msg_head = json.dumps(f"{method} {route} {status} ", ensure_ascii=False)[:-1]
            parts = (
                f'", "level": "info", "logger": "{ACCESS_LOGGER}", "pid": {self._pid}, '
                f'"msg": {msg_head}',
                'ms", "request_id": "',
                f'", "route": {json.dumps(route, ensure_ascii=False)}, "status": {status}, '
                '"duration_ms": ',
            )
            if len(self._access) < 4096:
                self._access[(method, route, status)] = parts
        head, middle, tail = parts
        ts = self._clock.iso_ms(created)
        return f'{{"ts": "{ts}{head}{duration_ms:.1f}{middle}{request_id}{tail}{duration_ms}}}'


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock(local=True)

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        when = self.formatTime(record, "%H:%M:%S")
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extra:
            line += f" {extra}"
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line

    def format_access(
        self,
        created: float,
        method: str,
        route: str,
        status: int,
        duration_ms: float,
        request_id: str,
    ) -> str:
        return (
            f"{self._clock.hms(created)} INFO    {ACCESS_LOGGER}: "
            f"{method} {route} {status} {duration_ms:.1f}ms request_id={request_id} "
            f"route={route} status={status} duration_ms={duration_ms}"
        )


class SuishenHandler(logging.StreamHandler[TextIO]):
    """The one handler `configure_logging` installs. It also writes access lines without
    a LogRecord (`write_access`), and inside an event loop gathers the access lines of
    one loop iteration into one write: a write per request cost more than the rest of
    the access log on a busy disk. Any other record, `flush()` and `close()` write the
    gathered lines first, so the order of lines is kept."""

    formatter: JsonFormatter | TextFormatter

    def __init__(self, stream: TextIO, formatter: JsonFormatter | TextFormatter) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self.addFilter(RedactingFilter())
        self._pending: list[str] = []
        self._drain_scheduled = False

    def write_access(
        self, method: str, route: str, status: int, duration_ms: float, request_id: str
    ) -> None:
        line = self.formatter.format_access(
            time.time(), method, route, status, duration_ms, request_id
        )
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(line)
            if loop is None:
                self._drain()
            elif not self._drain_scheduled:
                self._drain_scheduled = True
                loop.call_soon(self._scheduled_drain)

    def _scheduled_drain(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._drain_scheduled = False
            self._drain()

    def _drain(self) -> None:
        # Called with the lock held.
        if self._pending:
            lines, self._pending = self._pending, []
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        self._drain()  # handle() holds the lock while it calls emit()
        super().emit(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self.stream and hasattr(self.stream, "write"):
                self._drain()
        super().flush()


_access_logger = logging.getLogger(ACCESS_LOGGER)


def write_access_line(
    method: str, route: str, status: int, duration_ms: float, request_id: str
) -> None:
    """Log one request: directly through our handler when it is the only one the access
    logger reaches, else (tests capturing logs, another configuration) through logging."""
    logger = _access_logger
    if not logger.isEnabledFor(logging.INFO):
        return
    duration_ms = round(duration_ms, 2)
    handler = _sole_handler(logger)
    if handler is not None:
        handler.write_access(method, route, status, duration_ms, request_id)
    else:
        logger.info(
            f"{method} {route} {status} {duration_ms:.1f}ms",
            extra={"fields": access_fields(route, status, duration_ms, request_id)},
        )


def _sole_handler(logger: logging.Logger) -> SuishenHandler | None:
    """Our handler when it is the only place `logger`'s records would go, else None."""
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    handlers = logging.root.handlers
    if len(handlers) != 1 or logging.root.filters:
        return None
    handler = handlers[0]
    if type(handler) is not SuishenHandler or handler.level > logging.INFO:
        return None
    return handler


def configure_logging(log_format: str, level: str = "INFO") -> None:
    formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    root = logging.getLogger()
    root.handlers[:] = [SuishenHandler(sys.stderr, formatter)]
    root.setLevel(level)
    # Python's warnings would otherwise reach stderr as bare text between the JSON lines.
    logging.captureWarnings(True)
    # uvicorn's own access log duplicates ours and shows raw paths; ours has route templates.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
