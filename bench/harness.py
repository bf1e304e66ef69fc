"""The benchmark harness: real server processes pinned to one core, `wrk` pinned to the
other, and a table of requests/s, p50 and p99 with ratios against a baseline measured in
the same run. Domain benchmarks (`bench/bench_<domain>.py`) compose these pieces."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
SERVER_CPU = 0
WRK_CPU = 1
DEFAULT_BENCH_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_BENCH_REDIS_URL = "redis://127.0.0.1:6379/14"


class BenchError(RuntimeError):
    """The benchmark could not be run as described (server did not start, wrk failed...)."""


class NeedsReal(BenchError):
    """The benchmark measures PostgreSQL + Redis only: `python -m bench` names it and goes
    on (without `--real` this is not a failure)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: PostgreSQL + Redis only, run with --real")


@dataclass(frozen=True)
class BenchOptions:
    """What `python -m bench` was asked for; every benchmark's `run` receives it."""

    real: bool = False
    duration_s: float = 10.0
    warmup_s: float = 2.0
    connections: int = 32
    threads: int = 1
    rounds: int = 3
    database_url: str = DEFAULT_BENCH_DATABASE_URL
    redis_url: str = DEFAULT_BENCH_REDIS_URL
    # Another worktree of suishen (`--tree`, e.g. `git worktree add /work/before HEAD`)
    # measured beside this one in the same run, as "before".
    tree: Path | None = None
    # `suishen serve --server ...` (uvicorn or granian) and `--workers`.
    server: str = "uvicorn"
    workers: int = 1

    @property
    def backend_name(self) -> str:
        return "PostgreSQL + Redis" if self.real else "SQLite + embedded store"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def taskset(cpus: int | str) -> list[str]:
    """Pin to these cores (one, or a list like "0,1") when the machine has them (a
    one-core machine runs unpinned)."""
    highest = max(int(c) for c in str(cpus).split(","))
    if shutil.which("taskset") and (os.cpu_count() or 1) > highest:
        return ["taskset", "-c", str(cpus)]
    return []


# -- servers -----------------------------------------------------------------------


