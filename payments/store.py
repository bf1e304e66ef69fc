"""The writes every payments change shares (ledger transfers, outbox events, new ids) and
the hand-written SQL the hot paths use instead of the ORM: rows by id (`by_id`), multi-row
INSERTs (`insert_rows`, `inserted`), and writes sent together (`writes_together`).

Transfers and events are written inside the caller's transaction, so a change, its ledger
postings and its webhook events commit together or not at all. The SQL here runs on SQLite
and PostgreSQL alike (`app.db` makes the parameter markers); for these small rows the ORM's
query and model building, and one round trip per statement, cost more CPU than the
database's work (issue 11).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import DoesNotExist
from tortoise.models import Model

from app.db import sql_for
from payments import ledger
from payments.models import Bill, Encounter, LedgerTransfer
from payments.states import OutboxStatus

M = TypeVar("M", bound=Model)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


async def post_transfer(
    transfer: ledger.Transfer, *, hospital_id: str, now: datetime, fresh: bool = False
) -> bool:
    """Store a balanced transfer once; False when its key was posted before.

    Callers hold the lock of the object the key belongs to, so the existence check does
    not race; the unique key is the last line of defence. `fresh`: the caller's own state
    check under that lock already proves the key new (settlement, a collection's answer),
    so the INSERT is plain (a duplicate fails loudly) and may be sent with the writes
    around it (`writes_together`).
    """
    if not transfer.postings:
        return False
    conn = connection()
    head = [transfer.key, transfer.kind, hospital_id, now]
    skip = "" if fresh else _SKIP_POSTED
    # A key posted before makes the INSERT add no row (one statement for check and write);
    # `fresh` keys take no such pass, so a duplicate still fails loudly on the unique key.
    if conn.capabilities.dialect == "postgres":
        # The transfer and its entries in one statement, the entries taking its new id.
        entries = _entries_template(len(transfer.postings))
        legs = [v for p in transfer.postings for v in (p.account, p.amount_fen)]
        parts = _together.get()
        if parts is not None and fresh:
            parts.append(_Part(_TRANSFER_SQL.replace("{skip}", skip), head))
            parts.append(_Part(entries, legs, ref=len(parts) - 1))
            return True
        transfer_sql = _TRANSFER_SQL.replace("{skip}", skip)
        sql = f"WITH t AS ({transfer_sql}) {entries.replace('{ref}', 't')} RETURNING 1"
        rows = await conn.execute_query_dict(sql_for(conn, sql, len(head) + len(legs)), head + legs)
        return bool(rows)
    sql = sql_for(conn, _TRANSFER_SQL.replace("{skip}", skip), 4)
    rows = await conn.execute_query_dict(sql, head)
    if not rows:
        return False
    transfer_id = rows[0]["id"]
    await insert_rows(
        conn,
        "payments_ledger_entries",
        ("transfer_id", "account", "amount_fen", "created_at"),
        [(transfer_id, p.account, p.amount_fen, now) for p in transfer.postings],
    )
    return True


_TRANSFER_SQL = (
    "INSERT INTO payments_ledger_transfers (key, kind, hospital_id, created_at) "
    "VALUES ({}, {}, {}, {}){skip} RETURNING id, created_at"
)
_SKIP_POSTED = " ON CONFLICT (key) DO NOTHING"


@lru_cache(maxsize=16)
def _entries_template(n: int) -> str:
    """PostgreSQL: a transfer's `n` entries, taking its id from the statement named `ref`."""
    values = ", ".join(["({}::text, {}::bigint)"] * n)
    head = "INSERT INTO payments_ledger_entries (transfer_id, account, amount_fen, created_at) "
    pick = "SELECT {ref}.id, v.account, v.amount_fen, {ref}.created_at FROM {ref}, "
    return f"{head}{pick}(VALUES {values}) AS v(account, amount_fen)"


# -- writes sent together ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    body: str  # one INSERT or UPDATE, `{}` for its parameters, `{ref}` for the part it reads
    args: list[Any]
    ref: int | None = None


_together: ContextVar[list[_Part] | None] = ContextVar("payments_writes_together", default=None)


@asynccontextmanager
async def writes_together() -> AsyncIterator[None]:
    """Inside (and inside a transaction): the INSERTs and UPDATEs made through this module
    whose answer nobody reads go to PostgreSQL as one statement when the block ends, a WITH
    of data-modifying statements (one round trip instead of one per write; foreign keys are
    checked at its end). Nothing inside may read what they write: that waits for the end.
    SQLite runs each at once (no round trips to save in-process)."""
    conn = connection()
    if conn.capabilities.dialect != "postgres":
        yield
        return
    parts: list[_Part] = []
    token = _together.set(parts)
    try:
        yield
    finally:
        _together.reset(token)
    if parts:
        await _send_together(conn, parts)


async def _send_together(conn: BaseDBAsyncClient, parts: list[_Part]) -> None:
    bodies: list[str] = []
    args: list[Any] = []
    for n, part in enumerate(parts):
        marks = [f"${i}" for i in range(len(args) + 1, len(args) + len(part.args) + 1)]
        ref = f"w{part.ref}" if part.ref is not None else ""
        bodies.append(f"w{n} AS ({part.body.format(*marks, ref=ref)})")
        args += part.args
    await conn.execute_query(f"WITH {', '.join(bodies)} SELECT 1", args)


async def write(template: str, args: Sequence[Any]) -> None:
    """One INSERT or UPDATE (`{}` marking its parameters) whose answer is not read: now, or
    with the others when inside `writes_together`."""
    parts = _together.get()
    if parts is not None:
        parts.append(_Part(template, list(args)))
        return
    conn = connection()
    await conn.execute_query(sql_for(conn, template, len(args)), list(args))


def connection() -> BaseDBAsyncClient:
    """The payments connection: the current transaction's when one is open."""
    return LedgerTransfer._meta.db


async def insert_rows(
    conn: BaseDBAsyncClient, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """One multi-row INSERT (the ORM's bulk_create sends one statement per row on
    PostgreSQL). Values go as the driver takes them: JSON as text, times as datetimes."""
    if not rows:
        return
    template = _insert_template(table, tuple(columns), len(rows))
    values = [value for row in rows for value in row]
    parts = _together.get()
    if parts is not None:
        parts.append(_Part(template, values))
        return
    await conn.execute_query(sql_for(conn, template, len(values)), values)


async def inserted(model: type[M], values: dict[str, Any]) -> M:
    """A new row of `model` from every column's value, and its instance (the ORM's create
    without its per-call query building)."""
    await insert_rows(connection(), model._meta.db_table, tuple(values), [tuple(values.values())])
    row: M = loaded(model, values)
    return row


@lru_cache(maxsize=64)
def _insert_template(table: str, columns: tuple[str, ...], n_rows: int) -> str:
    # Table and columns are this module's callers' constants, never request data.
    row = "(" + ", ".join(["{}"] * len(columns)) + ")"
    names, values = ", ".join(columns), ", ".join([row] * n_rows)
    return f"INSERT INTO {table} ({names}) VALUES {values}"  # noqa: S608


async def by_id(model: type[M], row_id: str, *, lock: bool = False) -> M:
    """The row of `model` with this id (`get(id=...)` without the ORM's query building),
    with `lock` locked until the transaction ends (on PostgreSQL; SQLite runs one writer at
    a time). DoesNotExist as `get` raises it."""
    conn = connection()
    sql = _by_id_sql(model._meta.db_table, lock and conn.capabilities.dialect == "postgres")
    rows = await conn.execute_query_dict(sql_for(conn, sql, 1), [row_id])
    if not rows:
        raise DoesNotExist(model)
    row: M = loaded(model, rows[0])
    return row


@lru_cache(maxsize=32)
def _by_id_sql(table: str, for_update: bool) -> str:
    lock = " FOR UPDATE" if for_update else ""
    return f"SELECT * FROM {table} WHERE id = {{}}{lock}"  # noqa: S608 (a model's table)


def as_json(value: Any) -> str:
    """A JSON column's value for hand-written SQL (the text both databases parse)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loaded(model: type[Model], row: dict[str, Any]) -> Any:
    """A model instance from a hand-written SELECT of all its columns, converted as the
    ORM converts what it reads (and known to be stored, so `save` updates it)."""
    return model._init_from_db(**row)


async def emit(hospital_id: str, event_type: str, data: dict[str, Any], now: datetime) -> None:
    """Write a webhook event to the outbox (inside the transaction of the change)."""
    await emit_all(hospital_id, [(event_type, data)], now)


async def emit_all(
    hospital_id: str, events: Sequence[tuple[str, dict[str, Any]]], now: datetime
) -> None:
    """Write events to the outbox in one statement, in this order (their delivery order
    among events due at the same moment)."""
    rows = []
    for event_type, data in events:
        event_id = new_id("evt")
        payload = {"id": event_id, "type": event_type, "created_at": now.isoformat(), "data": data}
        rows.append((event_id, hospital_id, event_type, as_json(payload), _PENDING, 0, now, now))
    await insert_rows(connection(), "payments_outbox", _OUTBOX_COLUMNS, rows)


_OUTBOX_COLUMNS = (
    "id",
    "hospital_id",
    "type",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
_PENDING = OutboxStatus.PENDING.value


def settlement_event(encounter: Encounter, bill: Bill) -> dict[str, Any]:
    """The data of `encounter.settled`."""
    return {
        "encounter_id": encounter.id,
        "bill_id": bill.id,
        "department": encounter.department,
        "total_fen": bill.total_fen,
        "insurance_fen": bill.insurance_fen,
        "self_pay_fen": bill.self_pay_fen,
        "closed_by": encounter.closed_by,
    }


def bill_event(bill: Bill) -> dict[str, Any]:
    """The data of `bill.paid` and `bill.overdue`."""
    return {
        "bill_id": bill.id,
        "encounter_id": bill.encounter_id,
        "total_fen": bill.total_fen,
        "self_pay_fen": bill.self_pay_fen,
        "status": str(bill.status),
    }
