"""One Redis node against a three-master Redis Cluster: `GET /v1/codes/me`,
`POST /v1/codes/verify`, `POST /v1/gates/scan` (and `/healthz`) on two suishen servers
that differ only in their Redis, measured interleaved in one run as server CPU µs per
request and requests/s, and the cluster's own CPU per request (its masters' `INFO cpu`
over the app's request count in `/metrics`). PostgreSQL + Redis only (`--real`).

The cluster is `BENCH_REDIS_CLUSTER_URL` when set; otherwise `.ci/redis-cluster` starts
one on ports 7001-7003 (reusing one already up) and stops what it started."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace

import httpx
import redis.cluster

from bench.bench_limits import PATHS, measurements, set_up
from bench.harness import (
    REPO,
    BenchError,
    BenchOptions,
    Report,
    Row,
    Server,
    WrkResult,
    median_cpu,
    rounds_of,
)

SCRIPT = REPO / ".ci" / "redis-cluster"
LABELS = ("node", "cluster")


@contextlib.contextmanager
def cluster_url() -> Iterator[str]:
    """A Redis Cluster's URL: the given one, one already running, or one started here."""
    given = os.environ.get("BENCH_REDIS_CLUSTER_URL")
    if given:
        yield given
        return
    running = subprocess.run([SCRIPT, "status"], capture_output=True).returncode == 0
    started = subprocess.run([SCRIPT, "start"], capture_output=True, text=True)
    if started.returncode != 0:
        raise BenchError(f"cluster: .ci/redis-cluster start failed:\n{started.stderr}")
    try:
        yield started.stdout.strip()
    finally:
        if not running:
            subprocess.run([SCRIPT, "stop"], capture_output=True)


def flush(url: str) -> None:
    with redis.cluster.RedisCluster.from_url(url) as cluster:
        cluster.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)


def redis_cpu_s(url: str) -> float:
    """User + system CPU seconds the cluster's masters have used so far."""
    total = 0.0
    with redis.cluster.RedisCluster.from_url(url) as cluster:
        for node in cluster.get_primaries():
            info = cluster.info("cpu", target_nodes=node)
            info = info.get(node.name, info)  # keyed by node on some redis-py versions
            total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def app_requests(server: Server) -> float:
    """Requests the server has answered so far, by its own metrics."""
    text = httpx.get(server.url("/metrics"), timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("suishen_http_requests_total{")
    )


def with_redis_cpu(
    measure: Callable[[], WrkResult], server: Server, url: str, sink: list[float]
) -> Callable[[], WrkResult]:
    """`measure`, also noting the cluster's CPU µs per request the app answered meanwhile
    (codes issued for a verify or scan round included)."""

    def run() -> WrkResult:
        cpu, answered = redis_cpu_s(url), app_requests(server)
        result = measure()
        requests = app_requests(server) - answered - 1  # not the first /metrics
        sink.append((redis_cpu_s(url) - cpu) / max(requests, 1) * 1e6)
        return result

    return run


def cost_lines(rows: dict[str, WrkResult]) -> list[str]:
    lines = ["server CPU us/request, node -> cluster (ratio); requests/s node -> cluster"]
    for path in PATHS:
        node, cluster = rows[f"node {path}"], rows[f"cluster {path}"]
        ratio = (cluster.cpu_us or 0.0) / node.cpu_us if node.cpu_us else float("nan")
        lines.append(
            f"{path}: {node.cpu_us or 0:.0f} -> {cluster.cpu_us or 0:.0f} us (x{ratio:.2f}); "
            f"{node.rps:.0f} -> {cluster.rps:.0f} req/s"
        )
    return lines


def run(opts: BenchOptions) -> Report:
    if not opts.real:
        raise BenchError("cluster: run with --real (it compares Redis setups under PostgreSQL)")
    with cluster_url() as url, ExitStack() as stack:
        node = stack.enter_context(Server.suishen(opts, seed_demo=True))
        # Its own database and an empty cluster, so both servers start alike.
        flush(url)
        on_cluster = replace(opts, database_url=f"{opts.database_url}_cluster", redis_url=url)
        clustered = stack.enter_context(
            Server.suishen(on_cluster, seed_demo=True, env={"SUISHEN_REDIS_CLUSTER": "1"})
        )
        targets = {"node": set_up(node), "cluster": set_up(clustered)}
        per_target = {
            label: measurements(opts, label, t.server, t, baseline=False)
            for label, t in targets.items()
        }
        # Interleaved path by path: node then cluster of one path, then the next.
        redis_us: dict[str, list[float]] = {path: [] for path in PATHS}
        for path in PATHS:
            label = f"cluster {path}"
            per_target["cluster"][label] = with_redis_cpu(
                per_target["cluster"][label], clustered, url, redis_us[path]
            )
        runs: dict[str, Callable[[], WrkResult]] = {}
        for i in range(len(PATHS)):
            for label in LABELS:
                runs.update([list(per_target[label].items())[i]])
        results = rounds_of(runs, opts.rounds)
    chosen = {label: median_cpu(rs) for label, rs in results.items()}
    notes = [
        *cost_lines(chosen),
        "Redis Cluster CPU us per app request, median of the rounds (all three masters; "
        "verify and scan rounds include issuing their fresh codes): "
        + ", ".join(f"{p} {statistics.median(v):.0f}" for p, v in redis_us.items()),
        f"each row: the round with the median CPU/request of {opts.rounds}; the CPU is the "
        "app server's (Redis runs on its own processes, unpinned)",
    ]
    for t in targets.values():
        notes += t.notes
    return Report(
        title=f"cluster: one Redis node vs a three-master Redis Cluster ({opts.server}, "
        f"{opts.workers} worker(s))",
        rows=[Row(label, r) for label, r in chosen.items()],
        baseline="node gates/scan",
        measured="cluster gates/scan",
        notes=notes,
    )
