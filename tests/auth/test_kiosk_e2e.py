"""A kiosk against a real server process: ID card + OTP, the delegated token, a printed card
whose PDF's QR verifies at two verifiers again and again with the current colour."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.auth.helpers import KIOSK_LOCATION, pdf_qr
from tests.conftest import ServerProcess, server_env
from tests.factories import unique_phone, valid_id_number

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def cli_client(settings: Settings, *args: str) -> dict[str, Any]:
    made = subprocess.run(
        [sys.executable, "-m", "app.cli", "clients", "create", *args, "--json"],
        cwd=REPO,
        env=server_env(settings),
        capture_output=True,
        text=True,
        check=True,
    )
    creds: dict[str, Any] = json.loads(made.stdout)
    return creds


def token_of(http: httpx.Client, creds: dict[str, Any]) -> dict[str, str]:
    response = http.post(
        "/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_a_kiosk_identifies_a_resident_and_prints_a_card_that_verifies_anywhere(
    start_server: Callable[..., ServerProcess], settings: Settings
) -> None:
    # The resident logs in and then walks to the kiosk within the same minute.
    server = start_server(SUISHEN_OTP_PER_PHONE_MINUTE="5")
    kiosk_creds = cli_client(settings, "--kind", "kiosk", "--location", KIOSK_LOCATION)
    assert kiosk_creds["location"] == KIOSK_LOCATION
    phone, id_number = unique_phone(), valid_id_number()
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        kiosk = token_of(http, kiosk_creds)
        gate_a = token_of(http, cli_client(settings, "--kind", "authority"))
        gate_b = token_of(http, cli_client(settings, "--kind", "authority"))
        code = http.post("/v1/auth/otp", json={"phone": phone}).json()["debug_code"]
        login = http.post("/v1/auth/login", json={"phone": phone, "otp": code}).json()
        app = {"Authorization": f"Bearer {login['access_token']}"}
        bound = http.put(
            "/v1/residents/me/identity",
            json={"name": "何奶奶", "id_number": id_number},
            headers=app,
        )
        assert bound.status_code == 200, bound.text
        subject_id = bound.json()["subject_id"]

        wrong = http.post(
            "/v1/kiosk/sessions", json={"name": "何爷爷", "id_number": id_number}, headers=kiosk
        )
        unknown = http.post(
            "/v1/kiosk/sessions",
            json={"name": "何奶奶", "id_number": valid_id_number()},
            headers=kiosk,
        )
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json()["code"] == unknown.json()["code"] == "identification_failed"
        assert wrong.json()["detail"] == unknown.json()["detail"]
        started = http.post(
            "/v1/kiosk/sessions", json={"name": "何奶奶", "id_number": id_number}, headers=kiosk
        )
        assert started.status_code == 201, started.text
        session = started.json()
        confirmed = http.post(
            f"/v1/kiosk/sessions/{session['session_id']}/confirm",
            json={"otp": session["debug_code"]},
            headers=kiosk,
        )
        assert confirmed.status_code == 200, confirmed.text
        acting = {"Authorization": f"Bearer {confirmed.json()['access_token']}"}
        assert http.get("/v1/residents/me", headers=acting).json()["subject_id"] == subject_id

        first = http.post("/v1/codes/printed", json={}, headers=acting)
        assert first.status_code == 201, first.text
        pdf = http.get("/v1/codes/printed-code.pdf", headers=acting)
        assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
        card = pdf_qr(pdf.content)

        def seen(by: dict[str, str], shown: str) -> dict[str, Any]:
            verdict: dict[str, Any] = http.post(
                "/v1/codes/verify", json={"code": shown}, headers=by
            ).json()
            return verdict

        for by in (gate_a, gate_b, gate_a, gate_b):
            verdict = seen(by, card)
            assert (verdict["valid"], verdict["kind"]) == (True, "printed"), verdict
            assert verdict["subject"]["status"] == "green"
            assert verdict["code_id"] == first.json()["code_id"]
        red = http.put(
            f"/v1/health-status/{subject_id}",
            json={"status": "red", "reason": "positive test"},
            headers=gate_a,
        )
        assert red.status_code == 200, red.text
        assert seen(gate_b, card)["subject"]["status"] == "red"

        second = http.post("/v1/codes/printed", json={}, headers=acting)
        assert second.status_code == 201, second.text
        for by in (gate_a, gate_b):
            assert seen(by, card)["reason"] == "code_revoked"
        assert seen(gate_a, second.json()["code"])["valid"] is True

        ended = http.delete(f"/v1/kiosk/sessions/{session['session_id']}", headers=kiosk)
        assert ended.status_code == 200, ended.text
        assert http.get("/v1/residents/me", headers=acting).status_code == 401
        assert http.get("/v1/residents/me", headers=app).status_code == 200
    log = server.log()
    for secret in ("何奶奶", id_number, phone[3:]):
        assert secret not in log
