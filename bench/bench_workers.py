"""More than one core (issue 11, part 5): `POST /v1/gates/scan` throughput of
`suishen serve --workers 2` on both cores against `--workers 1` on core 0, in the same
run, wrk pinned to core 1 as always. Goal: at least 1.6x. PostgreSQL + Redis.

PostgreSQL, Redis and wrk share the two cores, so each round also counts their CPU per
scan (/proc) and the machine's idle time. One worker can do at most 1 core / its server
CPU per scan (core 0); two can do at most 2 cores / (server + PostgreSQL + Redis + wrk
CPU per scan); the second over the first is the ratio this machine allows, about
2 x server / (server + the rest), so 1.6x needs the rest at a quarter of the server's."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from contextlib import ExitStack
from urllib.parse import urlsplit

from bench.bench_limits import measure_scans, set_up
from bench.harness import (
    BenchOptions,
    NeedsReal,
    Report,
    Row,
    Server,
    WrkResult,
    cpu_seconds_of,
    machine_cpu_seconds,
    pids_named,
    reaped_children_cpu_seconds,
    rounds_of,
)

GOAL = 1.6
CORES = 2
# Below this share of idle time over a wrk run, the machine's cores count as saturated.
SATURATED_IDLE = 0.05
PARTS = ("server", "postgres", "redis", "wrk")


def postgres_pids(database: str) -> list[int]:
    """PostgreSQL's background processes (postmaster, writers, autovacuum) and the
    backends of `database`; not those of other databases (test suites sharing the
    server), whose titles name their database and client address."""
    return [
        pid
        for pid, title in pids_named("postgres").items()
        if f" {database} " in title or not ("(" in title or "[local]" in title)
    ]


def redis_pids(port: int) -> list[int]:
    """The redis-server listening on `port` (not the other nodes on the machine)."""
    return [pid for pid, title in pids_named("redis-server").items() if f":{port}" in title]


def probes(server: Server, opts: BenchOptions) -> dict[str, Callable[[], float]]:
    """CPU seconds of everything a scan runs on besides the server, and the machine's."""
    database = urlsplit(server.env["DATABASE_URL"]).path.lstrip("/")
    redis_port = urlsplit(opts.redis_url).port or 6379
    machine = {
        key: functools.partial(lambda k: machine_cpu_seconds()[k], key)
        for key in ("busy", "idle", "steal")
    }
    return {
        # Without reaped children: the postmaster's would hold every backend of every
        # database that disconnected during the run.
        "postgres": lambda: cpu_seconds_of(postgres_pids(database), reaped=False),
        "redis": lambda: cpu_seconds_of(redis_pids(redis_port)),
        # wrk is this process's only child to exit during the measured run.
        "wrk": reaped_children_cpu_seconds,
        **machine,
    }


def per_scan_us(r: WrkResult) -> dict[str, float]:
    """CPU µs per scan of each part, their `total`, and the whole machine's `busy`."""
    us = {name: r.probed.get(name, 0.0) / r.requests * 1e6 for name in ("postgres", "redis", "wrk")}
    parts = {"server": r.cpu_us or 0.0, **us}
    return {**parts, "total": sum(parts.values()), "busy": r.probed["busy"] / r.requests * 1e6}


def shares(r: WrkResult) -> dict[str, float]:
    """Idle and steal shares of the machine over the run, and cores the server used."""
    elapsed = r.probed["busy"] + r.probed["idle"] + r.probed["steal"]  # core-seconds
    server_s = (r.cpu_us or 0.0) * r.requests / 1e6
    return {
        "idle": r.probed["idle"] / elapsed,
        "steal": r.probed["steal"] / elapsed,
        "server cores": server_s / (elapsed / (os.cpu_count() or CORES)),
    }


def breakdown(label: str, r: WrkResult) -> str:
    cost, share = per_scan_us(r), shares(r)
    parts = " / ".join(f"{cost[p]:,.0f}" for p in PARTS)
    return (
        f"{label}: {parts} = {cost['total']:,.0f}; machine busy {cost['busy']:,.0f} "
        f"({cost['busy'] - cost['total']:,.0f} unattributed: kernel, other processes); "
        f"idle {share['idle']:.0%}, steal {share['steal']:.0%}; "
        f"server used {share['server cores']:.2f} cores"
    )


