"""More than one core (issue 11, part 5): `POST /v1/gates/scan` throughput of
`suishen serve --workers 2` on both cores against `--workers 1` on one, in the same run,
wrk pinned to core 1 as always. Goal: at least 1.6x. PostgreSQL + Redis."""

from __future__ import annotations

import functools
from contextlib import ExitStack

from bench.bench_limits import measure_scans, set_up
from bench.harness import (
    BenchOptions,
    NeedsReal,
    Report,
    Row,
    Server,
    median_cpu,
    rounds_of,
)

GOAL = 1.6


def run(opts: BenchOptions) -> Report:
    if not opts.real:
        raise NeedsReal("workers")
    with ExitStack() as stack:
        one = stack.enter_context(Server.suishen(opts, seed_demo=True, workers=1, instance="w1"))
        two = Server.suishen(opts, seed_demo=True, workers=2, instance="w2")
        two.cpus = "0,1"  # both cores; wrk shares core 1 with the second worker
        stack.enter_context(two)
        targets = {"1 worker": set_up(one), "2 workers": set_up(two)}
        seen: dict[str, float] = {"1 worker": 1500.0, "2 workers": 3000.0}

        def measure(label: str) -> Row:
            t = targets[label]
            result = measure_scans(opts, t.server, "/v1/gates/scan", t.fresh().gate, t, seen[label])
            seen[label] = max(seen[label], result.rps)
            return Row(label, result)

        results = rounds_of(
            {label: functools.partial(lambda lb: measure(lb).result, label) for label in targets},
            opts.rounds,
        )
    best = {label: max(rs, key=lambda r: r.rps) for label, rs in results.items()}
    cpu = {label: median_cpu(rs) for label, rs in results.items()}
    ratio = best["2 workers"].rps / best["1 worker"].rps
    return Report(
        title=f"workers: POST /v1/gates/scan, 2 workers on 2 cores vs 1 on 1 ({opts.server})",
        rows=[Row(label, r) for label, r in best.items()],
        baseline="1 worker",
        measured="2 workers",
        goal_ratio=GOAL,
        notes=[
            f"throughput ratio {ratio:.2f} (goal >= {GOAL})",
            "CPU us/request (median round): "
            + ", ".join(f"{label} {r.cpu_us or 0:.0f}" for label, r in cpu.items()),
            "wrk, PostgreSQL and Redis run on the same two cores as the workers: with two "
            "workers they take their CPU from the server's second core",
        ],
    )