class Server:
    """A server process on a free port, pinned to `SERVER_CPU`, stopped on exit.

    Build one with `Server.suishen(opts)` (the real `suishen serve`, one worker, in a
    throwaway VAR_DIR) or `Server.bare()` (the baseline Starlette app), then use it as a
    context manager: `with Server.suishen(opts) as server: server.base_url ...`.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        port: int,
        var_dir: Path,
        *,
        ready_path: str = "/healthz",
        start_timeout_s: float = 120.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.port = port
        self.var_dir = var_dir
        self.ready_path = ready_path
        self.start_timeout_s = start_timeout_s
        self.log_path = var_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.cwd = REPO
        # The cores it runs on (`taskset -c`); wrk keeps WRK_CPU.
        self.cpus = str(SERVER_CPU)
        # Counters read before and after each wrk run against it (`WrkResult.probed`),
        # e.g. {"postgres": lambda: cpu_seconds_of(pids_named("postgres"))}.
        self.probes: dict[str, Callable[[], float]] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @classmethod
    def suishen(
        cls,
        opts: BenchOptions,
        *,
        seed_demo: bool = False,
        env: Mapping[str, str] | None = None,
        tree: Path | None = None,
        workers: int | None = None,
        server: str | None = None,
        instance: str = "",
    ) -> Server:
        """`suishen serve` (one worker unless told), production log format, access log on.
        `tree` serves another worktree's code with its own venv, database
        (`<BENCH_DATABASE_URL>_before`) and Redis key prefix (`before`); `instance` names
        a second server of this tree with a database and prefix of its own
        (`<BENCH_DATABASE_URL>_<instance>`), so two can run at once."""
        var_dir = Path(tempfile.mkdtemp(prefix="suishen-bench-"))
        port = free_port()
        workers = workers or opts.workers
        database_url, prefix = opts.database_url, "suishen"
        if tree is not None:
            instance = "before"
        if instance:
            database_url, prefix = f"{opts.database_url}_{instance}", instance
        server_env = {
            **os.environ,
            "APP_ENV": "dev",
            "VAR_DIR": str(var_dir),
            "KEY_DIR": str(var_dir / "keys"),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WORKERS": str(workers),
            "KV_PREFIX": prefix,
        }
        server_env.pop("REDIS_URL", None)
        if opts.real:
            reset_real_backend(database_url, opts.redis_url, prefix)
            server_env["DATABASE_URL"] = database_url
            server_env["REDIS_URL"] = opts.redis_url
        else:
            server_env["DATABASE_URL"] = f"sqlite://{var_dir / 'suishen.db'}"
        server_env.update(env or {})
        python = sys.executable if tree is None else str(tree / ".venv" / "bin" / "python")
        argv = [python, "-m", "app.cli", "serve", "--workers", str(workers)]
        chosen = server or opts.server
        if chosen != "uvicorn" and tree is None:  # the before tree serves with uvicorn
            argv += ["--server", chosen]
        if seed_demo:
            argv.append("--seed-demo")
        made = cls(instance or "suishen", argv, server_env, port, var_dir)
        if tree is not None:
            made.cwd = tree
        return made

    @classmethod
    def bare(cls) -> Server:
        """The baseline: one Starlette route answering /healthz's bytes, same uvicorn."""
        var_dir = Path(tempfile.mkdtemp(prefix="suishen-bench-bare-"))
        port = free_port()
        argv = [sys.executable, "-m", "bench.harness", "bare", str(port)]
        return cls("bare", argv, dict(os.environ), port, var_dir)

    @classmethod
    def baseline(cls, opts: BenchOptions, suishen: Server) -> Server:
        """The hand-made limits (`bench/baselines.py`) beside a running suishen server:
        its keys (so suishen's tokens and codes verify), its database and Redis."""
        if not opts.real:
            raise NeedsReal("the hand-made baselines")
        var_dir = Path(tempfile.mkdtemp(prefix="suishen-bench-baseline-"))
        port = free_port()
        argv = [sys.executable, "-m", "bench.harness", "baseline", str(port)]
        env = {
            **os.environ,
            "KEY_DIR": suishen.env["KEY_DIR"],
            "DATABASE_URL": suishen.env["DATABASE_URL"],
            "REDIS_URL": opts.redis_url,
        }
        return cls("baseline", argv, env, port, var_dir)

    def start(self) -> Server:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*taskset(self.cpus), *self.argv],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} server exited early:\n{self.log()}")
            try:
                if httpx.get(self.url(self.ready_path), timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"{self.name} server did not answer {self.ready_path}:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        shutil.rmtree(self.var_dir, ignore_errors=True)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process, its live descendants (worker
        processes) and its reaped children so far."""
        if self.process is None:
            raise BenchError(f"{self.name} server is not running")
        return cpu_seconds_of(_tree(self.process.pid))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def demo_credentials(self) -> dict[str, Any]:
        """What `--seed-demo` wrote to VAR_DIR/demo-credentials.json."""
        path = self.var_dir / "demo-credentials.json"
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        return data

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


def _cpu_ticks(pid: int, reaped: bool = True) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0  # exited between listing and reading
    fields = stat.rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 of stat(5); [0] here is field 3.
    return sum(int(f) for f in fields[11 : 15 if reaped else 13])


def cpu_seconds_of(pids: Sequence[int], *, reaped: bool = True) -> float:
    """User + system CPU time of these processes and (with `reaped`) of their children
    that have exited so far."""
    return sum(_cpu_ticks(pid, reaped) for pid in pids) / os.sysconf("SC_CLK_TCK")


def pids_named(name: str) -> dict[int, str]:
    """Every process whose command name (`/proc/<pid>/comm`) is `name`, with its title
    (command line), e.g. `postgres`: its backends keep that name under titles such as
    `postgres: 15/main: postgres test_bench 127.0.0.1(39040) idle`."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found[int(entry.name)] = title.strip()
        except OSError:
            continue  # exited between listing and reading
    return found


def reaped_children_cpu_seconds() -> float:
    """User + system CPU time of this process's children that have exited and been
    waited for (over one `run_wrk`: that wrk run's)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_seconds() -> dict[str, float]:
    """CPU time of the whole machine since boot, summed over its cores (`/proc/stat`):
    `busy` (user, nice, system, irq, softirq), `idle` (idle, iowait) and `steal` (taken
    by the hypervisor)."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "busy": (user + nice + system + irq + softirq) / tick,
        "idle": (idle + iowait) / tick,
        "steal": steal / tick,
    }


