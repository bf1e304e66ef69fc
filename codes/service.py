"""The codes domain's operations: issue and verify identity codes, health status, revocation,
place codes, and what offline gates carry. Plain async functions over an `AppContext`.

Hot paths (`issue_code`, `verify_code`) make one key-value round trip each: per-subject
keys share a hash tag, so one atomic script reads the cached status and records or checks
the code in the same call.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.errors import Forbidden, NotFound, ValidationFailed
from app.keyring import SigningKey
from app.kv import AtomicScript, LocalView
from auth import scopes
from auth import service as auth_service
from auth.principal import Principal
from codes import codec, pseudonym, verifier
from codes.config import CodesConfig
from codes.errors import PlaceCodeInvalid, SubjectRequired
from codes.models import CodeRevocation, CodeSubject, HealthStatus, HealthStatusChange

PURPOSE = "codes"
# The per-subject list of live code ids kept for revocation: at most this many (newest).
ISSUED_KEPT = 64
_ID_CHARS = 2 * codec.TOKEN_BYTES
_STATUS_TTL_MS = 24 * 3600 * 1000
_CACHE_LIMIT = 200_000
_REVOKED_MARK = "!revoked"
_KV_FANOUT = 16


# -- runtime: configuration and per-process caches ------------------------------------


@dataclass
class CodesRuntime:
    config: CodesConfig
    token_secret: bytes
    # Handles never change once made, so these caches never go stale.
    handles: dict[str, bytes] = field(default_factory=dict)
    subjects: dict[bytes, str] = field(default_factory=dict)
    profiles: dict[str, tuple[datetime, Any]] = field(default_factory=dict)
    # (day, subject) <-> that day's pseudonym: saves the Feistel rounds on repeat visits.
    pseudonyms: dict[tuple[int, str], bytes] = field(default_factory=dict)
    holders: dict[tuple[int, bytes], str] = field(default_factory=dict)
    _trusted: dict[bytes, verifier.TrustedKey] = field(default_factory=dict)
    _trusted_sig: tuple[tuple[str, datetime | None], ...] = ()
    _all: dict[bytes, verifier.TrustedKey] = field(default_factory=dict)
    _all_sig: tuple[str, ...] = ()
    _key_ids: dict[str, bytes] = field(default_factory=dict)

    def key_id(self, key: SigningKey) -> bytes:
        found = self._key_ids.get(key.kid)
        if found is None:
            found = self._key_ids[key.kid] = codec.key_id_of(key.public_key)
        return found

    def remember(self, subject_id: str, handle: bytes) -> None:
        if len(self.handles) > _CACHE_LIMIT:
            self.handles.clear()
            self.subjects.clear()
        self.handles[subject_id] = handle
        self.subjects[handle] = subject_id

    def remember_pseudonym(self, day: int, subject_id: str, pseudo: bytes) -> None:
        if len(self.pseudonyms) > _CACHE_LIMIT:
            self.pseudonyms.clear()
            self.holders.clear()
        self.pseudonyms[(day, subject_id)] = pseudo
        self.holders[(day, pseudo)] = subject_id


def build_runtime(ctx: AppContext) -> CodesRuntime:
    # The token key is derived from the PII secret (HKDF with its own label), so codes
    # need no secret of their own and rotate with the deployment's PII key.
    secret = pseudonym.token_secret(ctx.keys.secrets.get("pii"))
    return CodesRuntime(CodesConfig.from_extra(ctx.settings.extra), secret)


def runtime(ctx: AppContext) -> CodesRuntime:
    rt: CodesRuntime = ctx.extensions[PURPOSE]
    return rt


@lru_cache(maxsize=16)
def _day_keys(secret: bytes, day: int) -> tuple[bytes, bytes]:
    return pseudonym.gate_key(secret, day), pseudonym.permutation_key(secret, day)


# -- keys -----------------------------------------------------------------------------


def trusted_keys(ctx: AppContext) -> dict[bytes, verifier.TrustedKey]:
    """The keys identity codes verify with: active ones and retired ones inside the
    verification window (lifetime + skew), loaded once and kept until the keyring changes."""
    rt = runtime(ctx)
    window = rt.config.verification_window
    keys = ctx.keys.signing[PURPOSE].verification_keys(window)
    signature = tuple((k.kid, k.retired_at) for k in keys.values())
    if signature != rt._trusted_sig:
        rt._trusted = verifier.key_set(
            verifier.TrustedKey(
                k.kid,
                k.public_key,
                k.retired_at + window if k.retired_at else None,
                rt.key_id(k),
            )
            for k in keys.values()
        )
        rt._trusted_sig = signature
    return rt._trusted


def _place_keys(ctx: AppContext) -> dict[bytes, verifier.TrustedKey]:
    # Place codes are printed posters: every codes key ever made verifies them, so a
    # rotation never invalidates a poster (a compromised key is removed from the ring).
    rt = runtime(ctx)
    keys = ctx.keys.signing[PURPOSE].all_keys()
    signature = tuple(k.kid for k in keys)
    if signature != rt._all_sig:
        rt._all = verifier.key_set(
            verifier.TrustedKey(k.kid, k.public_key, None, rt.key_id(k)) for k in keys
        )
        rt._all_sig = signature
    return rt._all


def public_keys(ctx: AppContext) -> dict[str, Any]:
    """The JWK Set of GET /v1/codes/keys (and of offline bundles)."""
    return {
        "keys": [
            verifier.public_jwk(k.kid, k.public_key, not_after=k.not_after)
            for k in trusted_keys(ctx).values()
        ]
    }


def gate_token_keys(ctx: AppContext, days: Sequence[int]) -> dict[int, str]:
    """Hex gate keys of `days` (pseudonym.day_of numbers) for an offline bundle: they open
    the tokens of codes issued on those days to the holders' daily pseudonyms."""
    secret = runtime(ctx).token_secret
    return {day: _day_keys(secret, day)[0].hex() for day in days}


