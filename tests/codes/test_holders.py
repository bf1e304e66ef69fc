"""codes.api.holder_of: the subject of a code we signed, however old the code is; nobody
for anything we did not sign as an identity code."""

from __future__ import annotations

import os

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from app.clock import FrozenClock
from app.context import AppContext
from codes import codec
from codes.api import holder_of, sign_place_code
from codes.config import CodesRuntime
from codes.issuing import issue_code
from tests.factories import add_dependent, code_of, resident


async def subject_and_code(client: httpx.AsyncClient, ctx: AppContext) -> tuple[str, str]:
    """A new resident's subject id and a code issued to them now."""
    who = await resident(client, ctx)
    assert who.subject_id is not None
    return who.subject_id, (await issue_code(ctx, who.subject_id)).code


async def test_a_code_names_its_subject_even_long_after_it_expired(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    subject_id, code = await subject_and_code(client, ctx)
    assert await holder_of(ctx, code) == subject_id
    clock.advance(hours=20)
    assert await holder_of(ctx, code) == subject_id, "expiry is not checked"
    rt = ctx.runtime(CodesRuntime)
    for cache in (rt.handles, rt.subjects, rt.pseudonyms, rt.holders):
        cache.clear()
    assert await holder_of(ctx, code) == subject_id, "found again without the caches"


async def test_a_dependents_code_names_the_dependent(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    guardian = await resident(client, ctx)
    child = await add_dependent(client, guardian)
    code = await code_of(client, guardian, dependent_id=child)
    assert await holder_of(ctx, code) == child != guardian.subject_id


async def test_forged_malformed_and_place_codes_name_nobody(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    genuine = codec.decode((await subject_and_code(client, ctx))[1]).payload
    ours = ctx.keys.signing["codes"].active().public_key
    rogue = ec.generate_private_key(ec.SECP256R1())
    # Our key id and a real token, signed by someone else; then a stranger's own key.
    forged = codec.sign(genuine, rogue)
    stranger = codec.sign(genuine._replace(key_id=codec.key_id_of(rogue.public_key())), rogue)
    assert genuine.key_id == codec.key_id_of(ours)
    for code in (forged, stranger, "SC1:nonsense", "", sign_place_code(ctx, "venue_1")):
        assert await holder_of(ctx, code) is None, code
    key = ctx.keys.signing["codes"].active()
    for _ in range(8):  # tokens given to no subject (half open to handles past 2**63)
        unknown = genuine._replace(token=os.urandom(codec.TOKEN_BYTES))
        assert await holder_of(ctx, codec.sign(unknown, key.private_key)) is None


async def test_a_code_of_a_retired_key_names_its_subject_only_inside_the_window(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    subject_id, old = await subject_and_code(client, ctx)
    ctx.keys.signing["codes"].rotate()
    assert await holder_of(ctx, old) == subject_id
    clock.advance(seconds=91)
    assert await holder_of(ctx, old) is None, "the retired key is no longer trusted"