def verdict(one: WrkResult, two: WrkResult) -> list[str]:
    """The scans/s each configuration's CPU per scan allows, and whether GOAL is in reach."""
    c1, c2 = per_scan_us(one), per_scan_us(two)
    allowed1 = min(1e6 / c1["server"], CORES * 1e6 / c1["total"])
    allowed2 = CORES * 1e6 / c2["total"]
    ceiling, ratio = allowed2 / allowed1, two.rps / one.rps
    idle = shares(two)["idle"]
    rest = c2["total"] - c2["server"]
    lines = [
        f"1 worker <= min(1 core / server {c1['server']:,.0f} us, {CORES} cores / total "
        f"{c1['total']:,.0f} us) = {allowed1:,.0f} scans/s (measured {one.rps:,.0f})",
        f"2 workers <= {CORES} cores / total {c2['total']:,.0f} us = {allowed2:,.0f} scans/s "
        f"(measured {two.rps:,.0f}; machine {idle:.0%} idle: "
        + ("both cores saturated" if idle < SATURATED_IDLE else "NOT saturated")
        + f", {1 - c2['total'] / c2['busy']:.0%} of the busy time outside these four)",
        f"ceiling ratio {allowed2:,.0f} / {allowed1:,.0f} = {ceiling:.2f} (over the measured "
        f"1 worker's {one.rps:,.0f}: {allowed2 / one.rps:.2f}; had a scan cost 2 workers what "
        f"it cost 1: {CORES * 1e6 / c1['total'] / allowed1:.2f}); measured {ratio:.2f}",
    ]
    if ratio > ceiling * 1.05:
        lines.append(
            f"measured above the ceiling: 1 worker ran at {one.rps:,.0f} of the "
            f"{allowed1:,.0f} scans/s core 0 allows (server on {shares(one)['server cores']:.2f} "
            f"cores, {1 - c1['total'] / c1['busy']:.0%} of the busy time outside the four): "
            "other load held it down; rerun on a quiet machine"
        )
    if ceiling < GOAL:
        lines.append(
            f"{GOAL}x is NOT reachable on this machine: a scan costs the two cores "
            f"{c2['total']:,.0f} us, {rest:,.0f} of it ({rest / c2['total']:.0%}) in "
            "PostgreSQL, Redis and wrk, which run on the cores the second worker needs; "
            f"{GOAL}x needs them at or below a quarter of the server's CPU per scan, or "
            "cores of their own"
        )
    elif ratio < GOAL:
        lines.append(f"{GOAL}x is within this machine's ceiling but was not reached")
    else:
        lines.append(f"{GOAL}x reached")
    return lines


def run(opts: BenchOptions) -> Report:
    if not opts.real:
        raise NeedsReal("workers")
    with ExitStack() as stack:
        one = Server.suishen(opts, seed_demo=True, workers=1, instance="w1")
        two = Server.suishen(opts, seed_demo=True, workers=2, instance="w2")
        two.cpus = "0,1"  # both cores; wrk shares core 1 with the second worker
        for server in (one, two):
            server.probes = probes(server, opts)
            stack.enter_context(server)
        targets = {"1 worker": set_up(one), "2 workers": set_up(two)}
        # First guesses of scans/s (enough fresh codes for a round), then the best seen.
        seen: dict[str, float] = {"1 worker": 700.0, "2 workers": 1100.0}

        def measure(label: str) -> WrkResult:
            t = targets[label]
            result = measure_scans(opts, t.server, "/v1/gates/scan", t.fresh().gate, t, seen[label])
            seen[label] = max(seen[label], result.rps)
            return result

        results = rounds_of(
            {label: functools.partial(measure, label) for label in targets}, opts.rounds
        )
    best = {label: max(rs, key=lambda r: r.rps) for label, rs in results.items()}
    rounds = [
        breakdown(f"  {label} round {i + 1}", r)
        for label, rs in results.items()
        for i, r in enumerate(rs)
    ]
    return Report(
        title=f"workers: POST /v1/gates/scan, 2 workers on 2 cores vs 1 on 1 ({opts.server})",
        rows=[Row(label, r) for label, r in best.items()],
        baseline="1 worker",
        measured="2 workers",
        goal_ratio=GOAL,
        notes=[
            "CPU us per scan, server / postgres / redis / wrk = total (every round):",
            *rounds,
            "ceiling (best round of each, by scans/s):",
            *verdict(best["1 worker"], best["2 workers"]),
            *(note for t in targets.values() for note in t.notes),
        ],
    )
