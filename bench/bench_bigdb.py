"""Cost must not grow with what is stored (issue 11, part 3): `POST /v1/gates/scan` and
`GET /v1/codes/me` on an empty database and, in the same run, on one holding 1 million
entries (and admissions) at the scanned venue and 100,000 residents (subjects, accounts,
code handles, statuses, presence rows), seeded with `generate_series` in SQL, not
through the API. PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from contextlib import ExitStack

import asyncpg

from bench.bench_limits import Target, measure_scans, set_up
from bench.harness import (
    BenchError,
    BenchOptions,
    NeedsReal,
    Report,
    Row,
    Server,
    WrkResult,
    drive,
    median_cpu,
    rounds_of,
)

ENTRIES = 1_000_000
RESIDENTS = 100_000

# Values for NOT NULL columns without a default, by type; `i` is the series number.
_FILL = {
    "character varying": "left('seed' || i, {n})",
    "text": "'seed' || i",
    "integer": "0",
    "bigint": "i",
    "smallint": "0",
    "boolean": "false",
    "timestamp with time zone": "now() - make_interval(secs => i)",
    "date": "date '1980-01-01'",
    "jsonb": "'{{}}'::jsonb",
    "json": "'{{}}'::json",
    "bytea": "decode(md5(i::text), 'hex')",
    "numeric": "0",
}


async def _seed_table(conn: asyncpg.Connection, table: str, n: int, values: dict[str, str]) -> None:
    """`n` rows into `table`: `values` gives SQL expressions of `i` for some columns,
    every other NOT NULL column without a default gets a filler of its type."""
    columns = await conn.fetch(
        "SELECT column_name, data_type, character_maximum_length, is_nullable, "
        "column_default FROM information_schema.columns WHERE table_name = $1",
        table,
    )
    exprs = dict(values)
    for c in columns:
        name = c["column_name"]
        if name in exprs or c["is_nullable"] == "YES" or c["column_default"] is not None:
            continue
        fill = _FILL.get(c["data_type"])
        if fill is None:
            raise BenchError(f"no filler for {table}.{name} ({c['data_type']})")
        exprs[name] = fill.format(n=c["character_maximum_length"] or 255)
    names = ", ".join(f'"{k}"' for k in exprs)
    await conn.execute(
        f"INSERT INTO {table} ({names}) SELECT {', '.join(exprs.values())} "  # noqa: S608
        f"FROM generate_series(1, {n}) AS i"
    )


async def seed(database_url: str, venue_id: str) -> float:
    """The rows; seconds it took."""
    started = time.monotonic()
    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    v = venue_id.replace("'", "")
    subject = "'sub_seed_' || i"
    try:
        await _seed_table(conn, "auth_subject", RESIDENTS, {"id": subject})
        await _seed_table(
            conn, "auth_account", RESIDENTS, {"id": "'acc_seed_' || i", "subject_id": subject}
        )
        await _seed_table(
            conn, "codes_subject", RESIDENTS, {"subject_id": subject, "handle": "i + 1000000000000"}
        )
        await _seed_table(conn, "codes_health_status", RESIDENTS,
                          {"subject_id": subject, "status": "'green'", "version": "1"})  # fmt: skip
        await _seed_table(conn, "venues_presence", RESIDENTS,
                          {"venue_id": f"'{v}'", "subject_id": subject})  # fmt: skip
        await _seed_table(conn, "venues_entry", ENTRIES, {
            "venue_id": f"'{v}'", "gate_id": "'gate_seed_' || (i % 50)",
            "scan_id": "'seed-' || i", "subject_id": "'sub_seed_' || (i % 100000)",
            "code_id": "md5(i::text)", "direction": "'in'", "decision": "'admit'",
            "reason": "'ok'", "body_hash": "md5(i::text)",
        })  # fmt: skip
        await _seed_table(conn, "venues_admission", ENTRIES, {
            "key": f"'{v}/' || md5(i::text)", "venue_id": f"'{v}'",
            "gate_id": "'gate_seed_' || (i % 50)", "scan_id": "'seed-' || i",
        })  # fmt: skip
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.monotonic() - started


def run(opts: BenchOptions) -> Report:
    if not opts.real:
        raise NeedsReal("bigdb")
    with ExitStack() as stack:
        empty = stack.enter_context(Server.suishen(opts, seed_demo=True))
        big = stack.enter_context(Server.suishen(opts, seed_demo=True, instance="big"))
        targets = {"empty": set_up(empty), "1M entries": set_up(big)}
        venue = asyncio.run(_venue_of(big.env["DATABASE_URL"]))
        seconds = asyncio.run(seed(big.env["DATABASE_URL"], venue))
        seen: dict[str, float] = {}

        def scans(label: str, t: Target) -> WrkResult:
            result = measure_scans(
                opts, t.server, "/v1/gates/scan", t.fresh().gate, t, seen.get(label, 1500.0)
            )
            seen[label] = max(seen.get(label, 0.0), result.rps)
            return result

        def issue(t: Target) -> WrkResult:
            return drive(t.server, opts, "/v1/codes/me", headers=t.fresh().residents[0])

        runs: dict[str, Callable[[], WrkResult]] = {}
        for label, t in targets.items():
            runs[f"gates/scan {label}"] = functools.partial(scans, label, t)
            runs[f"codes/me {label}"] = functools.partial(issue, t)
        results = rounds_of(runs, opts.rounds, tolerate=0.005)
    rows = {label: median_cpu(rs) for label, rs in results.items()}
    notes = [
        f"seeded {ENTRIES:,} entries and admissions, {RESIDENTS:,} residents in {seconds:.0f} s"
    ]
    for path in ("gates/scan", "codes/me"):
        a, b = rows[f"{path} empty"].cpu_us or 0.0, rows[f"{path} 1M entries"].cpu_us or 0.0
        notes.append(f"{path}: {a:.0f} us empty, {b:.0f} us with the rows (x{b / a:.2f})")
    return Report(
        title=f"bigdb: cost per request, empty vs 1M stored entries ({opts.backend_name})",
        rows=[Row(label, r) for label, r in rows.items()],
        notes=notes,
    )


async def _venue_of(database_url: str) -> str:
    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        venue: str = await conn.fetchval(
            "SELECT id FROM venues_venue WHERE name = 'bench hall' ORDER BY created_at LIMIT 1"
        )
    finally:
        await conn.close()
    return venue
