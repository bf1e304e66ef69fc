"""Venues: POST /v1/gates/scan on the real server. A fixed-rate driver (200 scans/s, the
issue's load) measures the decision latency p99; wrk then measures throughput beside
GET /healthz on the same server. Goal: p99 < 50 ms at 200 scans/s on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import httpx

from auth.identity import check_digit
from bench.harness import (
    BenchError,
    BenchOptions,
    Report,
    Server,
    WrkRequest,
    WrkResult,
    best_of,
    lua_cycle,
)
from bench.harness import drive as harness_drive

RATE = 200.0  # scans per second for the latency figure
P99_GOAL_MS = 50.0
RESIDENTS = 100
# Above scans/s x (warm-up + duration) here; far larger Lua tables make wrk fall back to GET.
WRK_REQUESTS = 4000  # more than a 10 s run sends; each visit a fresh code
THROUGHPUT_GOAL = 0.05  # scans/s over healthz/s: a scan is a few DB writes, healthz none


def _ok(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code not in (200, 201):
        raise BenchError(f"{what} failed: {response.status_code} {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def _client_token(http: httpx.Client, creds: dict[str, str]) -> str:
    """A client-credentials token (remembered with its credentials for `renewed`)."""
    body = _ok(
        http.post(
            "/v1/auth/token",
            json={
                "grant_type": "client_credentials",
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
            },
        ),
        "client token",
    )
    _gate_credentials[str(body["access_token"])] = creds
    return str(body["access_token"])


def _resident(http: httpx.Client, n: int) -> dict[str, str]:
    phone = f"1380013{n:04d}"
    otp = _ok(http.post("/v1/auth/otp", json={"phone": phone}), "OTP")
    login = _ok(
        http.post("/v1/auth/login", json={"phone": phone, "otp": otp["debug_code"]}), "login"
    )
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    first17 = f"310101{1960 + n % 40}0{1 + n % 9}1{n % 10}{n % 1000:03d}"
    _ok(
        http.put(
            "/v1/residents/me/identity",
            json={"name": "王小明", "id_number": first17 + check_digit(first17)},
            headers=headers,
        ),
        "identity",
    )
    refreshed = _ok(
        http.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}), "refresh"
    )
    _refresh_tokens[refreshed["access_token"]] = refreshed["refresh_token"]
    return {"Authorization": f"Bearer {refreshed['access_token']}"}


# Access token -> its refresh token, and gate token -> the gate's credentials, for runs
# longer than an access token lives (15 min): `renewed` trades them for fresh ones.
_refresh_tokens: dict[str, str] = {}
_gate_credentials: dict[str, dict[str, str]] = {}


def renewed(http: httpx.Client, headers: dict[str, str]) -> dict[str, str]:
    """The same caller with a fresh access token (a resident's refresh, a client's grant)."""
    token = headers["Authorization"].removeprefix("Bearer ")
    if token in _gate_credentials:
        creds = _gate_credentials[token]
        fresh = _client_token(http, creds)
        _gate_credentials[fresh] = creds
        return {**headers, "Authorization": f"Bearer {fresh}"}
    body = _ok(
        http.post("/v1/auth/refresh", json={"refresh_token": _refresh_tokens[token]}), "refresh"
    )
    _refresh_tokens[body["access_token"]] = body["refresh_token"]
    return {**headers, "Authorization": f"Bearer {body['access_token']}"}


def _setup(http: httpx.Client, server: Server) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A large venue (default policy: green only, anti-passback), its operator, one gate
    for both directions, and residents with identity."""
    admin = {"Authorization": f"Bearer {_client_token(http, server.demo_credentials()['admin'])}"}
    venue = _ok(
        http.post(
            "/v1/venues",
            json={"name": "bench hall", "kind": "sports", "capacity": 1_000_000},
            headers=admin,
        ),
        "venue",
    )  # fmt: skip
    operator = _ok(
        http.post("/v1/admin/clients", json={"kind": "operator", "tenant_id": venue["id"]},
                  headers=admin),
        "operator",
    )  # fmt: skip
    op_headers = {"Authorization": f"Bearer {_client_token(http, operator)}"}
    gate = _ok(
        http.post(f"/v1/venues/{venue['id']}/gates", json={"name": "bench", "direction": "both"},
                  headers=op_headers),
        "gate",
    )  # fmt: skip
    gate_headers = {
        "Authorization": f"Bearer {_client_token(http, gate)}",
        "Content-Type": "application/json",
    }
    residents = [_resident(http, n) for n in range(RESIDENTS)]
    return gate_headers, residents


def _fresh_codes(http: httpx.Client, residents: list[dict[str, str]]) -> list[str]:
    # Codes live 60 s, so each measurement uses codes issued just before it.
    return [_ok(http.get("/v1/codes/me", headers=r), "issue")["code"] for r in residents]