def _tree(pid: int) -> list[int]:
    """`pid` and its live descendants (a multi-worker server's processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def reset_real_backend(database_url: str, redis_url: str, prefix: str = "suishen") -> None:
    """Empty the benchmark's PostgreSQL schema (creating the database if missing) and the
    Redis keys under `prefix`, so every run starts alike. The dev start that follows
    applies the migrations."""
    import asyncio

    import asyncpg
    import redis

    dsn = database_url.replace("postgres://", "postgresql://", 1)

    async def reset() -> None:
        try:
            conn = await asyncpg.connect(dsn)
        except asyncpg.InvalidCatalogNameError:
            server_dsn, name = dsn.rsplit("/", 1)
            admin = await asyncpg.connect(f"{server_dsn}/postgres")
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()
            conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    asyncio.run(reset())
    client = redis.Redis.from_url(redis_url)
    for pattern in (f"{prefix}:*", "bl:*"):
        batch = list(client.scan_iter(pattern, count=1000))
        for start in range(0, len(batch), 1000):
            client.unlink(*batch[start : start + 1000])


def create_bare_app() -> Any:
    """The baseline application: nothing but a route returning /healthz's exact bytes."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from app.routes import HEALTHY_BODY

    async def healthz(request: Request) -> Response:
        return Response(HEALTHY_BODY, media_type="application/json")

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"])])


def _serve_baseline(port: int) -> None:
    import uvicorn

    from app.cli import uvicorn_options
    from app.settings import Settings

    options = uvicorn_options(Settings(port=port, workers=1))
    uvicorn.run("bench.baselines:create_baseline_app", factory=True, **options)


def _serve_bare(port: int) -> None:
    import uvicorn

    from app.cli import uvicorn_options
    from app.settings import Settings

    options = uvicorn_options(Settings(port=port, workers=1))
    uvicorn.run("bench.harness:create_bare_app", factory=True, **options)


# -- wrk ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """One wrk run. Latencies in milliseconds; `non_2xx` counts 4xx/5xx answers and
    `errors` socket errors (connect, read, write, timeout)."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    errors: int
    duration_s: float
    # Server CPU time per request (user + system), when `run_wrk` was given the server:
    # unlike requests/s it barely moves when other processes share the machine.
    cpu_us: float | None = None
    # How much each of the server's `probes` grew over the measured run.
    probed: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.non_2xx == 0 and self.errors == 0


@dataclass(frozen=True)
class WrkRequest:
    """One request of a `lua_cycle` script."""

    path: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | bytes | None = None


def lua_string(value: str | bytes) -> str:
    """A Lua string literal holding exactly these bytes."""
    raw = value.encode() if isinstance(value, str) else value
    out = []
    for byte in raw:
        if 32 <= byte < 127 and byte not in (34, 92):
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def _lua_table(headers: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()) + "}"


def lua_static(
    method: str = "GET", headers: Mapping[str, str] | None = None, body: str | bytes | None = None
) -> str:
    """Every request the same: method, headers and body set once on `wrk`."""
    lines = [f"wrk.method = {lua_string(method)}"]
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    return "\n".join(lines) + "\n"


def lua_cycle(requests: Sequence[WrkRequest]) -> str:
    """Per-request bodies: wrk cycles through these prebuilt requests (each wrk thread
    starts at its own offset, so with -t1 every request is sent once before any repeats)."""
    if not requests:
        raise ValueError("lua_cycle needs at least one request")
    entries = []
    for r in requests:
        body = "nil" if r.body is None else lua_string(r.body)
        entries.append(
            f"wrk.format({lua_string(r.method)}, {lua_string(r.path)}, "
            f"{_lua_table(r.headers)}, {body})"
        )
    return (
        "local requests = {\n  " + ",\n  ".join(entries) + "\n}\n"
        "local threads, i = 0, 0\n"
        "function setup(thread) thread:set('offset', threads); threads = threads + 1 end\n"
        "function init(args) i = (offset or 0) * 7919 end\n"
        "function request()\n"
        "  i = i + 1\n"
        "  return requests[(i % #requests) + 1]\n"
        "end\n"
    )


