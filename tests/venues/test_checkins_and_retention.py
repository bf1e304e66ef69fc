"""Place codes, check-ins, residents' visits, the retention purge, and Redis outages."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.cli import main as cli_main
from app.clock import FrozenClock
from app.context import AppContext
from app.main import create_app
from app.settings import Settings
from tests.factories import assert_problem, code_of, relogin, resident
from tests.venues.helpers import make_gate, make_venue, scan
from venues import tasks
from venues.models import DailyCount, Entry, Visit


async def test_place_code_comes_as_json_png_svg_and_poster(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    as_json = await client.get(f"/v1/venues/{venue.id}/place-code")
    assert as_json.status_code == 200 and as_json.json()["place_code"].startswith("SC1:")
    again = await client.get(f"/v1/venues/{venue.id}/place-code")
    assert again.json()["place_code"] == as_json.json()["place_code"], "static"
    png = await client.get(f"/v1/venues/{venue.id}/place-code?format=png")
    poster = await client.get(f"/v1/venues/{venue.id}/place-code?format=png&size=poster")
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert len(poster.content) > len(png.content)
    svg = await client.get(f"/v1/venues/{venue.id}/place-code", headers={"Accept": "image/svg+xml"})
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    assert (await client.get("/v1/venues/ven_nope/place-code")).status_code == 404


async def test_check_in_records_a_visit_and_shows_colour_and_masked_name(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    place = (await client.get(f"/v1/venues/{venue.id}/place-code")).json()["place_code"]
    fay = await resident(client, ctx)
    done = await client.post("/v1/checkins", json={"place_code": place}, headers=fay.headers)
    assert done.status_code == 201, done.text
    body = done.json()
    assert body["venue"]["id"] == venue.id
    assert body["display"] == {"masked_name": "张*明", "status": "green"}
    forged = await client.post(
        "/v1/checkins", json={"place_code": place[:-3] + "AAA"}, headers=fay.headers
    )
    assert_problem(forged, 422, "place_code_invalid")
    identity_code = await code_of(client, fay)
    wrong_kind = await client.post(
        "/v1/checkins", json={"place_code": identity_code}, headers=fay.headers
    )
    assert wrong_kind.status_code == 422
    assert (await client.post("/v1/checkins", json={"place_code": place})).status_code == 401


async def test_residents_see_their_own_visits_only(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    place = (await client.get(f"/v1/venues/{venue.id}/place-code")).json()["place_code"]
    gus, hal = await resident(client, ctx), await resident(client, ctx)
    await client.post("/v1/checkins", json={"place_code": place}, headers=gus.headers)
    entered = await scan(client, gate, await code_of(client, gus))
    assert entered.json()["decision"] == "admit", entered.text
    mine = (await client.get("/v1/residents/me/visits", headers=gus.headers)).json()["items"]
    assert sorted(v["kind"] for v in mine) == ["checkin", "entry"]
    assert {v["venue_name"] for v in mine} == {"上海博物馆"}
    assert (await client.get("/v1/residents/me/visits", headers=hal.headers)).json()["items"] == []


async def test_purge_removes_old_records_and_keeps_daily_counts(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    place = (await client.get(f"/v1/venues/{venue.id}/place-code")).json()["place_code"]
    ivy = await resident(client, ctx)
    await scan(client, gate, await code_of(client, ivy))
    await scan(client, gate, "SC1:junk")
    await client.post("/v1/checkins", json={"place_code": place}, headers=ivy.headers)
    clock.advance(days=27)
    assert await tasks.purge(ctx) == 0, "nothing is older than 28 days yet"
    ivy = await relogin(client, ivy)
    clock.advance(days=2)
    assert await tasks.purge(ctx) >= 3
    assert await Entry.filter(venue_id=venue.id).count() == 0
    assert await Visit.filter(venue_id=venue.id).count() == 0
    counts = await DailyCount.filter(venue_id=venue.id)
    assert [(c.admits, c.denies, c.exits, c.checkins) for c in counts] == [(1, 1, 0, 1)]
    assert await tasks.purge(ctx) == 0
    assert (await DailyCount.filter(venue_id=venue.id).first()) is not None


def test_purge_command_runs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in (("APP_ENV", "test"), ("DATABASE_URL", settings.database_url),
                        ("VAR_DIR", str(settings.var_dir)), ("KEY_DIR", str(settings.key_dir)),
                        ("SMS_BACKEND", "sandbox")):  # fmt: skip
        monkeypatch.setenv(name, value)
    if settings.redis_url:
        monkeypatch.setenv("REDIS_URL", settings.redis_url)
    assert cli_main(["purge", "--json"]) == 0
    assert '"retention_days": 28' in capsys.readouterr().out


@contextlib.asynccontextmanager
async def tcp_proxy(target_port: int) -> AsyncIterator[tuple[int, Any]]:
    """A TCP relay to Redis that the test can cut, as a network partition would."""
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def cut() -> None:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.sleep(0.05)

    try:
        yield port, cut
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()


@pytest.mark.real_only
async def test_gate_answers_503_quickly_when_redis_is_unreachable(
    settings: Settings, clock: FrozenClock
) -> None:
    assert settings.redis_url is not None
    real = httpx.URL(settings.redis_url)
    async with tcp_proxy(real.port or 6379) as (port, cut):
        proxied = settings.with_(redis_url=f"redis://127.0.0.1:{port}{real.path}")
        app = create_app(proxied, clock=clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ctx: AppContext = app.state.ctx
                venue = await make_venue(client, ctx)
                gate = await make_gate(client, venue)
                code = await code_of(client, await resident(client, ctx))
                await cut()
                started = time.perf_counter()
                down = await scan(client, gate, code)
                elapsed = time.perf_counter() - started
                assert_problem(down, 503, "dependency_unavailable")
                assert elapsed < 2.0
                entries = await Entry.filter(venue_id=venue.id).count()
                assert entries == 0, "nothing admitted without the replay check"
