"""Treat-first-pay-later throughput: encounters opened, charged (5 items) and settled per
second by 32 concurrent hospital clients, with the ledger's invariants checked afterwards.

Each encounter is a stateful flow (the patient's fresh code, open, charge, close with the
encounter id from the first answer), so the driver is 32 threads with a blocking httpx
client each rather than wrk (httpx's async pool is several times slower under this
concurrency). Its own ceiling is measured in the same run (the same clients on /healthz)
as the baseline.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from bench.harness import BenchError, BenchOptions, Report, Row, Server, WrkResult

HOSPITALS = 32
PATIENTS_PER_HOSPITAL = 4
ITEMS = [
    ("A", 1_200, 2),
    ("A", 3_500, 1),
    ("B", 8_800, 1),
    ("B", 450, 6),
    ("C", 2_000, 1),
]
SERVER_ENV = {
    # Setup logs in 128 patients from one address: lift the per-IP OTP limit for it.
    "SUISHEN_RATE_LIMIT_EXEMPT_IPS": "127.0.0.1",
    "SUISHEN_OTP_PER_IP_HOUR": "100000",
    "EMBEDDED_WORKER": "1",
}


@dataclass
class Tally:
    latencies_ms: list[float]
    failures: int = 0
    first_failure: str = ""


def _id_number(n: int) -> str:
    from auth.identity import check_digit

    first17 = f"310101{date(1980, 1, 1).replace(year=1980 + n % 30):%Y%m%d}{n % 1000:03d}"
    return first17 + check_digit(first17)


def _hospital(http: httpx.Client, admin: dict[str, str], n: int) -> dict[str, str]:
    token = _client_token(http, admin)
    created = http.post(
        "/v1/hospitals", json={"name": f"bench hospital {n}"}, headers=_bearer(token)
    )
    if created.status_code != 201:
        raise BenchError(f"creating a hospital failed: {created.text}")
    body = created.json()
    return {"id": body["id"], "token": _client_token(http, body["client"])}


def _client_token(http: httpx.Client, creds: dict[str, str]) -> str:
    response = http.post(
        "/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        },
    )
    if response.status_code != 200:
        raise BenchError(f"client token failed: {response.text}")
    token: str = response.json()["access_token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _patient(http: httpx.Client, n: int) -> str:
    phone = f"+8613{n:09d}"
    otp = http.post("/v1/auth/otp", json={"phone": phone}).json()
    login = http.post("/v1/auth/login", json={"phone": phone, "otp": otp["debug_code"]})
    if login.status_code != 200:
        raise BenchError(f"login failed: {login.text}")
    token: str = login.json()["access_token"]
    steps = [
        ("PUT", "/v1/residents/me/identity", {"name": "张三明", "id_number": _id_number(n)}),
        ("POST", "/v1/credit/enroll", {"payment_method": "pm_sandbox_ok"}),
    ]
    for method, path, body in steps:
        response = http.request(method, path, json=body, headers=_bearer(token))
        if response.status_code not in (200, 201):
            raise BenchError(f"{method} {path} failed: {response.text}")
    return token


def _encounter(
    http: httpx.Client, hospital: dict[str, str], patient_token: str, tally: Tally
) -> None:
    started = time.perf_counter()
    headers = _bearer(hospital["token"])
    code = (http.get("/v1/codes/me", headers=_bearer(patient_token))).json()["code"]
    opened = http.post(
        "/v1/encounters",
        json={"code": code, "department": "内科"},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    answers = [opened]
    if opened.status_code == 201:
        encounter_id = opened.json()["id"]
        items = [
            {
                "item_code": f"I{n}",
                "name": f"项目{n}",
                "category": "drug",
                "quantity": quantity,
                "unit_price_fen": price,
                "insurance_class": klass,
            }
            for n, (klass, price, quantity) in enumerate(ITEMS)
        ]
        answers.append(
            http.post(
                f"/v1/encounters/{encounter_id}/charges",
                json={"charge_id": "c1", "items": items},
                headers=headers,
            )
        )
        answers.append(
            http.post(
                f"/v1/encounters/{encounter_id}/close",
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
        )
    bad = [a for a in answers if a.status_code >= 300]
    settled = len(answers) == 3 and answers[2].json().get("status") == "settled"
    if bad or not settled:
        tally.failures += 1
        tally.first_failure = tally.first_failure or (bad[0].text if bad else answers[-1].text)
        return
    tally.latencies_ms.append((time.perf_counter() - started) * 1000)


def _drive(base_url: str, duration_s: float, step: Any, workers: int) -> tuple[Tally, float]:
    """Run `step(http, worker, turn, tally)` in a loop on `workers` threads for the duration."""
    tally = Tally([])
    lock = threading.Lock()
    deadline = time.perf_counter() + duration_s

    def worker(n: int) -> None:
        local = Tally([])
        with httpx.Client(base_url=base_url, timeout=30) as http:
            turn = 0
            while time.perf_counter() < deadline:
                step(http, n, turn, local)
                turn += 1
        with lock:
            tally.latencies_ms += local.latencies_ms
            tally.failures += local.failures
            tally.first_failure = tally.first_failure or local.first_failure

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(worker, range(workers)))
    return tally, time.perf_counter() - started


def _result(tally: Tally, elapsed_s: float, cpu_s: float) -> WrkResult:
    done = len(tally.latencies_ms)
    ordered = sorted(tally.latencies_ms) or [0.0]
    return WrkResult(
        rps=done / elapsed_s,
        p50_ms=statistics.median(ordered),
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        requests=done,
        non_2xx=tally.failures,
        errors=0,
        duration_s=elapsed_s,
        cpu_us=cpu_s / done * 1e6 if done else None,
    )


# Every transfer balances, all accounts sum to zero, no key twice, one settlement per
# bill (in our ledger and at the sandbox insurance bureau), and the processor's books
# agree with the collections.
INVARIANTS = {
    "unbalanced transfers": (
        "SELECT COUNT(*) FROM (SELECT transfer_id FROM payments_ledger_entries "
        "GROUP BY transfer_id HAVING SUM(amount_fen) <> 0) AS t"
    ),
    "sum over all accounts": "SELECT COALESCE(SUM(amount_fen), 0) FROM payments_ledger_entries",
    "keys posted twice": (
        "SELECT COUNT(*) FROM (SELECT key FROM payments_ledger_transfers "
        "GROUP BY key HAVING COUNT(*) > 1) AS t"
    ),
    "bills without one settlement transfer": (
        "SELECT COUNT(*) FROM payments_bills b WHERE (SELECT COUNT(*) FROM "
        "payments_ledger_transfers t WHERE t.key = 'settlement:' || b.encounter_id) <> 1"
    ),
    "collections the processor does not match": (
        "SELECT COUNT(*) FROM payments_collections c LEFT JOIN payments_sandbox_operations o "
        "ON o.key = c.id WHERE c.status = 'succeeded' AND (o.key IS NULL "
        "OR o.amount_fen <> c.amount_fen)"
    ),
    "bills without exactly one settlement at the bureau": (
        "SELECT COUNT(*) FROM payments_bills b WHERE (SELECT COUNT(*) FROM "
        "payments_bureau_sandbox_operations o WHERE o.key = 'bst_' || b.encounter_id "
        "AND o.kind = 'settle') <> 1"
    ),
    "resident balances not zero after paying": (
        "SELECT COUNT(*) FROM (SELECT account FROM payments_ledger_entries "
        "WHERE account LIKE 'resident:%' GROUP BY account HAVING SUM(amount_fen) <> 0) AS t"
    ),
}


async def _check_ledger(opts: BenchOptions, server: Server) -> dict[str, int]:
    if opts.real:
        import asyncpg

        url = opts.database_url.replace("postgres://", "postgresql://", 1)
        conn = await asyncpg.connect(url)
        try:
            return {name: int(await conn.fetchval(sql)) for name, sql in INVARIANTS.items()}
        finally:
            await conn.close()
    with sqlite3.connect(server.var_dir / "suishen.db") as db:
        return {name: int(db.execute(sql).fetchone()[0]) for name, sql in INVARIANTS.items()}


def _measure(opts: BenchOptions, server: Server) -> tuple[WrkResult, WrkResult, list[str]]:
    admin = server.demo_credentials().get("admin")
    if admin is None:
        raise BenchError("the demo seed wrote no admin client")
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        hospitals = [_hospital(http, admin, n) for n in range(HOSPITALS)]
        patients = [
            [_patient(http, h * PATIENTS_PER_HOSPITAL + p) for p in range(PATIENTS_PER_HOSPITAL)]
            for h in range(HOSPITALS)
        ]

    def flow(http: httpx.Client, n: int, turn: int, tally: Tally) -> None:
        # A patient always visits the same hospital: re-presenting a code to the verifier
        # that consumed it is allowed, showing it to another hospital would be a replay.
        _encounter(http, hospitals[n], patients[n][turn % PATIENTS_PER_HOSPITAL], tally)

    def health(http: httpx.Client, n: int, turn: int, tally: Tally) -> None:
        started = time.perf_counter()
        response = http.get("/healthz")
        if response.status_code == 200:
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        else:
            tally.failures += 1

    _drive(server.base_url, opts.warmup_s, flow, HOSPITALS)
    cpu_before = server.cpu_seconds()
    tally, elapsed = _drive(server.base_url, opts.duration_s, flow, HOSPITALS)
    encounters = _result(tally, elapsed, server.cpu_seconds() - cpu_before)
    cpu_before = server.cpu_seconds()
    ceiling_tally, ceiling_elapsed = _drive(server.base_url, opts.duration_s, health, HOSPITALS)
    ceiling = _result(ceiling_tally, ceiling_elapsed, server.cpu_seconds() - cpu_before)
    # Let in-flight webhooks and jobs settle before the books are read.
    time.sleep(1.0)
    violations = asyncio.run(_check_ledger(opts, server))
    broken = [f"{name}: {count}" for name, count in violations.items() if count]
    if broken:
        raise BenchError("ledger invariants broken after the run: " + "; ".join(broken))
    notes = [
        f"{encounters.rps:.1f} encounters/s = {4 * encounters.rps:.0f} HTTP requests/s "
        "(code, open, charge with 5 items, close + collect)",
        f"ledger invariants after {encounters.requests} settled encounters: all hold "
        f"({', '.join(INVARIANTS)})",
    ]
    if tally.failures:
        notes.append(f"{tally.failures} failed flows; first: {tally.first_failure[:200]}")
    return ceiling, encounters, notes


def run(opts: BenchOptions) -> Report:
    with Server.suishen(opts, seed_demo=True, env=SERVER_ENV) as server:
        ceiling, encounters, notes = _measure(opts, server)
    if encounters.requests == 0:
        raise BenchError(f"no encounter settled; {notes[-1]}")
    return Report(
        title=(
            f"payments: encounters opened, charged, settled per second, "
            f"{HOSPITALS} hospital clients, {opts.backend_name}"
        ),
        rows=[Row("driver ceiling (/healthz)", ceiling), Row("encounters", encounters)],
        baseline="driver ceiling (/healthz)",
        measured="encounters",
        notes=notes,
    )