def lua_lines(
    method: str, path: str, headers: Mapping[str, str], bodies: Sequence[str], work_dir: Path
) -> str:
    """Per-request bodies read by wrk from a file (a Lua table literal of tens of thousands
    of requests is more than wrk takes): one body per line, sent in order, `{seq}` in a
    body replaced by a number unique to this wrk process (e.g. for `scan_id`s). The
    measured run starts after the bodies its warm-up sent; one wrk thread (`-t1`) only."""
    if not bodies or any("\n" in b for b in bodies):
        raise ValueError("lua_lines needs bodies of one line each")
    lines_path = work_dir / f"bodies-{os.getpid()}-{time.monotonic_ns()}.txt"
    lines_path.write_text("\n".join(bodies) + "\n")
    return (
        f"local method, path, headers = {lua_string(method)}, {lua_string(path)}, "
        f"{_lua_table(headers)}\n"
        "local bodies, i, run = {}, 0, ''\n"
        "function init(args)\n"
        "  i = tonumber(args[1]) or 0  -- the bodies a warm-up sent already\n"
        f"  for line in io.lines({lua_string(str(lines_path))}) do bodies[#bodies + 1] = line end\n"
        "  local f = io.open('/proc/sys/kernel/random/uuid')\n"
        "  run = string.sub(f:read('*l'), 1, 8); f:close()\n"
        "end\n"
        "function request()\n"
        "  i = i + 1\n"
        "  local body = string.gsub(bodies[((i - 1) % #bodies) + 1], '{seq}', run .. '-' .. i)\n"
        "  return wrk.format(method, path, headers, body)\n"
        "end\n"
    )


# Appended to every script: prints exact figures in one line wrk's summary lacks.
_DONE_LUA = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT %d %d %d %d %d %.1f %.1f\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk is not installed: `make bench` installs it (apt-get install -y wrk)")
    return path


def drive(server: Server, opts: BenchOptions, path: str, **request: Any) -> WrkResult:
    """wrk against `path` on `server` at the run's duration, warm-up and concurrency;
    `request` goes to `run_wrk` (method, headers, body or lua_script)."""
    return run_wrk(
        server.url(path),
        duration_s=opts.duration_s,
        warmup_s=opts.warmup_s,
        connections=opts.connections,
        threads=opts.threads,
        server=server,
        **request,
    )


def run_wrk(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
    lua_script: str | None = None,
    duration_s: float = 10.0,
    connections: int = 32,
    threads: int = 1,
    warmup_s: float = 0.0,
    timeout_s: float = 5.0,
    server: Server | None = None,
) -> WrkResult:
    """Drive `url` with wrk pinned to `WRK_CPU`. Either `method`/`headers`/`body` (the same
    request every time) or a `lua_script` (e.g. `lua_cycle(...)`); scripts must not
    define `done`, which the harness uses to read exact figures. With `server`, its CPU
    time and its `probes` are read just before and after the measured run."""
    probes = server.probes if server is not None else {}
    wrk = ensure_wrk()
    script = lua_script if lua_script is not None else lua_static(method, headers, body)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script + _DONE_LUA)
        script_path = fh.name
    try:
        # The measured run goes on where the warm-up stopped (`lua_lines` scripts): a
        # body sent once, e.g. a fresh code's first scan, is not sent again.
        sent = "0"
        if warmup_s > 0:
            warm = _wrk(wrk, url, script_path, warmup_s, connections, threads, timeout_s)
            done = next(ln for ln in warm.splitlines() if ln.startswith("WRK_RESULT "))
            # Completed, plus what may have been in flight when the warm-up stopped.
            sent = str(int(done.split()[1]) + connections)
        cpu_before = server.cpu_seconds() if server is not None else None
        probed_before = {name: probe() for name, probe in probes.items()}
        out = _wrk(wrk, url, script_path, duration_s, connections, threads, timeout_s, [sent])
        probed = {name: probe() - probed_before[name] for name, probe in probes.items()}
        cpu_after = server.cpu_seconds() if server is not None else None
    finally:
        os.unlink(script_path)
    for line in out.splitlines():
        if line.startswith("WRK_RESULT "):
            n, dur_us, status, sock, timeouts, p50_us, p99_us = line.split()[1:]
            duration = int(dur_us) / 1e6
            cpu_us = None
            if cpu_before is not None and cpu_after is not None and int(n):
                cpu_us = (cpu_after - cpu_before) / int(n) * 1e6
            return WrkResult(
                rps=int(n) / duration if duration else 0.0,
                p50_ms=float(p50_us) / 1000,
                p99_ms=float(p99_us) / 1000,
                requests=int(n),
                non_2xx=int(status),
                errors=int(sock) + int(timeouts),
                duration_s=duration,
                cpu_us=cpu_us,
                probed=probed,
            )
    raise BenchError(f"wrk printed no result:\n{out}")


