"""The hand-made limits: bare Starlette routes doing only the essential work of suishen's
hot paths on the same libraries (asyncpg, redis-py with hiredis, cryptography, PyJWT),
served by the same uvicorn options. `bench_limits.py` measures each real path against
its route here, in the same run.

- `GET /healthz`: the same bytes as suishen's.
- `GET /codes/me`: the bearer token (its signature checked once, then memoised), one
  Redis GET of the subject's status, one ECDSA signature.
- `POST /codes/verify`: the bearer token, the code's signature, one atomic Redis script
  (replay rule and cached status).
- `POST /gates/scan`: the bearer token, the code's signature, one atomic Redis script
  (replay rule), one SQL statement that moves the occupancy within its bound and inserts
  the entry.

The baseline reads suishen's keys (`KEY_DIR`), so tokens and codes suishen issued verify
here; it writes to tables of its own (`bench_venue`, `bench_entry`, shaped like
`venues_venue` and `venues_entry`) and Redis keys under `bl:`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.clock import SystemClock
from app.db import keep_session
from app.keyring import Keys
from app.routes import HEALTHY_BODY
from codes import codec
from codes.states import STATUS_OF, Status

BENCH_VENUE = "bench-venue"
CAPACITY = 1_000_000
LIFETIME_S = 60

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_venue (
    id VARCHAR(40) PRIMARY KEY, capacity INT NOT NULL, occupancy INT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS bench_entry (
    id BIGSERIAL PRIMARY KEY, venue_id VARCHAR(40) NOT NULL, gate_id VARCHAR(40) NOT NULL,
    scan_id VARCHAR(80) NOT NULL, body_hash VARCHAR(64) NOT NULL, direction VARCHAR(4) NOT NULL,
    decision VARCHAR(8) NOT NULL, reason VARCHAR(40) NOT NULL, subject_id VARCHAR(80),
    code_id VARCHAR(80), counted BOOL NOT NULL, response JSONB NOT NULL,
    scanned_at TIMESTAMPTZ NOT NULL, recorded_at TIMESTAMPTZ NOT NULL,
    UNIQUE (gate_id, scan_id));
CREATE INDEX IF NOT EXISTS bench_entry_venue_scanned ON bench_entry (venue_id, scanned_at);
CREATE INDEX IF NOT EXISTS bench_entry_code ON bench_entry (code_id);
CREATE INDEX IF NOT EXISTS bench_entry_subject ON bench_entry (subject_id);
INSERT INTO bench_venue (id, capacity) VALUES ('bench-venue', 1000000) ON CONFLICT DO NOTHING;
"""

# The occupancy moves within its bound (capacity in, zero out) and the entry is inserted,
# admitted and counted only when the bound held: one statement, one round trip.
_SCAN_SQL = """
WITH bump AS (
  UPDATE bench_venue SET occupancy = occupancy + $5
  WHERE id = $1 AND (($5 > 0 AND occupancy < capacity) OR ($5 < 0 AND occupancy > 0))
  RETURNING occupancy)
INSERT INTO bench_entry (venue_id, gate_id, scan_id, body_hash, direction, decision, reason,
  code_id, counted, response, scanned_at, recorded_at)
SELECT $1, $2, $3, $4, $6, 'admit', 'ok', $7, bump.occupancy IS NOT NULL, $8::jsonb, $9, $9
FROM (SELECT 1) AS one LEFT JOIN bump ON TRUE
RETURNING (SELECT occupancy FROM bump)
"""

# SET NX the code's first verifier; the same verifier again is fine, anyone else replays.
# Returns {outcome, cached status}.
_REPLAY_LUA = """
local status = redis.call('GET', KEYS[2])
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, status} end
if redis.call('GET', KEYS[1]) == ARGV[1] then return {2, status} end
return {0, status}
"""


class Baseline:
    def __init__(self) -> None:
        keys = Keys(_key_dir(), SystemClock())
        self.token_keys = {
            kid: key.private_key.public_key()
            for kid, key in keys.signing["tokens"].verification_keys(timedelta(hours=1)).items()
        }
        self.codes_key = keys.signing["codes"].active()
        self.codes_public = {
            codec.key_id_of(k.private_key.public_key()): k.private_key.public_key()
            for k in keys.signing["codes"].verification_keys(timedelta(hours=1)).values()
        }
        self.key_id = codec.key_id_of(self.codes_key.private_key.public_key())
        self.memo: dict[str, dict[str, Any]] = {}
        self.redis: Any = None
        self.db: Any = None
        self.replay: Any = None

    async def open(self) -> None:
        self.redis = aioredis.Redis.from_url(os.environ["REDIS_URL"], max_connections=512)
        self.replay = self.redis.register_script(_REPLAY_LUA)
        dsn = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
        # The pool reset suishen uses (`app.db.keep_session`): one round trip per statement.
        self.db = await asyncpg.create_pool(dsn, min_size=1, max_size=10, reset=keep_session)
        async with self.db.acquire() as conn:
            await conn.execute(_SCHEMA)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.db.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.open()
        try:
            yield
        finally:
            await self.close()

    def claims(self, request: Request) -> dict[str, Any] | None:
        """The bearer token's claims: its signature checked once, then from the memo;
        expiry checked every time."""
        header = request.headers.get("authorization", "")
        token = header[7:]
        claims = self.memo.get(token)
        if claims is None:
            try:
                kid = jwt.get_unverified_header(token)["kid"]
                claims = jwt.decode(
                    token,
                    self.token_keys[kid],
                    algorithms=["ES256"],
                    audience="suishen-api",
                    issuer="suishen",
                )
            except (jwt.PyJWTError, KeyError):
                return None
            self.memo[token] = claims
        return claims if claims["exp"] > time.time() else None

    def verified(self, code: str) -> codec.SignedCode | None:
        try:
            signed = codec.decode(code)
        except ValueError:
            return None
        key = self.codes_public.get(signed.payload.key_id)
        if key is None or not codec.signature_valid(signed, key):
            return None
        return signed


