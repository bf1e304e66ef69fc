"""`GET /v1/residents/me` with a valid resident token vs `GET /healthz` on the same server:
what verifying an ES256 token, the revocation check and the profile reads cost."""

from __future__ import annotations

import httpx

from bench.harness import BenchError, BenchOptions, Report, Server, WrkResult, best_of
from bench.harness import drive as harness_drive

PHONE = "13800000001"
NAME = "张三明"
# 310101 region, born 1990-05-17, sequence 001, check digit from ISO 7064 MOD 11-2.
ID_NUMBER = "310101199005170013"


def _resident_token(server: Server) -> str:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        otp = http.post("/v1/auth/otp", json={"phone": PHONE})
        if otp.status_code != 200 or not otp.json().get("debug_code"):
            raise BenchError(f"OTP request failed: {otp.status_code} {otp.text}")
        login = http.post("/v1/auth/login", json={"phone": PHONE, "otp": otp.json()["debug_code"]})
        if login.status_code != 200:
            raise BenchError(f"login failed: {login.status_code} {login.text}")
        token: str = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        bound = http.put(
            "/v1/residents/me/identity", json={"name": NAME, "id_number": ID_NUMBER},
            headers=headers,
        )  # fmt: skip
        if bound.status_code != 200:
            raise BenchError(f"identity binding failed: {bound.status_code} {bound.text}")
        # The app refreshes after binding, so its token carries the subject id.
        refreshed = http.post(
            "/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
        )
        if refreshed.status_code != 200:
            raise BenchError(f"refresh failed: {refreshed.status_code} {refreshed.text}")
        fresh: str = refreshed.json()["access_token"]
        return fresh


def run(opts: BenchOptions) -> Report:
    with Server.suishen(opts) as server:
        token = _resident_token(server)

        def drive(path: str, headers: dict[str, str] | None = None) -> WrkResult:
            return harness_drive(server, opts, path, headers=headers)

        def health() -> WrkResult:
            return drive("/healthz")

        def me() -> WrkResult:
            return drive("/v1/residents/me", {"Authorization": f"Bearer {token}"})

        rows = best_of({"healthz": health, "residents/me": me}, opts.rounds)
    return Report(
        title="auth: GET /v1/residents/me (valid resident token) vs GET /healthz",
        rows=rows,
        baseline="healthz",
        measured="residents/me",
        notes=[
            "residents/me: ES256 verify (memoised per token), the login family's revocation "
            "mark from the process's cache (a key-value read every 5 s while pub/sub is "
            "live), one database read (account joined with its subject), one AES-GCM "
            "decrypt (the masked phone)",
            "cpu us (server CPU per request) is the steadier figure on a shared machine",
        ],
    )
