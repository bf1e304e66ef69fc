"""Webhooks delivered by the worker to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from payments import webhooks
from payments.models import OutboxEvent, WebhookDelivery
from tests.payments.helpers import (
    Hospital,
    charge,
    close,
    hospital,
    item,
    open_encounter,
    patient,
    refund,
)


@dataclass
class Receiver:
    """A hospital's webhook endpoint: records what arrives, fails the first `fail_first`."""

    url: str = ""
    fail_first: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    hits: int = 0

    def events(self, secret: str) -> list[dict[str, Any]]:
        out = []
        for headers, body in self.received:
            parts = dict(p.split("=", 1) for p in headers["suishen-signature"].split(","))
            expected = hmac.new(
                secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
            ).hexdigest()
            assert hmac.compare_digest(parts["v1"], expected), "bad signature"
            out.append(json.loads(body))
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.hits += 1
            if state.hits <= state.fail_first:
                self.send_response(500)
            else:
                state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


async def register(client: httpx.AsyncClient, where: Hospital, url: str) -> str:
    response = await client.put(
        "/v1/hospitals/me/webhook", json={"url": url}, headers=where.headers
    )
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


async def test_settlement_and_refund_events_arrive_signed(
    client: httpx.AsyncClient, ctx: AppContext, receiver: Receiver, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    secret = await register(client, where, receiver.url)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    await charge(client, where, encounter["id"], [item(1_000)], "c1")
    await close(client, where, encounter["id"])
    await refund(client, where, encounter["id"], "c1", 100)
    assert await webhooks.deliver_due(ctx) == 3
    events = receiver.events(secret)
    assert [e["type"] for e in events] == ["encounter.settled", "bill.paid", "refund.succeeded"]
    assert events[0]["data"]["encounter_id"] == encounter["id"]
    timestamp = int(receiver.received[0][0]["suishen-signature"].split(",")[0][2:])
    assert abs(timestamp - clock.now().timestamp()) < 1
    assert await webhooks.deliver_due(ctx) == 0


async def test_failing_receiver_gets_the_event_later_with_backoff(
    client: httpx.AsyncClient, ctx: AppContext, receiver: Receiver, clock: FrozenClock
) -> None:
    receiver.fail_first = 2
    where = await hospital(client, ctx)
    secret = await register(client, where, receiver.url)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    await close(client, where, encounter["id"])  # zero total: settled + paid events
    assert await webhooks.deliver_due(ctx) == 2
    assert receiver.received == []
    clock.advance(timedelta(seconds=9))
    assert await webhooks.deliver_due(ctx) == 0  # first backoff is 10 s
    clock.advance(timedelta(seconds=2))
    assert await webhooks.deliver_due(ctx) == 2
    assert [e["type"] for e in receiver.events(secret)] == ["encounter.settled", "bill.paid"]
    log = await WebhookDelivery.all().order_by("id").values_list("attempt", "status_code")
    assert sorted(log) == [(1, 500), (1, 500), (2, 204), (2, 204)]
    assert await OutboxEvent.filter(status="delivered").count() == 2


async def test_delivery_gives_up_after_a_day(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    # Nothing listens on this port: every attempt fails to connect.
    await register(client, where, "http://127.0.0.1:9/hooks")
    encounter = await open_encounter(client, where, await patient(client, ctx))
    await close(client, where, encounter["id"])
    for _ in range(40):
        await webhooks.deliver_due(ctx)
        clock.advance(timedelta(hours=1))
    events = await OutboxEvent.all()
    assert {e.status for e in events} == {"failed"}
    assert all(e.attempts >= 8 for e in events)
