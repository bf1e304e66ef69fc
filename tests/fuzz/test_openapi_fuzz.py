"""Schemathesis against a real server, with a token of every kind (issue 9).

The server's own /openapi.json drives it. Each kind of caller fuzzes the operations its
token is for (and anonymous callers the public ones), with a bounded number of examples per
operation and a fixed seed so CI stays within its budget and repeats itself. It must find
no server error, no response that breaks the schema, no undocumented status or content
type, and no schema-valid request refused for its form (`tests/fuzz/checks.py`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.conftest import REPO, ServerProcess, server_env
from tests.factories import unique_phone, valid_id_number

pytestmark = [pytest.mark.e2e, pytest.mark.real_only]

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "valid_request_accepted",
    ]
)
# Which caller each `Requires: ...` line of the document is fuzzed with.
CALLER_OF_SCOPE = {
    "resident": "resident",
    "resident or admin": "resident",
    "admin": "admin",
    "status:write": "authority",
    "venues:manage": "operator",
    "gates:scan": "gate",
    "codes:verify": "gate",
    "codes:verify or gates:scan": "gate",
    "encounters:write": "hospital",
    "kiosk:sessions": "kiosk",
}


def _token(base: str, creds: dict[str, Any]) -> str:
    response = httpx.post(
        f"{base}/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _resident_token(base: str) -> str:
    phone = unique_phone()
    sent = httpx.post(f"{base}/v1/auth/otp", json={"phone": phone}).json()
    login = httpx.post(f"{base}/v1/auth/login", json={"phone": phone, "otp": sent["debug_code"]})
    token: str = login.json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    bound = httpx.put(
        f"{base}/v1/residents/me/identity",
        headers=auth,
        json={"name": "张三明", "id_number": valid_id_number()},
    )
    assert bound.status_code == 200, bound.text
    enrolled = httpx.post(
        f"{base}/v1/credit/enroll", headers=auth, json={"payment_method": "pm_sandbox_ok"}
    )
    assert enrolled.status_code in (200, 201), enrolled.text
    return token


def callers(server: ServerProcess, settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """A bearer token of every kind, made the way an operator and a resident would, and the
    ids of the objects they own."""
    made = subprocess.run(
        [sys.executable, "-m", "app.cli", "clients", "create", "--kind", "admin", "--json"],
        cwd=REPO,
        env=server_env(settings),
        capture_output=True,
        text=True,
        check=True,
    )
    base = server.base_url
    admin = _token(base, json.loads(made.stdout))
    auth = {"Authorization": f"Bearer {admin}"}
    venue = httpx.post(
        f"{base}/v1/venues",
        headers=auth,
        json={"name": "Fuzz museum", "kind": "museum", "capacity": 50},
    ).json()
    hospital = httpx.post(f"{base}/v1/hospitals", headers=auth, json={"name": "Fuzz hospital"})
    tokens = {"admin": admin, "resident": _resident_token(base)}
    for kind, tenant in (("authority", None), ("operator", venue["id"])):
        created = httpx.post(
            f"{base}/v1/admin/clients", headers=auth, json={"kind": kind, "tenant_id": tenant}
        )
        assert created.status_code == 201, created.text
        tokens[kind] = _token(base, created.json())
    gate = httpx.post(
        f"{base}/v1/venues/{venue['id']}/gates",
        headers={"Authorization": f"Bearer {tokens['operator']}"},
        json={"name": "Fuzz gate", "direction": "both"},
    )
    assert gate.status_code == 201, gate.text
    tokens["gate"] = _token(base, gate.json())
    tokens["hospital"] = _token(base, hospital.json()["client"])
    kiosk = httpx.post(
        f"{base}/v1/admin/clients", headers=auth, json={"kind": "kiosk", "location": "Fuzz kiosk"}
    )
    assert kiosk.status_code == 201, kiosk.text
    tokens["kiosk"] = _token(base, kiosk.json())
    tokens["resident~logout"] = tokens["resident"]
    return tokens, {"venue_id": venue["id"]}


# Logging out ends the resident's token: fuzzed last, alone, so it ends nothing else.
LAST = {("/v1/auth/logout", "post"): "resident~logout"}


def split_by_caller(document: dict[str, Any], own: dict[str, str]) -> dict[str, dict[str, Any]]:
    """One copy of the document per caller, holding only the operations it is for; the
    path ids in `own` are pinned to the caller's own objects (a tenant-bound token can only
    reach its own venue), so requests get past the tenant check to the code behind it."""
    parts: dict[str, dict[str, Any]] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            needs = re.sub(r"^Requires: ", "", operation.get("description", "")) or None
            caller = "anonymous" if needs is None else CALLER_OF_SCOPE[needs]
            caller = LAST.get((path, method), caller)
            if caller in ("operator", "gate"):
                operation = json.loads(json.dumps(operation))
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "path" and parameter["name"] in own:
                        parameter["schema"] = {"type": "string", "enum": [own[parameter["name"]]]}
            part = parts.setdefault(caller, {**document, "paths": {}})
            part["paths"].setdefault(path, {})[method] = operation
    return parts


def fuzz(
    base: str, spec: Path, token: str | None, report: Path
) -> subprocess.CompletedProcess[str]:
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            str(spec),
            "--url",
            base,
            *headers,
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20261203",
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--suppress-health-check",
            "all",
            "--request-timeout",
            "10",
            "--report",
            "ndjson",
            "--report-dir",
            str(report),
        ],
        cwd=REPO,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.checks"},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_generated_requests_find_no_server_error_and_no_lie_in_the_schema(
    start_server: Callable[..., ServerProcess], settings: Settings, tmp_path: Path
) -> None:
    server = start_server(SMS_BACKEND="console")
    tokens, own = callers(server, settings)
    document = httpx.get(f"{server.base_url}/openapi.json").json()
    failed: list[str] = []
    for caller, part in sorted(split_by_caller(document, own).items()):
        spec = tmp_path / f"openapi-{caller}.json"
        spec.write_text(json.dumps(part))
        started = time.monotonic()
        result = fuzz(server.base_url, spec, tokens.get(caller), tmp_path / f"report-{caller}")
        lines = result.stdout.splitlines()
        summary = [line for line in lines if re.search(r"passed|failed|cases", line)]
        print(
            f"{caller}: {len(part['paths'])} paths, exit {result.returncode}, "
            f"{time.monotonic() - started:.0f}s; " + " | ".join(summary[-3:])
        )
        (tmp_path / f"st-{caller}.out").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            failed.append(f"--- {caller} ---\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    assert not failed, "\n".join(failed)
    errors = [line for line in server.log().splitlines() if '"level": "error"' in line]
    assert not errors, "\n".join(errors[:5])