def _code_cycles(http: httpx.Client, residents: list[dict[str, str]], n: int) -> list[list[str]]:
    """Fresh codes for every visit in `n` scans: a code admits once (issue 9), so a person
    coming back shows a new code, as their phone does every 30 s."""
    visits = -(-n // (2 * len(residents)))
    return [_fresh_codes(http, residents) for _ in range(visits)]


def _scans(cycles: list[list[str]], n: int) -> list[tuple[str, str]]:
    """(code, direction): every resident in, then every resident out, and again with the
    next visit's codes: entries claim a place, exits give it back (a few arrive out of
    order under concurrency and are denied `already_inside`, a full decision too)."""
    out: list[tuple[str, str]] = []
    for codes in cycles:
        out += [(c, "in") for c in codes] + [(c, "out") for c in codes]
    return out[:n]


async def _fixed_rate(
    base_url: str, headers: dict[str, str], codes: list[list[str]], duration_s: float
) -> tuple[list[float], int]:
    """Send scans at RATE per second (open loop: the schedule does not wait for answers)."""
    latencies: list[float] = []
    failures = 0
    total = int(duration_s * RATE)
    plan = iter(_scans(codes, total))
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=10
    ) as c:

        async def one(code: str, direction: str) -> None:
            nonlocal failures
            body = {"scan_id": f"bench-{uuid.uuid4().hex}", "code": code, "direction": direction}
            started = time.perf_counter()
            try:
                response = await c.post("/v1/gates/scan", json=body)
                admitted = response.status_code == 200
            except httpx.HTTPError:
                admitted = False  # counted, and its time too: an overloaded server shows
            latencies.append((time.perf_counter() - started) * 1000)
            if not admitted:
                failures += 1

        tasks = []
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(*next(plan))))
        await asyncio.gather(*tasks)
    return latencies, failures


def _pinned(
    base_url: str, headers: dict[str, str], codes: list[list[str]], duration_s: float
) -> tuple[list[float], int]:
    # The driver runs on wrk's core, so it does not take the server's core from it.
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1} if (os.cpu_count() or 1) > 1 else before)
    try:
        return asyncio.run(_fixed_rate(base_url, headers, codes, duration_s))
    finally:
        os.sched_setaffinity(0, before)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(opts: BenchOptions) -> Report:
    with (
        Server.suishen(opts, seed_demo=True) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):
        gate, residents = _setup(http, server)
        probe = _ok(
            http.post("/v1/gates/scan", headers=gate, json={
                "scan_id": "probe", "code": _fresh_codes(http, residents[:1])[0], "direction": "in",
            }),
            "scan",
        )  # fmt: skip
        if probe["decision"] != "admit":
            raise BenchError(f"the probe scan was not admitted: {probe}")
        _ok(http.post("/v1/gates/scan", headers=gate, json={
            "scan_id": "probe-out", "code": _fresh_codes(http, residents[:1])[0],
            "direction": "out"}), "exit")  # fmt: skip
        best: tuple[list[float], int] | None = None
        for _ in range(opts.rounds):
            codes = _code_cycles(http, residents, int(opts.duration_s * RATE))
            measured = _pinned(server.base_url, gate, codes, opts.duration_s)
            if best is None or _p(measured[0], 0.99) < _p(best[0], 0.99):
                best = measured
        assert best is not None
        latencies, failures = best

        def drive(path: str, **request: Any) -> WrkResult:
            return harness_drive(server, opts, path, **request)

        def health() -> WrkResult:
            return drive("/healthz")

        def scans() -> WrkResult:
            codes = _code_cycles(http, residents, WRK_REQUESTS)
            requests = [
                WrkRequest("/v1/gates/scan", "POST", gate, json.dumps(
                    {"scan_id": f"wrk-{uuid.uuid4().hex}", "code": code, "direction": direction}))
                for code, direction in _scans(codes, WRK_REQUESTS)
            ]  # fmt: skip
            return drive("/v1/gates/scan", lua_script=lua_cycle(requests))

        rows = best_of({"healthz": health, "gates/scan": scans}, opts.rounds)
    p50, p99 = _p(latencies, 0.5), _p(latencies, 0.99)
    verdict = "met" if p99 < P99_GOAL_MS and not failures else "MISSED"
    scan_row = next(r for r in rows if r.label == "gates/scan")
    return Report(
        title=f"venues: POST /v1/gates/scan ({opts.backend_name})",
        rows=rows,
        baseline="healthz",
        measured="gates/scan",
        goal_ratio=THROUGHPUT_GOAL,
        notes=[
            f"fixed rate {RATE:.0f} scans/s for {opts.duration_s:.0f} s ({len(latencies)} scans, "
            f"best of {opts.rounds}): p50 {p50:.2f} ms, p99 {p99:.2f} ms "
            f"(goal p99 < {P99_GOAL_MS:.0f} ms: {verdict}); {failures} failed",
            f"throughput under wrk ({opts.connections} connections): "
            f"{scan_row.result.rps:.0f} scans/s, p99 {scan_row.result.p99_ms:.2f} ms",
        ],
    )