def _wrk(
    wrk: str,
    url: str,
    script: str,
    duration_s: float,
    connections: int,
    threads: int,
    timeout_s: float,
    script_args: Sequence[str] = (),
) -> str:
    argv = [
        *taskset(WRK_CPU),
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
        "-s",
        script,
        url,
        *(["--", *script_args] if script_args else []),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def rounds_of(
    runs: Mapping[str, Callable[[], WrkResult]], rounds: int, *, tolerate: float = 0.0
) -> dict[str, list[WrkResult]]:
    """Every round of each measurement, interleaved (a, b, a, b, ...); raises when more
    than `tolerate` of a round's requests (and more than 3) failed (none by default; the
    failures are in the table's `failed` column either way)."""
    results: dict[str, list[WrkResult]] = {label: [] for label in runs}
    for _ in range(max(1, rounds)):
        for label, measure in runs.items():
            result = measure()
            failed = result.non_2xx + result.errors
            allowed = max(3.0, tolerate * result.requests) if tolerate else 0.0
            if failed > allowed:
                raise BenchError(
                    f"{label}: {result.non_2xx} non-2xx answers, {result.errors} socket errors"
                )
            results[label].append(result)
    return results


def median_cpu(results: Sequence[WrkResult]) -> WrkResult:
    """The round with the median server CPU per request (the figure least moved by other
    load on the machine)."""
    ordered = sorted(results, key=lambda r: r.cpu_us if r.cpu_us is not None else 0.0)
    return ordered[(len(ordered) - 1) // 2]


def best_of(runs: Mapping[str, Callable[[], WrkResult]], rounds: int) -> list[Row]:
    """Run each measurement `rounds` times, interleaved (a, b, a, b, ...), and keep each
    one's best round by requests/s: other load on the machine only ever slows a round
    down, and interleaving spreads what it does over every measurement alike."""
    results = rounds_of(runs, rounds)
    return [Row(label, max(results[label], key=lambda r: r.rps)) for label in runs]


# -- reporting ---------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    result: WrkResult


@dataclass
class Report:
    """One benchmark's outcome: its rows, which row is the baseline, and the goal for
    `ratio = rows[measured].rps / rows[baseline].rps` when there is one."""

    title: str
    rows: list[Row]
    baseline: str | None = None
    measured: str | None = None
    goal_ratio: float | None = None
    notes: list[str] = field(default_factory=list)

    def row(self, label: str) -> Row:
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(label)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.measured is None:
            return None
        base = self.row(self.baseline).result.rps
        return self.row(self.measured).result.rps / base if base else None

    @property
    def cpu_ratio(self) -> float | None:
        """The ratio requests/s would have on a quiet machine: baseline CPU per request
        over the measured one's."""
        if self.baseline is None or self.measured is None:
            return None
        base = self.row(self.baseline).result.cpu_us
        measured = self.row(self.measured).result.cpu_us
        return base / measured if base and measured else None

    @property
    def goal_met(self) -> bool | None:
        ratio = self.ratio
        if ratio is None or self.goal_ratio is None:
            return None
        return ratio >= self.goal_ratio


def report(rep: Report) -> str:
    """Format a report as a table; `vs base` is requests/s against the baseline row, and
    `cpu us` the server's CPU time per request when it was measured."""
    base = rep.row(rep.baseline).result if rep.baseline else None
    width = max(12, *(len(r.label) for r in rep.rows))
    lines = [
        f"== {rep.title}",
        f"{'':<{width}}  {'req/s':>10}  {'p50 ms':>8}  {'p99 ms':>8}  {'vs base':>8}"
        f"  {'cpu us':>8}  {'failed':>7}",
    ]
    for row in rep.rows:
        r = row.result
        vs = f"{r.rps / base.rps:.3f}" if base and base.rps else "-"
        cpu = f"{r.cpu_us:.1f}" if r.cpu_us is not None else "-"
        lines.append(
            f"{row.label:<{width}}  {r.rps:>10.0f}  {r.p50_ms:>8.2f}  {r.p99_ms:>8.2f}"
            f"  {vs:>8}  {cpu:>8}  {r.non_2xx + r.errors:>7}"
        )
    ratio = rep.ratio
    if ratio is not None:
        verdict = ""
        if rep.goal_ratio is not None:
            verdict = f" (goal >= {rep.goal_ratio:.2f}: {'met' if rep.goal_met else 'MISSED'})"
        lines.append(f"ratio {rep.measured} / {rep.baseline} = {ratio:.3f}{verdict}")
        cpu_ratio = rep.cpu_ratio
        if cpu_ratio is not None:
            lines.append(
                f"cpu ratio (baseline cpu/request over {rep.measured}'s) = {cpu_ratio:.3f}"
            )
    lines.extend(f"note: {n}" for n in rep.notes)
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "bare":
        _serve_bare(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "baseline":
        _serve_baseline(int(sys.argv[2]))
    else:
        sys.exit("usage: python -m bench.harness bare|baseline PORT")
