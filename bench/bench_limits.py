"""The hot paths against their hand-made limits (`bench/baselines.py`), in one run:
`POST /v1/gates/scan`, `GET /v1/codes/me`, `POST /v1/codes/verify` and `GET /healthz`,
each as server CPU µs per request over its baseline's (median of the interleaved
rounds). With `--tree PATH` the code of another worktree is measured beside this one as
"before". PostgreSQL + Redis only (`--real`)."""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.bench_venues import _client_token, _ok, _setup, renewed
from bench.harness import (
    BenchOptions,
    NeedsReal,
    Report,
    Row,
    Server,
    WrkRequest,
    WrkResult,
    drive,
    lua_cycle,
    lua_lines,
    median_cpu,
    rounds_of,
)

# Cost goals: CPU per request at most this many times the baseline's (healthz: at least
# this share of bare Starlette's requests/s, i.e. at most 1/0.85 of its CPU).
GOALS = {"gates/scan": 1.5, "codes/me": 1.3, "codes/verify": 1.3, "healthz": 1 / 0.85}
PATHS = {
    "healthz": ("/healthz", "/healthz"),
    "codes/me": ("/v1/codes/me", "/codes/me"),
    "codes/verify": ("/v1/codes/verify", "/codes/verify"),
    "gates/scan": ("/v1/gates/scan", "/gates/scan"),
}
VERIFY_CODES = 400
# First guesses of scans/s, to issue enough fresh codes for a run (then the best seen).
SCAN_RATE_GUESS = {"baseline": 2000.0, "suishen": 1000.0, "uvicorn": 1000.0, "before": 800.0}
ISSUE_CONCURRENCY = 16
TOKEN_RENEW_S = 600.0
# The best scans/s seen so far per server, so later rounds issue enough codes.
rates: dict[str, float] = {}


@dataclass
class Target:
    """A suishen server set up for the paths: a gate, residents, a verifier."""

    server: Server
    gate: dict[str, str]
    residents: list[dict[str, str]]
    verifier: dict[str, str]
    scan_rate: float = 0.0
    notes: list[str] = field(default_factory=list)
    tokens_at: float = field(default_factory=time.monotonic)

    def fresh(self) -> Target:
        """Every token renewed when they are older than TOKEN_RENEW_S (they live 15 min)."""
        if time.monotonic() - self.tokens_at > TOKEN_RENEW_S:
            with httpx.Client(base_url=self.server.base_url, timeout=30) as http:
                self.gate = renewed(http, self.gate)
                self.verifier = renewed(http, self.verifier)
                self.residents = [renewed(http, r) for r in self.residents]
            self.tokens_at = time.monotonic()
        return self


def set_up(server: Server) -> Target:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        gate, residents = _setup(http, server)
        authority = server.demo_credentials()["authority"]  # holds codes:verify
        verifier = {
            "Authorization": f"Bearer {_client_token(http, authority)}",
            "Content-Type": "application/json",
        }
    return Target(server, gate, residents, verifier)


async def _issue(base_url: str, residents: Sequence[dict[str, str]], n: int) -> list[str]:
    """`n` fresh codes, round-robin over the residents (code i is resident i % len's)."""
    limits = httpx.Limits(max_connections=ISSUE_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:
        gate = asyncio.Semaphore(ISSUE_CONCURRENCY)

        async def one(i: int) -> str:
            # Setup, not measurement: a 503 (Redis past its timeout on a busy machine) is
            # asked again, and so is a GET on a kept-alive connection the server closed
            # as it was sent (the server's keep-alive timeout met a stalled client).
            for attempt in range(5):
                try:
                    async with gate:
                        response = await http.get(
                            "/v1/codes/me", headers=residents[i % len(residents)]
                        )
                except httpx.RemoteProtocolError:
                    if attempt == 4:
                        raise
                    continue
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.2)
            return str(_ok(response, "issue")["code"])

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def fresh_codes(target: Target, n: int) -> list[str]:
    return asyncio.run(_issue(target.server.base_url, target.fresh().residents, n))


def scan_bodies(codes: Sequence[str], residents: int) -> list[str]:
    """Visits: every resident in with a fresh code, then out with the same code; the next
    visit with the next codes. `{seq}` becomes a unique scan_id in wrk."""
    bodies: list[str] = []
    for start in range(0, len(codes) - residents + 1, residents):
        visit = codes[start : start + residents]
        for direction in ("in", "out"):
            bodies += [
                json.dumps({"scan_id": "s-{seq}", "code": c, "direction": direction}) for c in visit
            ]
    return bodies


def measure_scans(
    opts: BenchOptions, server: Server, path: str, gate: dict[str, str], target: Target, rate: float
) -> WrkResult:
    scans = rate * (opts.warmup_s + opts.duration_s) * 1.3
    visits = max(1, math.ceil(scans / (2 * len(target.residents))))
    codes = fresh_codes(target, visits * len(target.residents))
    with tempfile.TemporaryDirectory() as work:
        bodies = scan_bodies(codes, len(target.residents))
        script = lua_lines("POST", path, gate, bodies, Path(work))
        result = drive(server, opts, path, lua_script=script)
    if result.requests + result.rps * opts.warmup_s > 2 * len(codes):
        target.notes.append(
            f"{server.name} {path}: more scans than fresh codes "
            f"({result.requests:.0f} > {2 * len(codes)}), the rest were repeats"
        )
    return result


