"""Health status: set by the authority, reverting after valid_until, kept as history,
cached and invalidated on change; codes carry it, online verification uses the current one."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from codes import store
from codes.issuing import issue_code
from codes.models import HealthStatus, HealthStatusChange
from codes.status import current_status
from tests.factories import Machine, Resident, assert_problem, code_body, code_of, machine, resident


async def authority(client: httpx.AsyncClient, ctx: AppContext) -> Machine:
    return await machine(client, ctx, "authority")


async def put_status(
    client: httpx.AsyncClient,
    who: Machine,
    subject_id: str,
    status: str,
    *,
    reason: str = "test result",
    valid_until: datetime | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"status": status, "reason": reason}
    if valid_until is not None:
        body["valid_until"] = valid_until.isoformat()
    return await client.put(f"/v1/health-status/{subject_id}", json=body, headers=who.headers)


def subject(who: Resident) -> str:
    assert who.subject_id is not None
    return who.subject_id


async def test_authority_sets_a_status_and_new_codes_carry_it(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who, auth = await resident(client, ctx), await authority(client, ctx)
    response = await put_status(client, auth, subject(who), "yellow")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "yellow"
    assert (await code_body(client, who))["status"] == "yellow"
    assert await current_status(ctx, subject(who)) == "yellow"


async def test_a_code_issued_green_is_refused_once_the_subject_turned_red(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who, auth = await resident(client, ctx), await authority(client, ctx)
    gate = await machine(client, ctx, "gate", "venue-1")
    code = await code_of(client, who)
    assert (await put_status(client, auth, subject(who), "red")).status_code == 200
    response = await client.post("/v1/codes/verify", json={"code": code}, headers=gate.headers)
    verdict = response.json()
    assert verdict["valid"] is False
    assert verdict["reason"] == "status_changed"
    assert verdict["issued_status"] == "green"
    fresh = await code_of(client, who)
    again = await client.post("/v1/codes/verify", json={"code": fresh}, headers=gate.headers)
    assert again.json()["valid"] is True
    assert again.json()["subject"]["status"] == "red"


async def test_status_reverts_to_the_default_after_valid_until(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who, auth = await resident(client, ctx), await authority(client, ctx)
    until = clock.now() + timedelta(hours=1)
    response = await put_status(client, auth, subject(who), "red", valid_until=until)
    assert response.json()["valid_until"] is not None
    assert (await code_body(client, who))["status"] == "red"
    clock.advance(hours=1)
    assert await current_status(ctx, subject(who)) == "green"
    assert (await issue_code(ctx, subject(who))).status == "green"
    auth = await authority(client, ctx)  # the first token expired meanwhile
    status = await client.get(f"/v1/health-status/{subject(who)}", headers=auth.headers)
    assert status.json()["status"] == "green" and status.json()["set_status"] == "red"


async def test_valid_until_in_the_past_is_refused(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who, auth = await resident(client, ctx), await authority(client, ctx)
    response = await put_status(
        client, auth, subject(who), "red", valid_until=clock.now() - timedelta(seconds=1)
    )
    assert_problem(response, 422, "validation_failed")
    assert await current_status(ctx, subject(who)) == "green"


async def test_every_change_is_kept_as_history(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who, auth = await resident(client, ctx), await authority(client, ctx)
    for colour in ("yellow", "red", "green"):
        assert (await put_status(client, auth, subject(who), colour)).status_code == 200
        clock.advance(seconds=1)
    response = await client.get(f"/v1/health-status/{subject(who)}/history", headers=auth.headers)
    changes = response.json()["changes"]
    assert [c["status"] for c in changes] == ["yellow", "red", "green"]
    assert all(c["set_by"] == f"authority:{auth.client_id}" for c in changes)


async def test_only_the_authority_writes_status(client: httpx.AsyncClient, ctx: AppContext) -> None:
    who = await resident(client, ctx)
    gate = await machine(client, ctx, "gate", "venue-1")
    response = await client.put(
        f"/v1/health-status/{subject(who)}",
        json={"status": "red", "reason": "x"},
        headers=gate.headers,
    )
    assert response.status_code == 403
    response = await client.put(
        f"/v1/health-status/{subject(who)}",
        json={"status": "red", "reason": "x"},
        headers=who.headers,
    )
    assert response.status_code == 403


async def test_bad_status_values_are_validation_errors(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    auth = await authority(client, ctx)
    for body in (
        {"status": "purple", "reason": "x"},
        {"status": "red"},
        {"status": "red", "reason": ""},
        {"status": "red", "reason": "x", "valid_until": "tomorrow"},
    ):
        response = await client.put("/v1/health-status/s1", json=body, headers=auth.headers)
        assert response.status_code == 422, body


async def test_the_cache_is_updated_on_change(client: httpx.AsyncClient, ctx: AppContext) -> None:
    who, auth = await resident(client, ctx), await authority(client, ctx)
    assert await current_status(ctx, subject(who)) == "green"  # now cached
    assert await ctx.kv.get(store.status_key(ctx, subject(who))) is not None
    await put_status(client, auth, subject(who), "red")
    assert await current_status(ctx, subject(who)) == "red"


async def test_concurrent_changes_leave_cache_and_database_agreeing(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who, auth = await resident(client, ctx), await authority(client, ctx)
    colours = ["red", "yellow", "green"] * 5
    responses = await asyncio.gather(
        *(put_status(client, auth, subject(who), c) for c in colours),
        *(client.get("/v1/codes/me", headers=who.headers) for _ in range(10)),
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    row = await HealthStatus.get(subject_id=subject(who))
    assert await current_status(ctx, subject(who)) == row.status
    assert await HealthStatusChange.filter(subject_id=subject(who)).count() == len(colours)
    assert row.version == len(colours)


@pytest.mark.cluster
async def test_batch_sets_many_statuses_at_once(client: httpx.AsyncClient, ctx: AppContext) -> None:
    auth = await authority(client, ctx)
    entries = [
        {"subject_id": f"sub_batch_{i}", "status": ("red", "yellow")[i % 2], "reason": "screening"}
        for i in range(10_000)
    ]
    response = await client.post(
        "/v1/health-status:batch", json={"entries": entries}, headers=auth.headers
    )
    assert response.status_code == 200, response.text[:500]
    assert response.json() == {"updated": 10_000}
    assert await current_status(ctx, "sub_batch_9998") == "red"
    assert await current_status(ctx, "sub_batch_9999") == "yellow"
    assert await HealthStatusChange.filter(subject_id__startswith="sub_batch_").count() == 10_000
    again = [{**e, "status": "green"} for e in entries[:100]]
    response = await client.post(
        "/v1/health-status:batch", json={"entries": again}, headers=auth.headers
    )
    assert response.status_code == 200
    assert await current_status(ctx, "sub_batch_1") == "green"


async def test_one_bad_entry_rejects_the_whole_batch(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    auth = await authority(client, ctx)
    entries: list[dict[str, Any]] = [
        {"subject_id": f"sub_all_{i}", "status": "red", "reason": "r"} for i in range(50)
    ]
    entries[30]["valid_until"] = (clock.now() - timedelta(days=1)).isoformat()
    entries[40]["subject_id"] = "sub_all_0"
    response = await client.post(
        "/v1/health-status:batch", json={"entries": entries}, headers=auth.headers
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"entries.30.valid_until", "entries.40.subject_id"}
    assert await HealthStatus.filter(subject_id__startswith="sub_all_").count() == 0
    entries = [{"subject_id": f"sub_x_{i}", "status": "red", "reason": "r"} for i in range(3)]
    entries[1]["status"] = "blue"
    response = await client.post(
        "/v1/health-status:batch", json={"entries": entries}, headers=auth.headers
    )
    assert response.status_code == 422
    assert await HealthStatus.filter(subject_id__startswith="sub_x_").count() == 0


async def test_batch_over_10000_entries_is_refused(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    auth = await authority(client, ctx)
    entries = [{"subject_id": f"s{i}", "status": "red", "reason": "r"} for i in range(10_001)]
    response = await client.post(
        "/v1/health-status:batch", json={"entries": entries}, headers=auth.headers
    )
    assert response.status_code in (413, 422)
    assert await HealthStatus.all().count() == 0


async def test_concurrent_batches_over_the_same_new_subjects_all_apply(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    auth = await authority(client, ctx)
    colours = ("red", "yellow", "green", "red", "yellow")

    def batch(colour: str) -> dict[str, Any]:
        return {
            "entries": [
                {"subject_id": f"sub_race_{i}", "status": colour, "reason": "r"} for i in range(40)
            ]
        }

    responses = await asyncio.gather(
        *(
            client.post("/v1/health-status:batch", json=batch(c), headers=auth.headers)
            for c in colours
        )
    )
    assert [r.status_code for r in responses] == [200] * len(colours), [r.text for r in responses]
    for i in range(40):
        row = await HealthStatus.get(subject_id=f"sub_race_{i}")
        assert row.version == len(colours)
        assert await current_status(ctx, row.subject_id) == row.status
    assert await HealthStatusChange.filter(subject_id="sub_race_0").count() == len(colours)
