"""The codes domain's key-value layout and its atomic scripts (Lua for Redis, each with its
Python twin for the embedded store), with the small functions that run them.

Per-subject keys share a hash tag, so one script reads the cached status and records or
checks a code in the same round trip (and all of a subject's keys sit in one cluster slot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from enum import IntEnum
from typing import Any

from app.context import AppContext
from app.kv import AtomicScript, LocalView
from codes import codec
from codes.states import STATUS_OF, Status

# The per-subject list of live code ids kept for revocation: at most this many (newest).
ISSUED_KEPT = 64
ID_CHARS = 2 * codec.TOKEN_BYTES
STATUS_TTL_MS = 24 * 3600 * 1000
REVOKED_MARK = "!revoked"
# Bounded concurrency: each in-flight call holds a Redis connection, and a burst of
# hundreds of new connections trips the store's connect timeout.
KV_FANOUT = 16


def status_key(ctx: AppContext, subject_id: str) -> str:
    return ctx.kv.keys.key("codes", "status", tag=subject_id)


def issued_key(ctx: AppContext, subject_id: str) -> str:
    return ctx.kv.keys.key("codes", "issued", tag=subject_id)


def cutoff_key(ctx: AppContext, subject_id: str) -> str:
    return ctx.kv.keys.key("codes", "revoked", tag=subject_id)


def seen_key(ctx: AppContext, subject_id: str, code_id: str) -> str:
    return ctx.kv.keys.key("codes", "seen", code_id, tag=subject_id)


# -- issuing ---------------------------------------------------------------------------------

_ISSUE_LUA = """
local v = redis.call('GET', KEYS[1])
if v then v = v .. ',' .. ARGV[1] else v = ARGV[1] end
local cap = tonumber(ARGV[3])
if #v > cap then v = string.sub(v, -cap) end
redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
return redis.call('GET', KEYS[2])
"""


def _issue_local(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> bytes | None:
    current = view.get(keys[0])
    listed = args[0] if current is None else current.decode() + "," + args[0]
    view.set(keys[0], listed[-int(args[2]) :], int(args[1]))
    return view.get(keys[1])


# Records a new code id in the subject's list of live codes (newest ISSUED_KEPT kept, for
# revocation) and returns the cached status, in one round trip.
ISSUE = AtomicScript("codes_issue", _ISSUE_LUA, _issue_local)


async def record_issued(
    ctx: AppContext, subject_id: str, code_id: str, keep_ms: int
) -> bytes | None:
    """Add `code_id` to the subject's live codes for `keep_ms`; the cached status (or None)."""
    cached: bytes | None = await ctx.kv.eval(
        ISSUE,
        [issued_key(ctx, subject_id), status_key(ctx, subject_id)],
        [code_id, keep_ms, ISSUED_KEPT * (ID_CHARS + 1) - 1],
    )
    return cached


# -- verifying -------------------------------------------------------------------------------

_VERIFY_LUA = """
local status = redis.call('GET', KEYS[3])
local cutoff = redis.call('GET', KEYS[2])
if cutoff and tonumber(ARGV[3]) < tonumber(cutoff) then return {3, status} end
local seen = redis.call('GET', KEYS[1])
if not seen then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, status}
end
if seen == ARGV[1] then return {2, status} end
if seen == ARGV[4] then return {3, status} end
return {0, status}
"""


class Outcome(IntEnum):
    """What VERIFY decided about a presentation (the number its script returns)."""

    CONSUMED_BY_OTHER = 0
    FIRST = 1
    SAME_VERIFIER = 2
    REVOKED = 3


_OUTCOMES = tuple(Outcome)


