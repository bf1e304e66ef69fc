"""Codes: signing and verifying in process (codes/codec.py, codes/verifier.py) beside raw
`cryptography` ECDSA P-256 on the same bytes; then over HTTP on the real server,
`GET /v1/codes/me` and `POST /v1/codes/verify` beside `GET /healthz`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

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
from codes import codec, verifier
from codes.states import Status

PHONE = "13800000002"
NAME = "李四光"
# 310101 region, born 1985-03-02, sequence 002, ISO 7064 MOD 11-2 check digit.
ID_NUMBER = "310101198503020021"
CODES_PER_ROUND = 400
VERIFIER_GOAL = 0.8
HTTP_GOAL = 0.5

# -- in process ------------------------------------------------------------------------------


def _per_second(op: Callable[[], object], n: int) -> float:
    # Per second of this process's CPU time: other processes taking the core (test suites
    # on a shared machine) then do not skew one operation against another.
    started = time.process_time()
    for _ in range(n):
        op()
    return n / (time.process_time() - started)


def in_process(rounds: int = 15, n: int = 1000) -> dict[str, float]:
    """Best-of-`rounds` operations per second, interleaved like the HTTP rounds."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    ecdsa = ec.ECDSA(hashes.SHA256())
    now = datetime.now(UTC)
    payload = codec.Payload(
        codec.TYPE_IDENTITY,
        codec.key_id_of(public),
        int(now.timestamp()),
        60,
        Status.GREEN,
        os.urandom(16),
    )
    data = codec.encode_payload(payload)
    der = key.sign(data, ecdsa)
    code = codec.sign(payload, key)
    keys = verifier.key_set([verifier.TrustedKey("bench", public)])
    if not verifier.verify(code, keys, (), now).valid:
        raise BenchError("the benchmark code does not verify")
    ops: dict[str, Callable[[], object]] = {
        "raw sign": lambda: key.sign(data, ecdsa),
        "codec.sign": lambda: codec.sign(payload, key),
        "raw verify": lambda: public.verify(der, data, ecdsa),
        "verifier.verify": lambda: verifier.verify(code, keys, (), now),
    }
    best = dict.fromkeys(ops, 0.0)
    for _ in range(rounds):
        for label, op in ops.items():
            best[label] = max(best[label], _per_second(op, n))
    return best


# -- over HTTP ------------------------------------------------------------------------------


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code != 200:
        raise BenchError(f"{what} failed: {response.status_code} {response.text[:300]}")
    return response


def _resident_token(http: httpx.Client) -> str:
    otp = _check(http.post("/v1/auth/otp", json={"phone": PHONE}), "OTP request")
    login = _check(
        http.post("/v1/auth/login", json={"phone": PHONE, "otp": otp.json()["debug_code"]}),
        "login",
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    _check(
        http.put(
            "/v1/residents/me/identity",
            json={"name": NAME, "id_number": ID_NUMBER},
            headers=headers,
        ),
        "identity binding",
    )
    # The app refreshes after binding, so its token carries the subject id.
    refreshed = _check(
        http.post("/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}),
        "refresh",
    )
    token: str = refreshed.json()["access_token"]
    return token


def _verifier_token(http: httpx.Client, server: Server) -> str:
    creds = server.demo_credentials()["authority"]  # holds codes:verify
    response = _check(
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
    token: str = response.json()["access_token"]
    return token


def run(opts: BenchOptions) -> Report:
    figures = in_process()
    with (
        Server.suishen(opts, seed_demo=True) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):
        resident = {"Authorization": f"Bearer {_resident_token(http)}"}
        gate = {
            "Authorization": f"Bearer {_verifier_token(http, server)}",
            "Content-Type": "application/json",
        }

        def fresh_codes() -> list[str]:
            # Codes live 60 s: each round verifies codes issued just before it. The
            # bench gate re-presents each a few times (a turnstile re-scan), which
            # runs the same checks as the first presentation.
            return [
                _check(http.get("/v1/codes/me", headers=resident), "issue").json()["code"]
                for _ in range(CODES_PER_ROUND)
            ]

        def drive(path: str, **request: Any) -> WrkResult:
            return harness_drive(server, opts, path, **request)

        def health() -> WrkResult:
            return drive("/healthz")

        def issue() -> WrkResult:
            return drive("/v1/codes/me", headers=resident)

        def verify() -> WrkResult:
            requests = [
                WrkRequest("/v1/codes/verify", "POST", gate, json.dumps({"code": c}))
                for c in fresh_codes()
            ]
            return drive("/v1/codes/verify", lua_script=lua_cycle(requests))

        probe = _check(
            http.post("/v1/codes/verify", json={"code": fresh_codes()[0]}, headers=gate),
            "verify",
        ).json()
        if not probe["valid"]:
            raise BenchError(f"a fresh code did not verify: {probe}")
        rows = best_of({"healthz": health, "codes/me": issue, "codes/verify": verify}, opts.rounds)
    http_rows = {row.label: row.result for row in rows}
    base = http_rows["healthz"].rps
    sign_ratio = figures["codec.sign"] / figures["raw sign"]
    verify_ratio = figures["verifier.verify"] / figures["raw verify"]
    verdict = "met" if verify_ratio >= VERIFIER_GOAL else "MISSED"
    me_ratio = http_rows["codes/me"].rps / base
    return Report(
        title="codes: GET /v1/codes/me and POST /v1/codes/verify vs GET /healthz",
        rows=rows,
        baseline="healthz",
        measured="codes/verify",
        goal_ratio=HTTP_GOAL,
        notes=[
            f"in process, signed/s: codec.sign {figures['codec.sign']:.0f}, raw cryptography "
            f"sign {figures['raw sign']:.0f} (ratio {sign_ratio:.3f})",
            f"in process, verified/s: verifier.verify {figures['verifier.verify']:.0f}, raw "
            f"cryptography verify {figures['raw verify']:.0f} (ratio {verify_ratio:.3f}; "
            f"goal >= {VERIFIER_GOAL}: {verdict})",
            f"ratio codes/me / healthz = {me_ratio:.3f} (goal >= {HTTP_GOAL}: "
            f"{'met' if me_ratio >= HTTP_GOAL else 'MISSED'}); p99 "
            f"{http_rows['codes/me'].p99_ms:.2f} ms",
            f"codes/verify p99 {http_rows['codes/verify'].p99_ms:.2f} ms; "
            f"{CODES_PER_ROUND} fresh codes per round, each presented by the same verifier "
            "several times",
        ],
    )


if __name__ == "__main__":
    # The in-process part alone: `python -m bench.bench_codes`.
    for label, value in in_process().items():
        print(f"{label:>16}: {value:>9.0f}/s")
