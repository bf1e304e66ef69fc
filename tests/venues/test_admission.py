"""One admission per code and exits that count only for people inside (online gates)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.context import AppContext
from tests.factories import code_of, resident
from tests.venues.helpers import make_gate, make_venue, occupancy, scan, scan_id


@pytest.mark.parametrize("anti_passback", [True, False])
async def test_a_code_scanned_ten_times_at_one_gate_admits_once(
    client: httpx.AsyncClient, ctx: AppContext, anti_passback: bool
) -> None:
    venue = await make_venue(client, ctx, capacity=5, anti_passback=anti_passback)
    gate = await make_gate(client, venue)
    code = await code_of(client, await resident(client, ctx))
    first = (await scan(client, gate, code)).json()
    assert (first["decision"], first["occupancy"], first.get("repeat_of")) == ("admit", 1, None)
    for _ in range(9):
        again = await scan(client, gate, code)
        assert again.status_code == 200, again.text
        body = again.json()
        assert (body["decision"], body["reason"], body["display"]) == (
            "admit", "ok", first["display"],
        )  # fmt: skip
        assert body["repeat_of"] == first["scan_id"] and body["occupancy"] == 1
    assert await occupancy(client, venue) == 1
    entries = await client.get(f"/v1/venues/{venue.id}/entries", headers=venue.operator.headers)
    assert len(entries.json()["items"]) == 10, "every scan is recorded"


@pytest.mark.parametrize("anti_passback", [True, False])
async def test_concurrent_scans_of_one_code_count_one_admission(
    client: httpx.AsyncClient, ctx: AppContext, anti_passback: bool
) -> None:
    venue = await make_venue(client, ctx, capacity=5, anti_passback=anti_passback)
    gate = await make_gate(client, venue)
    code = await code_of(client, await resident(client, ctx))
    sids = [scan_id() for _ in range(10)]
    answers = [
        a.json() for a in await asyncio.gather(*(scan(client, gate, code, sid=s) for s in sids))
    ]
    firsts = [a for a in answers if a.get("repeat_of") is None]
    assert len(firsts) == 1 and firsts[0]["decision"] == "admit"
    repeats = [a for a in answers if a.get("repeat_of") is not None]
    assert {a["repeat_of"] for a in repeats} == {firsts[0]["scan_id"]}
    assert {a["decision"] for a in repeats} == {"admit"} and len(repeats) == 9
    assert await occupancy(client, venue) == 1


async def test_a_denied_scan_does_not_consume_the_code(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx, capacity=1)
    gate = await make_gate(client, venue)
    first, second = await resident(client, ctx), await resident(client, ctx)
    assert (await scan(client, gate, await code_of(client, first))).json()["decision"] == "admit"
    waiting = await code_of(client, second)
    full = (await scan(client, gate, waiting)).json()
    assert (full["decision"], full["reason"]) == ("deny", "venue_full")
    assert (await scan(client, gate, await code_of(client, first), "out")).json()["occupancy"] == 0
    admitted = (await scan(client, gate, waiting)).json()
    assert (admitted["decision"], admitted.get("repeat_of"), admitted["occupancy"]) == (
        "admit", None, 1,
    )  # fmt: skip


async def test_an_annulled_admission_frees_the_code(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx, anti_passback=False)
    gate = await make_gate(client, venue)
    code = await code_of(client, await resident(client, ctx))
    sid = scan_id()
    assert (await scan(client, gate, code, sid=sid)).json()["occupancy"] == 1
    annulled = await client.post(f"/v1/gates/scan/{sid}/annul", headers=gate.headers)
    assert annulled.status_code == 200 and annulled.json()["occupancy"] == 0
    again = (await scan(client, gate, code)).json()
    assert (again["decision"], again.get("repeat_of"), again["occupancy"]) == ("admit", None, 1)
    repeat = (await scan(client, gate, code)).json()
    assert repeat["repeat_of"] == again["scan_id"] and repeat["occupancy"] == 1


async def test_an_exit_of_someone_never_seen_entering_is_let_out_but_not_counted(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx, capacity=3)
    gate = await make_gate(client, venue)
    for _ in range(3):
        code = await code_of(client, await resident(client, ctx))
        assert (await scan(client, gate, code)).json()["decision"] == "admit"
    stranger = await resident(client, ctx)
    out = (await scan(client, gate, await code_of(client, stranger), "out")).json()
    assert (out["decision"], out["occupancy"]) == ("admit", 3)
    assert await occupancy(client, venue) == 3
    fourth = (await scan(client, gate, await code_of(client, stranger))).json()
    assert (fourth["decision"], fourth["reason"]) == ("deny", "venue_full")


async def test_a_second_exit_is_not_counted_again(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx, capacity=3)
    gate = await make_gate(client, venue)
    ann, bo = await resident(client, ctx), await resident(client, ctx)
    for person in (ann, bo):
        assert (await scan(client, gate, await code_of(client, person))).json()["occupancy"] > 0
    assert (await scan(client, gate, await code_of(client, ann), "out")).json()["occupancy"] == 1
    twice = (await scan(client, gate, await code_of(client, ann), "out")).json()
    assert (twice["decision"], twice["occupancy"]) == ("admit", 1), "bo is still inside"
