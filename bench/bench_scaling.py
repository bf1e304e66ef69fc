"""How cost grows (issue 11, part 3): server CPU µs per request of `POST /v1/gates/scan`
at 1, 8, 32 and 128 connections, and of closing an encounter of 1, 10 and 100 charge
lines; public API only, PostgreSQL + Redis. The number of rows stored is
`bench_bigdb.py`, more than one core `bench_workers.py`."""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.bench_limits import Target, measure_scans, set_up
from bench.bench_payments import SERVER_ENV, _bearer, _hospital, _patient
from bench.harness import (
    BenchError,
    BenchOptions,
    NeedsReal,
    Report,
    Row,
    Server,
    WrkResult,
    median_cpu,
    rounds_of,
)

CONNECTIONS = (1, 8, 32, 128)
LINES = (1, 10, 100)
ENCOUNTERS = 40  # closed per measurement, one per patient
CLOSERS = 8  # concurrent hospital clients closing


def scan_rows(opts: BenchOptions, server: Server, target: Target) -> dict[str, WrkResult]:
    seen: dict[int, float] = {}  # scans/s so far, to issue enough fresh codes

    def at(connections: int) -> Callable[[], WrkResult]:
        o = dataclasses.replace(opts, connections=connections)

        def measure() -> WrkResult:
            rate = seen.get(connections, 250.0 * min(connections, 8))
            result = measure_scans(o, server, "/v1/gates/scan", target.fresh().gate, target, rate)
            seen[connections] = max(rate, result.rps)
            return result

        return measure

    runs = {f"gates/scan c={c}": at(c) for c in CONNECTIONS}
    # At 128 connections on one busy core a few Redis commands pass their 0.5 s timeout
    # (503): counted in `failed`, not fatal.
    results = rounds_of(runs, opts.rounds, tolerate=0.01)
    return {label: median_cpu(rs) for label, rs in results.items()}


class Clinic:
    """One hospital and its patients, to open, charge and close encounters."""

    def __init__(self, server: Server) -> None:
        self.server = server
        admin = server.demo_credentials()["admin"]
        with httpx.Client(base_url=server.base_url, timeout=60) as http:
            self.hospital = _hospital(http, admin, 0)
            self.patients = [_patient(http, 900 + n) for n in range(ENCOUNTERS)]

    def prepared(self, lines: int) -> list[str]:
        """ENCOUNTERS open encounters, each charged `lines` lines; their ids."""
        headers = _bearer(self.hospital["token"])
        items = [
            {"item_code": f"I{n}", "name": f"项目{n}", "category": "drug", "quantity": 1,
             "unit_price_fen": 100 + n, "insurance_class": "ABC"[n % 3]}
            for n in range(lines)
        ]  # fmt: skip
        ids = []
        with httpx.Client(base_url=self.server.base_url, timeout=60) as http:
            for patient in self.patients:
                code = http.get("/v1/codes/me", headers=_bearer(patient)).json()["code"]
                opened = http.post(
                    "/v1/encounters",
                    json={"code": code, "department": "内科"},
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                )
                if opened.status_code != 201:
                    raise BenchError(f"open failed: {opened.text[:300]}")
                encounter_id = opened.json()["id"]
                charged = http.post(
                    f"/v1/encounters/{encounter_id}/charges",
                    json={"charge_id": "c1", "items": items},
                    headers=headers,
                )
                if charged.status_code not in (200, 201):
                    raise BenchError(f"charge failed: {charged.text[:300]}")
                ids.append(encounter_id)
        return ids

    def close_all(self, lines: int) -> WrkResult:
        ids = self.prepared(lines)
        headers = _bearer(self.hospital["token"])
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()

        def close(encounter_id: str) -> None:
            with httpx.Client(base_url=self.server.base_url, timeout=60) as http:
                started = time.perf_counter()
                r = http.post(
                    f"/v1/encounters/{encounter_id}/close",
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                )
                with lock:
                    if r.status_code >= 300 or r.json().get("status") != "settled":
                        failures.append(r.text[:200])
                    latencies.append((time.perf_counter() - started) * 1000)

        cpu_before = self.server.cpu_seconds()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=CLOSERS) as pool:
            list(pool.map(close, ids))
        elapsed = time.perf_counter() - started
        cpu = self.server.cpu_seconds() - cpu_before
        ordered = sorted(latencies)
        return WrkResult(
            rps=len(ids) / elapsed,
            p50_ms=statistics.median(ordered),
            p99_ms=ordered[-1],
            requests=len(ids),
            non_2xx=len(failures),
            errors=0,
            duration_s=elapsed,
            # Includes opening connections (one per close); the same for every size.
            cpu_us=cpu / len(ids) * 1e6,
        )


def close_rows(opts: BenchOptions, clinic: Clinic) -> dict[str, WrkResult]:
    runs = {f"close {n} line(s)": (lambda n=n: clinic.close_all(n)) for n in LINES}
    results = rounds_of(runs, opts.rounds)
    return {label: median_cpu(rs) for label, rs in results.items()}


def run(opts: BenchOptions) -> Report:
    if not opts.real:
        raise NeedsReal("scaling")
    # A database and key prefix of its own, so it can run beside the limits benchmark.
    with Server.suishen(opts, seed_demo=True, env=SERVER_ENV, instance="scaling") as server:
        rows = scan_rows(opts, server, set_up(server))
        rows.update(close_rows(opts, Clinic(server)))
    scans = [rows[f"gates/scan c={c}"].cpu_us or 0.0 for c in CONNECTIONS]
    closes = [rows[f"close {n} line(s)"].cpu_us or 0.0 for n in LINES]
    return Report(
        title=f"scaling: CPU per request by connections and by lines ({opts.backend_name})",
        rows=[Row(label, r) for label, r in rows.items()],
        notes=[
            "gate scan CPU us/request at "
            + ", ".join(f"{c} conn: {v:.0f}" for c, v in zip(CONNECTIONS, scans, strict=True)),
            "close CPU us/request at "
            + ", ".join(f"{n} lines: {v:.0f}" for n, v in zip(LINES, closes, strict=True))
            + f" ({ENCOUNTERS} encounters closed by {CLOSERS} clients per round; "
            "wrk columns: closes/s, latency p50/max)",
            f"each row: the round with the median CPU/request of {opts.rounds}",
        ],
    )
