"""Storage the ORM does not express: the OTP check script (Lua and its Python twin), the
hand-written profile query, the key-value marks that revoke tokens, and the id and hash
forms rows are stored under."""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.context import AppContext
from app.db import placeholders
from app.kv import AtomicScript, LocalView, Value
from auth import tokens
from auth.config import AuthRuntime
from auth.models import Account
from auth.states import ClientStatus


def new_id(prefix: str, nbytes: int = 12) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def sha256_hex(value: str) -> str:
    """How secrets handed out (refresh tokens, client secrets, consent codes) are stored."""
    return hashlib.sha256(value.encode()).hexdigest()


def epoch_ms(now: datetime) -> int:
    return int(now.timestamp() * 1000)


def retry_after_s(ms: int) -> int:
    """A Retry-After in whole seconds, at least 1, from a wait in milliseconds."""
    return max(1, math.ceil(ms / 1000))


# -- the OTP check -------------------------------------------------------------------


def otp_key(ctx: AppContext, phone_index: str) -> str:
    return ctx.kv.keys.key("auth", "otp", phone_index)


def otp_value(expires_ms: int, digest: str) -> str:
    """A fresh code as the check script reads it: expiry, tries so far, HMAC digest."""
    return f"{expires_ms}:0:{digest}"


# Answers with an `OtpOutcome`: 1 accepted (and consumed), 0 no code, -1 expired,
# -2 wrong and now burnt, -3 wrong. Check-and-consume is one atomic step, so of many
# concurrent logins presenting the same code exactly one is accepted.
# KEYS[1] the code's key; ARGV: presented digest, now (ms), the number of tries allowed.
_OTP_CHECK_LUA = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local exp, tries, digest = string.match(v, '^(%d+):(%d+):(%x+)$')
if not exp then redis.call('DEL', KEYS[1]) return 0 end
if tonumber(ARGV[2]) >= tonumber(exp) then redis.call('DEL', KEYS[1]) return -1 end
if digest == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
tries = tonumber(tries) + 1
if tries >= tonumber(ARGV[3]) then redis.call('DEL', KEYS[1]) return -2 end
redis.call('SET', KEYS[1], exp .. ':' .. tries .. ':' .. digest, 'KEEPTTL')
return -3
"""


def _otp_check_local(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> int:
    raw = view.get(keys[0])
    if raw is None:
        return 0
    parts = raw.decode().split(":")
    if len(parts) != 3:
        view.delete(keys[0])
        return 0
    exp, tries, digest = int(parts[0]), int(parts[1]), parts[2]
    if int(args[1]) >= exp:
        view.delete(keys[0])
        return -1
    if digest == args[0]:
        view.delete(keys[0])
        return 1
    tries += 1
    if tries >= int(args[2]):
        view.delete(keys[0])
        return -2
    ttl = view.pttl(keys[0])
    view.set(keys[0], f"{exp}:{tries}:{digest}", ttl if ttl > 0 else None)
    return -3


OTP_CHECK = AtomicScript("auth_otp_check", _OTP_CHECK_LUA, _otp_check_local)


# -- revocation marks ------------------------------------------------------------------
# Bearer authentication reads one of these per request instead of the database, and
# each process keeps what it read for a few seconds (`AuthRuntime.marks`): a writer
# forgets the mark in its own process at once and announces the change on
# `marks_channel`, which every process follows (`follow_marks`). While that
# subscription is down, nothing is kept and every request reads the store.


def revocation_ttl_ms() -> int:
    # Past this, every access token the revocation is about has expired anyway.
    return int((tokens.ACCESS_TTL + tokens.LEEWAY * 2).total_seconds() * 1000)


def family_key(ctx: AppContext, family_id: str) -> str:
    return ctx.kv.keys.key("auth", "revoked-family", family_id)


def client_state_key(ctx: AppContext, client_id: str) -> str:
    return ctx.kv.keys.key("auth", "client-state", client_id)


def marks_channel(ctx: AppContext) -> str:
    """Where a changed mark's key is published, for every process to forget it."""
    return ctx.kv.keys.key("auth", "mark-changed")


async def family_revoked(ctx: AppContext, family_id: str) -> bool:
    """Whether the login family was logged out or revoked."""
    return await _read_mark(ctx, family_key(ctx, family_id)) is not None


async def client_revoked(ctx: AppContext, client_id: str, generation: int | None) -> bool:
    """Whether the client's mark (disabled, or a later secret generation) revokes its
    tokens of `generation`."""
    mark = await _read_mark(ctx, client_state_key(ctx, client_id))
    return mark is not None and client_mark_revokes(mark, generation)


async def mark_family_revoked(ctx: AppContext, family_id: str) -> None:
    await _write_mark(ctx, family_key(ctx, family_id), b"1")


async def mark_client_disabled(ctx: AppContext, client_id: str) -> None:
    await _write_mark(ctx, client_state_key(ctx, client_id), ClientStatus.DISABLED.value)


async def mark_client_generation(ctx: AppContext, client_id: str, generation: int) -> None:
    """Tokens of a lower secret generation than this no longer authenticate."""
    await _write_mark(ctx, client_state_key(ctx, client_id), f"gen:{generation}")


def client_mark_revokes(mark: bytes, generation: int | None) -> bool:
    """Whether a client's mark (disabled, or the current generation) revokes a token of
    `generation`."""
    text = mark.decode()
    return text == ClientStatus.DISABLED or (
        text.startswith("gen:") and (generation or 0) < int(text[4:])
    )


async def _read_mark(ctx: AppContext, key: str) -> bytes | None:
    marks = ctx.runtime(AuthRuntime).marks
    kept = marks.cached(key)
    if kept is not None:
        return kept or None
    epoch = marks.epoch
    mark = await ctx.kv.get(key)
    marks.keep(key, mark, epoch)
    return mark


async def _write_mark(ctx: AppContext, key: str, mark: Value) -> None:
    await ctx.kv.set(key, mark, revocation_ttl_ms())
    # Effective at once in this process, and in the others when the message arrives.
    ctx.runtime(AuthRuntime).marks.drop(key)
    await ctx.kv.publish(marks_channel(ctx), key)


def follow_marks(ctx: AppContext) -> asyncio.Task[None]:
    """Start keeping this process's cache of marks invalidated (stopped by cancelling)."""
    marks = ctx.runtime(AuthRuntime).marks
    return asyncio.create_task(
        ctx.kv.follow(marks_channel(ctx), lambda key: marks.drop(key.decode()), marks.set_live),
        name="auth-marks",
    )


# -- the resident profile ------------------------------------------------------------


# The profile is read on every app start and after every token refresh, so it is one
# hand-written join: building the same query through the ORM costs ten times the CPU.
_PROFILE_SQL = (
    "SELECT a.phone_enc, a.dependents, s.id AS subject_id, s.masked_name, "
    "s.masked_id_number, s.birth_date FROM auth_account a "
    "LEFT JOIN auth_subject s ON s.id = a.subject_id WHERE a.id = {0}"
)


async def profile_row(account_id: str) -> dict[str, Any] | None:
    """The account's encrypted phone, dependents count and own subject's masked card."""
    conn = Account._meta.db
    rows = await conn.execute_query_dict(_PROFILE_SQL.format(*placeholders(conn, 1)), [account_id])
    return rows[0] if rows else None