async def daily_pseudonym(ctx: AppContext, subject_id: str, day: int) -> str:
    """The subject's pseudonym of `day` (hex), what an offline gate reads out of a code
    with that day's gate key: venues list reservations by it in their bundles."""
    return (await _pseudonym_of(ctx, subject_id, day)).hex()


# -- subjects and their handles ----------------------------------------------------------


async def _handle_for(ctx: AppContext, subject_id: str) -> bytes:
    rt = runtime(ctx)
    handle = rt.handles.get(subject_id)
    if handle is not None:
        return handle
    row = await CodeSubject.get_or_none(subject_id=subject_id)
    while row is None:
        number = secrets.randbits(63)  # positive: fits a signed BIGINT everywhere
        try:
            row = await CodeSubject.create(
                handle=number, subject_id=subject_id, created_at=ctx.clock.now()
            )
        except IntegrityError:  # another request made it first (or, rarely, a handle clash)
            row = await CodeSubject.get_or_none(subject_id=subject_id)
    handle = int(row.handle).to_bytes(8, "big")
    rt.remember(subject_id, handle)
    return handle


async def _pseudonym_of(ctx: AppContext, subject_id: str, day: int) -> bytes:
    rt = runtime(ctx)
    pseudo = rt.pseudonyms.get((day, subject_id))
    if pseudo is None:
        handle = await _handle_for(ctx, subject_id)
        pseudo = pseudonym.pseudonymise(_day_keys(rt.token_secret, day)[1], handle)
        rt.remember_pseudonym(day, subject_id, pseudo)
    return pseudo


async def _subject_of(ctx: AppContext, result: verifier.Result) -> str | None:
    rt = runtime(ctx)
    assert result.issued_at_s is not None
    day = pseudonym.day_of(result.issued_at_s)
    gate, perm = _day_keys(rt.token_secret, day)
    pseudo = pseudonym.open_token(gate, result.token).pseudonym
    subject_id = rt.holders.get((day, pseudo))
    if subject_id is not None:
        return subject_id
    handle = pseudonym.depseudonymise(perm, pseudo)
    subject_id = rt.subjects.get(handle)
    if subject_id is None:
        row = await CodeSubject.get_or_none(handle=int.from_bytes(handle, "big"))
        if row is None:
            return None
        subject_id = row.subject_id
        rt.remember(subject_id, handle)
    rt.remember_pseudonym(day, subject_id, pseudo)
    return subject_id


