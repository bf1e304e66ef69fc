"""What an offline gate can do with GET /v1/codes/keys and the day's gate key alone."""

from __future__ import annotations

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from codes import pseudonym, verifier
from codes.config import CodesRuntime
from codes.keys import daily_pseudonym, gate_token_keys
from tests.factories import code_of, machine, resident


async def test_gate_reads_the_same_daily_pseudonym_the_server_lists_reservations_by(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    alice, bob = await resident(client, ctx), await resident(client, ctx)
    assert alice.subject_id is not None and bob.subject_id is not None
    day = pseudonym.day_of(int(clock.now().timestamp()))
    gate_keys = {d: bytes.fromhex(k) for d, k in gate_token_keys(ctx, [day]).items()}
    keys = verifier.keys_from_jwks((await client.get("/v1/codes/keys")).json())
    seen = []
    for who in (alice, alice, bob):
        code = await code_of(client, who)
        result = verifier.verify(code, keys, (), clock.now())
        assert result.valid
        seen.append(verifier.daily_pseudonym(result, gate_keys))
    assert seen[0] == seen[1] == await daily_pseudonym(ctx, alice.subject_id, day)
    assert seen[2] == await daily_pseudonym(ctx, bob.subject_id, day)
    assert seen[0] != seen[2]
    tomorrow = await daily_pseudonym(ctx, alice.subject_id, day + 1)
    assert tomorrow != seen[0]
    assert verifier.daily_pseudonym(result, {day + 1: gate_keys[day]}) is None


async def test_a_process_that_never_saw_the_subject_still_finds_them(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx)
    gate = await machine(client, ctx, "gate", "venue-1")
    code = await code_of(client, who)
    rt = ctx.runtime(CodesRuntime)
    for cache in (rt.handles, rt.subjects, rt.pseudonyms, rt.holders, rt.profiles):
        cache.clear()
    response = await client.post("/v1/codes/verify", json={"code": code}, headers=gate.headers)
    assert response.json()["valid"] is True
    assert response.json()["subject"]["masked_name"] == "张*明"