def measure_verify(opts: BenchOptions, server: Server, path: str, headers: dict[str, str],
                   target: Target) -> WrkResult:  # fmt: skip
    requests = [
        WrkRequest(path, "POST", headers, json.dumps({"code": c}))
        for c in fresh_codes(target, VERIFY_CODES)
    ]
    return drive(server, opts, path, lua_script=lua_cycle(requests))


def measurements(
    opts: BenchOptions, label: str, server: Server, target: Target, *, baseline: bool
) -> dict[str, Callable[[], WrkResult]]:
    """The four paths on `server` (its own paths, or the baseline's with `target`'s
    tokens and codes)."""
    which = 1 if baseline else 0
    rate_key = "baseline" if baseline else label

    def scans() -> WrkResult:
        rate = max(SCAN_RATE_GUESS.get(rate_key, 1500.0), rates.get(rate_key, 0.0))
        gate = target.fresh().gate
        result = measure_scans(opts, server, PATHS["gates/scan"][which], gate, target, rate)
        rates[rate_key] = max(rates.get(rate_key, 0.0), result.rps)
        return result

    prefix = "baseline " if baseline else ("" if label == "suishen" else f"{label} ")
    return {
        f"{prefix}healthz": lambda: drive(server, opts, "/healthz"),
        f"{prefix}codes/me": lambda: drive(
            server, opts, PATHS["codes/me"][which], headers=target.fresh().residents[0]
        ),
        f"{prefix}codes/verify": lambda: measure_verify(
            opts, server, PATHS["codes/verify"][which], target.fresh().verifier, target
        ),
        f"{prefix}gates/scan": scans,
    }


def cost_lines(rows: dict[str, WrkResult], labels: Sequence[str]) -> tuple[list[str], bool]:
    lines = ["cost: server CPU us/request, and its ratio to the baseline's (goal in brackets)"]
    met_all = True
    for path, goal in GOALS.items():
        base = rows[f"baseline {path}"].cpu_us or 0.0
        parts = [f"{path}: baseline {base:.0f}"]
        for label in labels:
            name = path if label == "suishen" else f"{label} {path}"
            cpu = rows[name].cpu_us or 0.0
            ratio = cpu / base if base else float("nan")
            verdict = ""
            if label == "suishen":
                met = ratio <= goal
                met_all = met_all and met
                verdict = f" [<= {goal:.2f}: {'met' if met else 'MISSED'}]"
            name = "after" if label == "suishen" else label
            parts.append(f"{name} {cpu:.0f} x{ratio:.2f}{verdict}")
        lines.append("; ".join(parts))
    return lines, met_all


def run(opts: BenchOptions) -> Report:
    if not opts.real:
        raise NeedsReal("limits")
    with ExitStack() as stack:
        after = stack.enter_context(Server.suishen(opts, seed_demo=True))
        targets = {"suishen": set_up(after)}
        if opts.server != "uvicorn":
            # This tree under uvicorn too, to tell the serving tier's part from the code's.
            uv = Server.suishen(opts, seed_demo=True, server="uvicorn", instance="uvicorn")
            targets["uvicorn"] = set_up(stack.enter_context(uv))
        if opts.tree is not None:
            before = stack.enter_context(Server.suishen(opts, seed_demo=True, tree=opts.tree))
            targets["before"] = set_up(before)
        base = stack.enter_context(Server.baseline(opts, after))
        runs: dict[str, Callable[[], WrkResult]] = {}
        base_runs = measurements(opts, "baseline", base, targets["suishen"], baseline=True)
        per_target = {
            label: measurements(opts, label, t.server, t, baseline=False)
            for label, t in targets.items()
        }
        # Interleaved path by path: baseline, after, before of one path, then the next.
        for i in range(len(PATHS)):
            runs.update([list(base_runs.items())[i]])
            for label in targets:
                runs.update([list(per_target[label].items())[i]])
        # A few 503s (a Redis command past its 0.5 s timeout) on a machine shared with
        # test suites are counted in the `failed` column, not fatal.
        results = rounds_of(runs, opts.rounds, tolerate=0.005)
    chosen = {label: median_cpu(rs) for label, rs in results.items()}
    lines, _ = cost_lines(chosen, list(targets))
    notes = [*lines, f"each row: the round with the median CPU/request of {opts.rounds}"]
    for t in targets.values():
        notes += t.notes
    return Report(
        title=f"limits: hot paths vs hand-made baselines ({opts.backend_name}, "
        f"{opts.server}, {opts.workers} worker(s))",
        rows=[Row(label, r) for label, r in chosen.items()],
        baseline="baseline healthz",
        measured="healthz",
        goal_ratio=0.85,
        notes=notes,
    )