async def _profile(ctx: AppContext, subject_id: str) -> Any:
    rt = runtime(ctx)
    now = ctx.clock.now()
    cached = rt.profiles.get(subject_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    profile = await auth_service.subject_profile(subject_id, now=now)
    if len(rt.profiles) > _CACHE_LIMIT:
        rt.profiles.clear()
    rt.profiles[subject_id] = (now + rt.config.profile_cache, profile)
    return profile


# -- key-value layout and atomic scripts -------------------------------------------------


def _status_key(ctx: AppContext, subject_id: str) -> str:
    return ctx.kv.keys.key("codes", "status", tag=subject_id)


def _issued_key(ctx: AppContext, subject_id: str) -> str:
    return ctx.kv.keys.key("codes", "issued", tag=subject_id)


def _cutoff_key(ctx: AppContext, subject_id: str) -> str:
    return ctx.kv.keys.key("codes", "revoked", tag=subject_id)


def _seen_key(ctx: AppContext, subject_id: str, code_id: str) -> str:
    return ctx.kv.keys.key("codes", "seen", code_id, tag=subject_id)


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

CONSUMED_BY_OTHER, FIRST, SAME_VERIFIER, REVOKED = 0, 1, 2, 3


def _verify_local(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> list[Any]:
    status = view.get(keys[2])
    cutoff = view.get(keys[1])
    if cutoff is not None and int(args[2]) < int(cutoff):
        return [REVOKED, status]
    seen = view.get(keys[0])
    if seen is None:
        view.set(keys[0], args[0], int(args[1]))
        return [FIRST, status]
    if seen.decode() == args[0]:
        return [SAME_VERIFIER, status]
    if seen.decode() == args[3]:
        return [REVOKED, status]
    return [CONSUMED_BY_OTHER, status]


# The replay rule and revocation since issue, decided atomically: a code issued before the
# subject's revocation cutoff, or marked revoked, is refused; otherwise the first verifier
# consumes it, the same verifier may present it again, anyone else is refused. Also returns
# the cached status so the whole online check is one round trip.
VERIFY = AtomicScript("codes_verify", _VERIFY_LUA, _verify_local)

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


# -- health status -------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusRecord:
    """The last status set for a subject (None fields: never set)."""

    subject_id: str
    version: int
    status: str | None
    reason: str | None
    valid_until: datetime | None
    set_at: datetime | None

    def in_force(self, now: datetime, default: str) -> str:
        if self.status is None or (self.valid_until is not None and now >= self.valid_until):
            return default
        return self.status


def _encode_status(record: StatusRecord) -> str:
    until = repr(record.valid_until.timestamp()) if record.valid_until else ""
    return f"{record.version}|{record.status or ''}|{until}"


def _status_from_cache(raw: bytes, now: datetime, default: str) -> str:
    _, status, until = raw.decode().split("|")
    if not status or (until and now.timestamp() >= float(until)):
        return default
    return status


def _record_of(subject_id: str, row: HealthStatus | None) -> StatusRecord:
    if row is None:
        return StatusRecord(subject_id, 0, None, None, None, None)
    return StatusRecord(
        subject_id, row.version, row.status, row.reason, row.valid_until, row.set_at
    )


async def _load_status(ctx: AppContext, subject_id: str) -> StatusRecord:
    record = _record_of(subject_id, await HealthStatus.get_or_none(subject_id=subject_id))
    await ctx.kv.eval(
        STATUS_PUT,
        [_status_key(ctx, subject_id)],
        [record.version, _encode_status(record), _STATUS_TTL_MS],
    )
    return record


async def _status_in_force(ctx: AppContext, subject_id: str, cached: bytes | None) -> str:
    rt = runtime(ctx)
    now = ctx.clock.now()
    if cached is not None:
        return _status_from_cache(cached, now, rt.config.default_status)
    return (await _load_status(ctx, subject_id)).in_force(now, rt.config.default_status)


async def current_status(ctx: AppContext, subject_id: str) -> str:
    """The status in force now: the last one set, or the default once its `valid_until`
    passed (or if none was ever set). Served from the key-value cache."""
    cached = await ctx.kv.get(_status_key(ctx, subject_id))
    return await _status_in_force(ctx, subject_id, cached)


async def status_record(ctx: AppContext, subject_id: str) -> StatusRecord:
    return _record_of(subject_id, await HealthStatus.get_or_none(subject_id=subject_id))


@dataclass(frozen=True)
class StatusChange:
    subject_id: str
    status: str
    reason: str
    valid_until: datetime | None


def _check_changes(changes: Sequence[StatusChange], now: datetime) -> None:
    """All-or-nothing validation: every offending entry is listed, nothing is written."""
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, change in enumerate(changes):
        if change.status not in codec.STATUSES:
            errors.append(_entry_error(i, "status", "must be green, yellow or red"))
        if change.valid_until is not None:
            if change.valid_until.tzinfo is None:
                errors.append(_entry_error(i, "valid_until", "needs a timezone"))
            elif change.valid_until <= now:
                errors.append(_entry_error(i, "valid_until", "must be in the future"))
        if change.subject_id in seen:
            errors.append(_entry_error(i, "subject_id", "appears twice in one batch"))
        seen.add(change.subject_id)
    if errors:
        raise ValidationFailed(errors, f"{len(errors)} invalid entries; nothing was changed")


def _entry_error(index: int, name: str, message: str) -> dict[str, Any]:
    return {"field": f"entries.{index}.{name}", "message": message, "type": "value_error"}


async def set_statuses(
    ctx: AppContext, changes: Sequence[StatusChange], *, actor: str
) -> list[StatusRecord]:
    """Set many subjects' statuses in one transaction (all or nothing), keep each change
    in the history, then update the cache. Rows are locked so versions follow commits."""
    now = ctx.clock.now()
    _check_changes(changes, now)
    try:
        records = await _write_statuses(changes, actor, now)
    except IntegrityError:
        # A concurrent first write created one of the rows this batch meant to create;
        # the rolled-back batch runs again and now updates that row.
        records = await _write_statuses(changes, actor, now)
    await _cache_statuses(ctx, records)
    return records


async def _write_statuses(
    changes: Sequence[StatusChange], actor: str, now: datetime
) -> list[StatusRecord]:
    ids = [c.subject_id for c in changes]
    records: list[StatusRecord] = []
    async with in_transaction():
        existing: dict[str, HealthStatus] = {}
        for start in range(0, len(ids), 1000):
            rows = await HealthStatus.filter(
                subject_id__in=ids[start : start + 1000]
            ).select_for_update()
            existing.update({row.subject_id: row for row in rows})
        updated, created, history = [], [], []
        for change in changes:
            row = existing.get(change.subject_id)
            version = row.version + 1 if row is not None else 1
            values = {
                "status": change.status,
                "reason": change.reason,
                "valid_until": change.valid_until,
                "version": version,
                "set_by": actor,
                "set_at": now,
            }
            if row is None:
                row = HealthStatus(subject_id=change.subject_id, **values)
                created.append(row)
            else:
                row.update_from_dict(values)
                updated.append(row)
            history.append(HealthStatusChange(subject_id=change.subject_id, **values))
            records.append(_record_of(change.subject_id, row))
        if created:
            await HealthStatus.bulk_create(created, batch_size=1000)
        if updated:
            # These rows exist and are locked: an INSERT ... ON CONFLICT DO UPDATE updates
            # them in one statement per 1000, far faster than the ORM's bulk UPDATE (one
            # CASE expression per column), and unlike delete + insert it keeps the locks.
            await HealthStatus.bulk_create(
                updated,
                batch_size=1000,
                on_conflict=["subject_id"],
                update_fields=["status", "reason", "valid_until", "version", "set_by", "set_at"],
            )
        await HealthStatusChange.bulk_create(history, batch_size=1000)
    return records


async def _cache_statuses(ctx: AppContext, records: Sequence[StatusRecord]) -> None:
    if ctx.settings.extra.get("SUISHEN_REDIS_CLUSTER") != "1":
        # One script call per 500 subjects. (Not on Redis Cluster, where the keys of one
        # script must share a slot and every subject's keys have a slot of their own.)
        for start in range(0, len(records), 500):
            chunk = records[start : start + 500]
            args: list[str | int] = [_STATUS_TTL_MS]
            for record in chunk:
                args += [record.version, _encode_status(record)]
            await ctx.kv.eval(
                STATUS_PUT_MANY, [_status_key(ctx, r.subject_id) for r in chunk], args
            )
        return

    async def put(record: StatusRecord) -> None:
        await ctx.kv.eval(
            STATUS_PUT,
            [_status_key(ctx, record.subject_id)],
            [record.version, _encode_status(record), _STATUS_TTL_MS],
        )

    # Bounded concurrency: each in-flight call holds a Redis connection, and a burst of
    # hundreds of new connections trips the store's connect timeout.
    for start in range(0, len(records), _KV_FANOUT):
        await asyncio.gather(*(put(r) for r in records[start : start + _KV_FANOUT]))


async def set_status(
    ctx: AppContext,
    subject_id: str,
    status: str,
    reason: str,
    valid_until: datetime | None,
    *,
    actor: str,
) -> StatusRecord:
    changes = [StatusChange(subject_id, status, reason, valid_until)]
    return (await set_statuses(ctx, changes, actor=actor))[0]


async def status_history(subject_id: str) -> list[HealthStatusChange]:
    return await HealthStatusChange.filter(subject_id=subject_id).order_by("set_at", "id").all()


# -- issuing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCode:
    code: str
    status: str
    issued_at: datetime
    expires_at: datetime
    refresh_after: timedelta
    code_id: str


async def issue_code(ctx: AppContext, subject_id: str) -> IssuedCode:
    """A fresh identity code for `subject_id` carrying its current status."""
    rt = runtime(ctx)
    now = ctx.clock.now()
    issued_s = int(now.timestamp())
    day = pseudonym.day_of(issued_s)
    pseudo = await _pseudonym_of(ctx, subject_id, day)
    token = pseudonym.seal(_day_keys(rt.token_secret, day)[0], pseudo, os.urandom(8))
    code_id = token.hex()
    lifetime_s = int(rt.config.lifetime.total_seconds())
    keep_ms = int((rt.config.lifetime + rt.config.skew).total_seconds() * 1000)
    cached = await ctx.kv.eval(
        ISSUE,
        [_issued_key(ctx, subject_id), _status_key(ctx, subject_id)],
        [code_id, keep_ms, ISSUED_KEPT * (_ID_CHARS + 1) - 1],
    )
    status = await _status_in_force(ctx, subject_id, cached)
    key = ctx.keys.signing[PURPOSE].active()
    payload = codec.Payload(
        codec.TYPE_IDENTITY, rt.key_id(key), issued_s, lifetime_s, status, token
    )
    issued_at = datetime.fromtimestamp(issued_s, now.tzinfo)
    return IssuedCode(
        code=codec.sign(payload, key.private_key),
        status=status,
        issued_at=issued_at,
        expires_at=issued_at + rt.config.lifetime,
        refresh_after=rt.config.refresh_after,
        code_id=code_id,
    )


# -- verifying -------------------------------------------------------------------------------


# Decided only online: the subject's status changed after the code was issued.
STATUS_CHANGED = "status_changed"


@dataclass(frozen=True)
class Verification:
    """The online verdict. `status` is the subject's status now; `issued_status` the colour
    the code carries. Subject fields are set only for a valid code."""

    valid: bool
    reason: str
    subject_id: str | None = None
    status: str | None = None
    issued_status: str | None = None
    masked_name: str | None = None
    age_group: str | None = None
    expires_at: datetime | None = None
    code_id: str | None = None
    issued_at: datetime | None = None


def _refused(result: verifier.Result, reason: str | None = None) -> Verification:
    return Verification(
        False,
        reason or result.reason,
        issued_status=result.status,
        expires_at=result.expires_at,
        code_id=result.code_id,
        issued_at=result.issued_at,
    )


async def verify_code(ctx: AppContext, code: str, *, verifier_id: str) -> Verification:
    """Pure verification, then what only the server knows: revocation since issue, the
    replay rule (atomic across processes), the current status and the masked profile."""
    rt = runtime(ctx)
    now = ctx.clock.now()
    result = verifier.verify(code, trusted_keys(ctx), (), now, rt.config.skew)
    if not result.valid:
        return _refused(result)
    subject_id = await _subject_of(ctx, result)
    if subject_id is None:  # signed by us for a subject that no longer exists
        return _refused(result, verifier.CODE_REVOKED)
    assert result.code_id is not None and result.issued_at_s is not None
    until_s = result.issued_at_s + result.lifetime_s + rt.config.skew.total_seconds()
    ttl_ms = max(1000, int((until_s - now.timestamp()) * 1000))
    reply = await ctx.kv.eval(
        VERIFY,
        [
            _seen_key(ctx, subject_id, result.code_id),
            _cutoff_key(ctx, subject_id),
            _status_key(ctx, subject_id),
        ],
        [f"v:{verifier_id}", ttl_ms, result.issued_at_s, _REVOKED_MARK],
    )
    outcome, cached = _pad(reply)
    if outcome == REVOKED:
        return _refused(result, verifier.CODE_REVOKED)
    if outcome == CONSUMED_BY_OTHER:
        return _refused(result, verifier.CODE_REPLAYED)
    status = await _status_in_force(ctx, subject_id, cached)
    if status != result.status:
        # The colour on the holder's screen is no longer true (e.g. issued green a minute
        # before the authority set red): refuse, so the holder refreshes and shows the truth.
        return Verification(
            False,
            STATUS_CHANGED,
            subject_id=subject_id,
            status=status,
            issued_status=result.status,
            expires_at=result.expires_at,
            code_id=result.code_id,
            issued_at=result.issued_at,
        )
    profile = await _profile(ctx, subject_id)
    return Verification(
        True,
        verifier.OK,
        subject_id=subject_id,
        status=status,
        issued_status=result.status,
        masked_name=profile.masked_name if profile is not None else None,
        age_group=profile.age_group if profile is not None else None,
        expires_at=result.expires_at,
        code_id=result.code_id,
        issued_at=result.issued_at,
    )


def _pad(reply: Any) -> tuple[int, bytes | None]:
    # Lua drops a trailing nil from a returned table: [outcome] means "no cached status".
    items = list(reply)
    return int(items[0]), (items[1] if len(items) > 1 else None)


# -- revocation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Revocation:
    subject_id: str
    revoked_at: datetime
    codes_revoked: int


async def revoke_codes(ctx: AppContext, subject_id: str, *, actor: str) -> Revocation:
    """Lost phone: every code issued so far for the subject stops verifying (online at
    once; offline gates learn the code ids from GET /v1/codes/revocations)."""
    rt = runtime(ctx)
    now = ctx.clock.now()
    window = rt.config.lifetime + rt.config.skew
    # Codes issued before the cutoff second are refused by the cutoff; codes of this very
    # second are refused by id (they are in the list). The marker outlives every such code.
    cutoff_ttl_ms = int((window + rt.config.skew).total_seconds() * 1000) + 60_000
    listed = await ctx.kv.eval(
        REVOKE,
        [_issued_key(ctx, subject_id), _cutoff_key(ctx, subject_id)],
        [int(now.timestamp()), cutoff_ttl_ms],
    )
    code_ids = [c for c in (listed.decode().split(",") if listed else []) if len(c) == _ID_CHARS]
    for start in range(0, len(code_ids), _KV_FANOUT):
        await asyncio.gather(
            *(
                ctx.kv.set(_seen_key(ctx, subject_id, c), _REVOKED_MARK, cutoff_ttl_ms)
                for c in code_ids[start : start + _KV_FANOUT]
            )
        )
    not_after = now + window
    rows = [
        CodeRevocation(
            subject_id=subject_id, code_id=None, revoked_at=now, not_after=not_after, actor=actor
        )
    ]
    rows += [
        CodeRevocation(
            subject_id=subject_id, code_id=c, revoked_at=now, not_after=not_after, actor=actor
        )
        for c in code_ids
    ]
    await CodeRevocation.bulk_create(rows)
    return Revocation(subject_id, now, len(code_ids))


@dataclass(frozen=True)
class RevokedCode:
    cursor: int
    code_id: str
    not_after: datetime


@dataclass(frozen=True)
class RevocationPage:
    since: int
    next_cursor: int
    has_more: bool
    generated_at: datetime
    entries: list[RevokedCode]


async def revocations_since(ctx: AppContext, cursor: int, limit: int = 1000) -> RevocationPage:
    """Revoked code ids after `cursor` that still matter (not yet expired), oldest first.
    Entries name codes only, never subjects: a gate learns nothing about who revoked."""
    now = ctx.clock.now()
    rows = (
        await CodeRevocation.filter(id__gt=cursor, code_id__isnull=False)
        .order_by("id")
        .limit(limit + 1)
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = rows[-1].id if rows else cursor
    entries = [RevokedCode(r.id, r.code_id or "", r.not_after) for r in rows if r.not_after > now]
    return RevocationPage(cursor, next_cursor, has_more, now, entries)


def sign_document(ctx: AppContext, document: dict[str, Any]) -> str:
    """A compact ES256 JWS over `document` with the active codes key (`kid` in the header),
    verifiable with GET /v1/codes/keys."""
    key = ctx.keys.signing[PURPOSE].active()
    body = json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return jwt.api_jws.PyJWS().encode(
        body.encode(),
        key.private_key,
        algorithm="ES256",
        headers={"kid": key.kid, "typ": "suishen-revocations+jws"},
    )


# -- place codes ---------------------------------------------------------------------------


def sign_place_code(ctx: AppContext, venue_id: str) -> str:
    """A venue's static place code (type 2, no expiry), signed with the active codes key."""
    key = ctx.keys.signing[PURPOSE].active()
    payload = codec.Payload(
        codec.TYPE_PLACE,
        runtime(ctx).key_id(key),
        int(ctx.clock.now().timestamp()),
        0,
        venue_id=venue_id,
    )
    try:
        return codec.sign(payload, key.private_key)
    except ValueError as exc:
        raise PlaceCodeInvalid(f"cannot make a place code: {exc}") from None


def verify_place_code(ctx: AppContext, code: str) -> str:
    """The venue id a place code names; PlaceCodeInvalid when it does not verify."""
    result = verifier.verify(
        code,
        _place_keys(ctx),
        (),
        ctx.clock.now(),
        runtime(ctx).config.skew,
        kind=codec.TYPE_PLACE,
    )
    if not result.valid or result.venue_id is None:
        raise PlaceCodeInvalid(extra={"reason": result.reason})
    return result.venue_id


# -- what a caller may act for -------------------------------------------------------------


async def issue_code_for(
    ctx: AppContext, principal: Principal, dependent_id: str | None
) -> IssuedCode:
    """A code for the resident or a dependent they guard (409 identity_required first)."""
    return await issue_code(ctx, await auth_service.subject_for_request(principal, dependent_id))


async def revoke_as(
    ctx: AppContext, principal: Principal, *, dependent_id: str | None, subject_id: str | None
) -> Revocation:
    """A resident revokes their own (or a dependent's) codes; an admin names the subject."""

    if principal.is_resident:
        target = await auth_service.subject_for_request(principal, dependent_id)
    elif principal.has(scopes.ADMIN):
        if subject_id is None:
            raise SubjectRequired()
        if await auth_service.subject_profile(subject_id, now=ctx.clock.now()) is None:
            raise NotFound("no such subject")
        target = subject_id
    else:  # require() let only residents and admins through
        raise Forbidden("only the resident or an admin may revoke codes")
    return await revoke_codes(ctx, target, actor=f"{principal.kind}:{principal.id}")
