"""docs/venues.md's recipe for matching a code to a bundle's reservations, followed from
the text alone (standard AES and HMAC, nothing of suishen's but the code format's decoder):
an outside gate vendor can implement it exactly."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.clock import FrozenClock
from app.context import AppContext
from codes import codec
from tests.factories import code_of, resident
from tests.venues.helpers import book, make_gate, make_slot, make_venue


def documented_hash(document: dict[str, object], code: str) -> str:
    payload = codec.decode(code).payload  # docs/code-format.md: the signed fields
    day = (payload.issued_at + 28800) // 86400  # step 1
    gate_keys = document["gate_keys"]
    assert isinstance(gate_keys, dict)
    gate_key = bytes.fromhex(gate_keys[str(day)])  # step 2
    decryptor = Cipher(algorithms.AES(gate_key), modes.ECB()).decryptor()  # noqa: S305
    pseudonym = (decryptor.update(payload.token) + decryptor.finalize())[:8]  # step 3
    salt = document["reservation_salt"]
    assert isinstance(salt, str)
    key = bytes.fromhex(salt)  # step 4
    return hmac.new(key, pseudonym, hashlib.sha256).hexdigest()[:32]  # step 5


async def test_the_documented_recipe_finds_the_holders_reservation_and_nobody_elses(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, reservation_required=True)
    gate = await make_gate(client, venue)
    slot = await make_slot(client, venue, clock.now() + timedelta(minutes=20))
    holder, walker = await resident(client, ctx), await resident(client, ctx)
    assert (await book(client, holder, slot["id"])).status_code == 201
    document = (await client.get("/v1/gates/bundle", headers=gate.headers)).json()["document"]
    listed = {entry["h"] for entry in document["reservations"]}
    assert documented_hash(document, await code_of(client, holder)) in listed
    assert documented_hash(document, await code_of(client, walker)) not in listed
    # A second code of the holder (another nonce, same day) opens to the same pseudonym.
    assert documented_hash(document, await code_of(client, holder)) in listed