_UNAUTHORIZED = Response(b'{"code":"unauthorized"}', 401, media_type="application/json")
_INVALID = Response(b'{"valid":false}', 200, media_type="application/json")


def _key_dir() -> Path:
    return Path(os.environ["KEY_DIR"])


def create_baseline_app() -> Starlette:
    bl = Baseline()

    async def healthz(request: Request) -> Response:
        return Response(HEALTHY_BODY, media_type="application/json")

    async def codes_me(request: Request) -> Response:
        claims = bl.claims(request)
        if claims is None:
            return _UNAUTHORIZED
        cached = await bl.redis.get(f"bl:status:{claims['sid']}")
        status = Status.GREEN if cached is None else STATUS_OF[cached.decode()]
        issued = int(time.time())
        payload = codec.Payload(
            codec.TYPE_IDENTITY, bl.key_id, issued, LIFETIME_S, status, os.urandom(16)
        )
        at = datetime.fromtimestamp(issued, UTC)
        body = {
            "code": codec.sign(payload, bl.codes_key.private_key),
            "status": status.value,
            "issued_at": at.isoformat(),
            "expires_at": (at + timedelta(seconds=LIFETIME_S)).isoformat(),
            "refresh_after": 30,
            "refresh_at": (at + timedelta(seconds=30)).isoformat(),
        }
        return Response(json.dumps(body), media_type="application/json")

    async def present(signed: codec.SignedCode, verifier: str) -> tuple[int, Any]:
        code_id = signed.payload.token.hex()
        outcome, *status = await bl.replay(
            keys=[f"bl:seen:{code_id}", f"bl:status:{code_id}"],
            args=[verifier, (LIFETIME_S + 30) * 1000],
        )
        return int(outcome), status[0] if status else None

    async def codes_verify(request: Request) -> Response:
        claims = bl.claims(request)
        if claims is None:
            return _UNAUTHORIZED
        body = json.loads(await request.body())
        signed = bl.verified(body["code"])
        if signed is None:
            return _INVALID
        outcome, _ = await present(signed, claims["sub"])
        payload = signed.payload
        out = {
            "valid": outcome != 0,
            "reason": "ok" if outcome else "code_replayed",
            "subject": {"masked_name": "王*明", "status": "green", "age_group": "adult"},
            "issued_at": datetime.fromtimestamp(payload.issued_at, UTC).isoformat(),
            "code_id": payload.token.hex(),
        }
        return Response(json.dumps(out, ensure_ascii=False), media_type="application/json")

    async def gates_scan(request: Request) -> Response:
        claims = bl.claims(request)
        if claims is None:
            return _UNAUTHORIZED
        raw = await request.body()
        body = json.loads(raw)
        signed = bl.verified(body["code"])
        if signed is None:
            return _INVALID
        outcome, _ = await present(signed, claims["sub"])
        direction = body["direction"]
        now = datetime.now(UTC)
        response = {
            "scan_id": body["scan_id"],
            "decision": "admit" if outcome else "deny",
            "reason": "ok" if outcome else "code_replayed",
            "display": {"masked_name": "王*明", "status": "green"},
            "capacity": CAPACITY,
            "direction": direction,
            "scanned_at": now.isoformat(),
            "repeat_of": None,
        }
        occupancy = await bl.db.fetchval(
            _SCAN_SQL,
            BENCH_VENUE,
            claims["sub"],
            body["scan_id"],
            "0" * 64,
            1 if direction == "in" else -1,
            direction,
            signed.payload.token.hex(),
            json.dumps(response, ensure_ascii=False),
            now,
        )
        response["occupancy"] = occupancy
        return Response(json.dumps(response, ensure_ascii=False), media_type="application/json")

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/codes/me", codes_me, methods=["GET"]),
            Route("/codes/verify", codes_verify, methods=["POST"]),
            Route("/gates/scan", gates_scan, methods=["POST"]),
        ],
        lifespan=bl.lifespan,
    )