def _verify_local(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> list[Any]:
    status = view.get(keys[2])
    cutoff = view.get(keys[1])
    if cutoff is not None and int(args[2]) < int(cutoff):
        return [Outcome.REVOKED, status]
    seen = view.get(keys[0])
    if seen is None:
        view.set(keys[0], args[0], int(args[1]))
        return [Outcome.FIRST, status]
    if seen.decode() == args[0]:
        return [Outcome.SAME_VERIFIER, status]
    if seen.decode() == args[3]:
        return [Outcome.REVOKED, status]
    return [Outcome.CONSUMED_BY_OTHER, status]


# The replay rule and revocation since issue, decided atomically: a code issued before the
# subject's revocation cutoff, or marked revoked, is refused; otherwise the first verifier
# consumes it, the same verifier may present it again, anyone else is refused. Also returns
# the cached status so the whole online check is one round trip.
VERIFY = AtomicScript("codes_verify", _VERIFY_LUA, _verify_local)


async def present(
    ctx: AppContext,
    subject_id: str,
    code_id: str,
    *,
    verifier_id: str,
    issued_at_s: int,
    ttl_ms: int,
) -> tuple[Outcome, bytes | None]:
    """Run the replay rule for one presentation; the outcome and the cached status."""
    reply = await ctx.kv.eval(
        VERIFY,
        [
            seen_key(ctx, subject_id, code_id),
            cutoff_key(ctx, subject_id),
            status_key(ctx, subject_id),
        ],
        [f"v:{verifier_id}", ttl_ms, issued_at_s, REVOKED_MARK],
    )
    # Lua drops a trailing nil from a returned table: [outcome] means "no cached status".
    items = list(reply)
    return _OUTCOMES[int(items[0])], (items[1] if len(items) > 1 else None)


# -- revocation ------------------------------------------------------------------------------

_REVOKE_LUA = """
local cur = redis.call('GET', KEYS[2])
if not cur or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
local listed = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
return listed
"""


def _revoke_local(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> bytes | None:
    current = view.get(keys[1])
    if current is None or int(current) < int(args[0]):
        view.set(keys[1], args[0], int(args[1]))
    listed = view.get(keys[0])
    view.delete(keys[0])
    return listed


# Sets the subject's revocation cutoff (codes issued in an earlier second are revoked) and
# takes the list of codes issued so far (those of this very second included).
REVOKE = AtomicScript("codes_revoke", _REVOKE_LUA, _revoke_local)


async def revoke_issued(ctx: AppContext, subject_id: str, cutoff_s: int, ttl_ms: int) -> list[str]:
    """Set the subject's cutoff to `cutoff_s`, mark every listed live code revoked (both for
    `ttl_ms`) and return those code ids."""
    listed = await ctx.kv.eval(
        REVOKE, [issued_key(ctx, subject_id), cutoff_key(ctx, subject_id)], [cutoff_s, ttl_ms]
    )
    code_ids = [c for c in (listed.decode().split(",") if listed else []) if len(c) == ID_CHARS]
    for start in range(0, len(code_ids), KV_FANOUT):
        await asyncio.gather(
            *(
                ctx.kv.set(seen_key(ctx, subject_id, c), REVOKED_MARK, ttl_ms)
                for c in code_ids[start : start + KV_FANOUT]
            )
        )
    return code_ids


# -- health status cache ---------------------------------------------------------------------

_STATUS_PUT_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^(%d+)|'))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


def _status_put_local(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> int:
    current = view.get(keys[0])
    if current is not None:
        version = current.split(b"|", 1)[0]
        if version.isdigit() and int(version) >= int(args[0]):
            return 0
    view.set(keys[0], args[1], int(args[2]))
    return 1


# Cache writes keep the highest version: a reader filling the cache from a row it read
# before a change committed can never overwrite the changed status.
STATUS_PUT = AtomicScript("codes_status_put", _STATUS_PUT_LUA, _status_put_local)

_STATUS_PUT_MANY_LUA = """
local written = 0
for i, key in ipairs(KEYS) do
  local version = tonumber(ARGV[2 * i])
  local cur = redis.call('GET', key)
  local v = cur and tonumber(string.match(cur, '^(%d+)|'))
  if not (v and v >= version) then
    redis.call('SET', key, ARGV[2 * i + 1], 'PX', ARGV[1])
    written = written + 1
  end
end
return written
"""


def _status_put_many_local(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> int:
    written = 0
    for i, key in enumerate(keys):
        written += _status_put_local(view, [key], [args[2 * i + 1], args[2 * i + 2], args[0]])
    return written


# STATUS_PUT for many subjects at once (a status batch).
STATUS_PUT_MANY = AtomicScript(
    "codes_status_put_many", _STATUS_PUT_MANY_LUA, _status_put_many_local
)


def encode_status(version: int, status: Status | None, valid_until: datetime | None) -> str:
    """The cached form of a status record: `version|status|valid_until as unix seconds`."""
    until = repr(valid_until.timestamp()) if valid_until else ""
    return f"{version}|{status or ''}|{until}"


def status_from_cache(raw: bytes, now: datetime, default: Status) -> Status:
    """The status in force at `now` by its cached form (the twin of StatusRecord.in_force)."""
    _, status, until = raw.decode().split("|")
    if not status or (until and now.timestamp() >= float(until)):
        return default
    return STATUS_OF[status]


async def cache_status(ctx: AppContext, subject_id: str, version: int, encoded: str) -> None:
    """Cache one subject's status unless a higher version is cached already."""
    await ctx.kv.eval(STATUS_PUT, [status_key(ctx, subject_id)], [version, encoded, STATUS_TTL_MS])


async def cache_statuses(ctx: AppContext, entries: Sequence[tuple[str, int, str]]) -> None:
    """Cache many (subject id, version, encoded status) entries, each unless outdated."""
    if not ctx.settings.redis_cluster:
        # One script call per 500 subjects. (Not on Redis Cluster, where the keys of one
        # script must share a slot and every subject's keys have a slot of their own.)
        for start in range(0, len(entries), 500):
            chunk = entries[start : start + 500]
            args: list[str | int] = [STATUS_TTL_MS]
            for _, version, encoded in chunk:
                args += [version, encoded]
            await ctx.kv.eval(STATUS_PUT_MANY, [status_key(ctx, e[0]) for e in chunk], args)
        return
    for start in range(0, len(entries), KV_FANOUT):
        await asyncio.gather(
            *(cache_status(ctx, *entry) for entry in entries[start : start + KV_FANOUT])
        )
