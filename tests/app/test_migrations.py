"""The migrations produce exactly the models' schema, on SQLite and on PostgreSQL; the
server refuses a database with unapplied migrations outside dev and `suishen migrate`
applies them."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.db import PendingMigrations, close_db, normalise_url, open_db, pending_migrations
from app.main import create_app
from app.settings import Settings
from tests.conftest import REPO, TEST_DATABASE_URL, Backend

MIGRATIONS_TABLE = "tortoise_migrations"


def _dsn(url: str) -> str:
    return normalise_url(url).replace("postgres://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    base, _, _ = normalise_url(url).rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def scratch_database(backend: Backend, tmp_path: Path) -> Iterator[str]:
    """An empty database of the backend's kind, created for the test and dropped after."""
    if not backend.is_real:
        yield f"sqlite://{tmp_path / 'scratch.db'}"
        return
    assert TEST_DATABASE_URL is not None
    name = normalise_url(TEST_DATABASE_URL).rpartition("/")[2] + "_schema_check"
    admin = _dsn(_with_database(TEST_DATABASE_URL, "postgres"))

    async def recreate(create: bool) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if create:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(recreate(True))
    try:
        yield _with_database(TEST_DATABASE_URL, name)
    finally:
        asyncio.run(recreate(False))


# -- schema introspection -------------------------------------------------------------


def sqlite_schema(path: str) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        tables = sorted(
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name <> ?",
                (MIGRATIONS_TABLE,),
            )
        )
        schema: dict[str, Any] = {}
        for table in tables:
            columns = {
                name: {"type": type_.upper(), "notnull": notnull, "default": default, "pk": pk}
                for _, name, type_, notnull, default, pk in conn.execute(
                    f'PRAGMA table_info("{table}")'
                )
            }
            indexes = set()
            for _, name, unique, origin, partial in conn.execute(f'PRAGMA index_list("{table}")'):
                cols = tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{name}")'))
                # SQLite names the indexes behind UNIQUE/PRIMARY KEY by position; only
                # explicitly created indexes have names the code chose.
                indexes.add((name if origin == "c" else origin, cols, unique, partial))
            foreign_keys = {
                (ref_table, from_col, to_col, on_update, on_delete)
                for _, _, ref_table, from_col, to_col, on_update, on_delete, _ in conn.execute(
                    f'PRAGMA foreign_key_list("{table}")'
                )
            }
            schema[table] = {"columns": columns, "indexes": indexes, "foreign_keys": foreign_keys}
        return schema
    finally:
        conn.close()


async def postgres_schema(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        schema: dict[str, Any] = {}

        def table(name: str) -> dict[str, Any]:
            found: dict[str, Any] = schema.setdefault(
                name, {"columns": {}, "indexes": set(), "constraints": set()}
            )
            return found

        columns = await conn.fetch(
            """
            SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default,
                   character_maximum_length, numeric_precision, numeric_scale,
                   datetime_precision
            FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name <> $1
            """,
            MIGRATIONS_TABLE,
        )
        for row in columns:
            found = dict(row.items())
            table_name, column = found.pop("table_name"), found.pop("column_name")
            table(table_name)["columns"][column] = found
        for row in await conn.fetch(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = 'public' AND tablename <> $1",
            MIGRATIONS_TABLE,
        ):
            table(row["tablename"])["indexes"].add((row["indexname"], row["indexdef"]))
        for row in await conn.fetch(
            """
            SELECT cls.relname AS table_name, con.conname, con.contype,
                   pg_get_constraintdef(con.oid) AS definition
            FROM pg_constraint con
            JOIN pg_class cls ON cls.oid = con.conrelid
            JOIN pg_namespace ns ON ns.oid = cls.relnamespace
            WHERE ns.nspname = 'public' AND cls.relname <> $1
            """,
            MIGRATIONS_TABLE,
        ):
            table(row["table_name"])["constraints"].add(
                (row["conname"], row["contype"], row["definition"])
            )
        return schema
    finally:
        await conn.close()


async def schema_of(url: str) -> dict[str, Any]:
    if url.startswith("sqlite://"):
        return sqlite_schema(url[len("sqlite://") :])
    found: dict[str, Any] = await postgres_schema(url)
    return found


async def generate_from_models(url: str) -> None:
    db = await open_db(Settings(app_env="test", database_url=url))
    try:
        await db.generate_schemas(safe=False)
    finally:
        await close_db(db)


def schema_differences(migrated: dict[str, Any], generated: dict[str, Any]) -> list[str]:
    """Every way the migrated schema differs from the models', one line each."""
    found = [f"table {t} only in the migrations" for t in sorted(set(migrated) - set(generated))]
    found += [
        f"table {t} missing from the migrations" for t in sorted(set(generated) - set(migrated))
    ]
    for table in sorted(set(migrated) & set(generated)):
        mig, gen = migrated[table], generated[table]
        for column in sorted(set(mig["columns"]) | set(gen["columns"])):
            a, b = mig["columns"].get(column), gen["columns"].get(column)
            if a != b:
                found.append(f"{table}.{column}: migrations {a}, models {b}")
        for part in sorted(set(gen) - {"columns"}):
            for item in sorted(map(repr, mig[part] - gen[part])):
                found.append(f"{table} {part}: only in the migrations: {item}")
            for item in sorted(map(repr, gen[part] - mig[part])):
                found.append(f"{table} {part}: missing from the migrations: {item}")
    return found


# -- the tests ------------------------------------------------------------------------


async def test_migrations_produce_exactly_the_models_schema(
    backend: Backend, scratch_database: str
) -> None:
    # `backend.database_url` was built by applying every migration to an empty database.
    await generate_from_models(scratch_database)
    migrated = await schema_of(backend.database_url)
    generated = await schema_of(scratch_database)
    assert generated, "the models define no tables at all"
    differences = schema_differences(migrated, generated)
    assert not differences, "\n".join(differences)


async def test_the_migrated_test_database_has_nothing_pending(backend: Backend) -> None:
    db = await open_db(Settings(app_env="test", database_url=backend.database_url))
    try:
        assert await pending_migrations(db) == []
    finally:
        await close_db(db)


async def test_server_refuses_a_database_with_unapplied_migrations_outside_dev(
    scratch_database: str, key_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(
        app_env="test", database_url=scratch_database, var_dir=tmp_path, key_dir=key_dir
    )
    app = create_app(settings)
    with pytest.raises(PendingMigrations, match=r"run `suishen migrate` first") as caught:
        async with app.router.lifespan_context(app):
            pass
    assert "core.0001_initial" in str(caught.value)


async def test_dev_applies_its_own_migrations_at_start(
    scratch_database: str, key_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(
        app_env="dev",
        database_url=scratch_database,
        var_dir=tmp_path,
        key_dir=key_dir,
        embedded_worker=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert await pending_migrations(app.state.db) == []


def test_cli_serve_refuses_then_migrate_applies_then_nothing_is_left(
    scratch_database: str, key_dir: Path, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "WORKERS")},
        "APP_ENV": "test",
        "DATABASE_URL": scratch_database,
        "VAR_DIR": str(tmp_path),
        "KEY_DIR": str(key_dir),
        "SMS_BACKEND": "sandbox",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = cli("serve", "--port", "1")
    assert refused.returncode == 2, refused.stderr
    assert "unapplied migrations" in refused.stderr and "suishen migrate" in refused.stderr
    applied = cli("migrate")
    assert applied.returncode == 0, applied.stderr
    assert "applied core.0001_initial" in applied.stdout
    again = cli("migrate")
    assert again.returncode == 0 and again.stdout.strip() == "nothing to apply"
