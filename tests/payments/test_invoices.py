"""Medical e-invoices: issued once at settlement, signed with the hospital's key, read as
JSON and PDF, verified publicly from the QR code, reversed in red after a refund."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pypdf
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from app.context import AppContext
from payments import invoice_signing
from payments.invoice_pdf import capital_amount
from payments.models import Invoice
from tests.factories import Resident, assert_problem, decode_qr, pdf_text, resident
from tests.payments.helpers import (
    Hospital,
    charge,
    check_books,
    close,
    hospital,
    item,
    open_encounter,
    patient,
    refund,
)


async def settled_bill(
    client: httpx.AsyncClient, ctx: AppContext, *, items: list[dict[str, Any]] | None = None
) -> tuple[Hospital, Resident, dict[str, Any], str]:
    """A hospital, a patient, and a settled encounter: (hospital, patient, encounter, bill id)."""
    where = await hospital(client, ctx, name="复旦大学附属中山医院")
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person, department="心内科")
    lines = items or [item(12_000, "A", quantity=2), item(3_050, "C")]
    charged = await charge(client, where, encounter["id"], lines, charge_id="c-1")
    assert charged.status_code == 201, charged.text
    closed = await close(client, where, encounter["id"])
    assert closed.status_code == 200, closed.text
    return where, person, encounter, closed.json()["bill_id"]


def es256_valid(jwk: dict[str, str], content: dict[str, Any], signature: str) -> bool:
    """An independent ES256 check: the JWK's point, the canonical JSON, r || s."""

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    point = ec.EllipticCurvePublicNumbers(
        int.from_bytes(unb64(jwk["x"]), "big"),
        int.from_bytes(unb64(jwk["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()
    raw = unb64(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    signed = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        point.verify(der, signed.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


async def test_settlement_issues_one_signed_invoice_with_the_split_by_payer(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where, person, encounter, bill_id = await settled_bill(client, ctx)
    assert await Invoice.filter(bill_id=bill_id).count() == 1  # issued with the settlement
    first = await client.get(f"/v1/bills/{bill_id}/invoice", headers=person.headers)
    assert first.status_code == 200, first.text
    again = await client.get(f"/v1/bills/{bill_id}/invoice", headers=where.headers)
    assert again.json()["invoice"] == first.json()["invoice"]
    assert await Invoice.filter(bill_id=bill_id).count() == 1
    invoice = first.json()["invoice"]
    me = (await client.get("/v1/residents/me", headers=person.headers)).json()
    assert invoice["kind"] == "blue" and len(invoice["number"]) == 10
    assert invoice["hospital"]["name"] == "复旦大学附属中山医院"
    assert invoice["department"] == "心内科" and invoice["encounter_id"] == encounter["id"]
    assert invoice["patient"]["masked_name"] == me["masked_name"] and invoice["payer"] is None
    assert [line["amount_fen"] for line in invoice["lines"]] == [24_000, 3_050]
    assert invoice["total_fen"] == 27_050
    split = invoice["split"]
    payers = ("fund_fen", "current_account_fen", "accumulated_account_fen", "cash_fen")
    assert sum(split[p] for p in payers) == 27_050
    bill = (await client.get(f"/v1/bills/{bill_id}", headers=person.headers)).json()
    assert split["cash_fen"] == bill["self_pay_fen"]
    assert split["self_paid_items_fen"] >= 3_050  # the class C line is self-paid
    # Anyone can check the signature with the hospital's published key.
    key = await client.get(f"/v1/hospitals/{where.id}/invoice-key")
    assert key.status_code == 200 and key.json()["alg"] == "ES256"
    assert invoice["signature"]["kid"] == key.json()["kid"]
    assert es256_valid(key.json(), invoice["content"], invoice["signature"]["value"])
    assert invoice["content"]["number"] == invoice["number"]
    altered = {**invoice["content"], "total_fen": 1}
    assert not es256_valid(key.json(), altered, invoice["signature"]["value"])
    await check_books()


async def test_each_hospital_signs_with_its_own_key(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    _, _, _, bill_id = await settled_bill(client, ctx)
    other = await hospital(client, ctx, name="华山医院")
    row = await Invoice.get(bill_id=bill_id)
    theirs = (await client.get(f"/v1/hospitals/{other.id}/invoice-key")).json()
    ours = (await client.get(f"/v1/hospitals/{row.hospital_id}/invoice-key")).json()
    assert (theirs["x"], theirs["y"]) != (ours["x"], ours["y"])
    assert not es256_valid(theirs, row.content, row.signature)
    missing = await client.get("/v1/hospitals/hosp_nobody/invoice-key")
    assert_problem(missing, 404, "not_found")


async def test_invoice_pdf_shows_chinese_text_and_a_qr_that_verifies(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    _, person, _, bill_id = await settled_bill(client, ctx)
    invoice = (await client.get(f"/v1/bills/{bill_id}/invoice", headers=person.headers)).json()[
        "invoice"
    ]
    response = await client.get(
        f"/v1/bills/{bill_id}/invoice", headers={**person.headers, "Accept": "application/pdf"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    text = pdf_text(response.content)
    for expected in (
        "上海市医疗门诊收费票据（电子）",
        "复旦大学附属中山医院",
        "心内科",
        invoice["number"],
        invoice["check_code"],
        invoice["patient"]["masked_name"],
        "贰佰柒拾元伍角",  # 27,050 fen in capitals
        "医保统筹基金支付",
        "个人现金支付",
    ):
        assert expected in text, expected
    [image] = pypdf.PdfReader(io.BytesIO(response.content)).pages[0].images
    png = io.BytesIO()
    image.image.save(png, format="PNG")  # type: ignore[union-attr]
    url = decode_qr(png.getvalue())
    assert url == invoice["verify_url"]
    target = urlsplit(url)
    verified = await client.get(f"{target.path}?{target.query}")  # no credentials at all
    assert verified.status_code == 200, verified.text
    assert verified.json()["signature_valid"] is True
    assert verified.json()["status"] == "valid"
    as_query = await client.get(f"/v1/bills/{bill_id}/invoice?format=pdf", headers=person.headers)
    assert as_query.content[:5] == b"%PDF-"


async def test_public_verification_shows_only_what_the_paper_shows(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    _, person, _, bill_id = await settled_bill(client, ctx)
    invoice = (await client.get(f"/v1/bills/{bill_id}/invoice", headers=person.headers)).json()[
        "invoice"
    ]
    params = {"number": invoice["number"], "check": invoice["check_code"]}
    verified = (await client.get("/v1/invoices/verify", params=params)).json()
    assert verified["total_fen"] == invoice["total_fen"]
    assert verified["patient"] == invoice["patient"]
    text = json.dumps(verified, ensure_ascii=False)
    for secret in (bill_id, invoice["encounter_id"], person.subject_id or "-", person.phone):
        assert secret not in text
    wrong = await client.get("/v1/invoices/verify", params={**params, "check": "AAAAAA"})
    assert_problem(wrong, 404, "not_found")
    unknown = await client.get("/v1/invoices/verify", params={**params, "number": "9999999999"})
    assert_problem(unknown, 404, "not_found")
    malformed = await client.get("/v1/invoices/verify", params={**params, "number": "12"})
    assert_problem(malformed, 422, "validation_failed")


async def test_public_verification_is_rate_limited_per_address(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    params = {"number": "0000000001", "check": "AAAAAA"}
    answers = [
        (await client.get("/v1/invoices/verify", params=params)).status_code for _ in range(31)
    ]
    assert answers[:30] == [404] * 30
    limited = await client.get("/v1/invoices/verify", params=params)
    body = assert_problem(limited, 429, "rate_limited")
    assert body["retry_after"] >= 1


async def test_a_tampered_invoice_no_longer_verifies(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    _, _, _, bill_id = await settled_bill(client, ctx)
    row = await Invoice.get(bill_id=bill_id)
    row.content = {**row.content, "total_fen": row.content["total_fen"] - 100}
    await row.save(update_fields=["content"])
    number = f"{row.id:010d}"
    verified = await client.get(
        "/v1/invoices/verify", params={"number": number, "check": row.check_code}
    )
    assert verified.json()["signature_valid"] is False


async def test_refund_after_settlement_issues_a_red_invoice_referring_to_the_original(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where, person, encounter, bill_id = await settled_bill(client, ctx)
    refunded = await refund(client, where, encounter["id"], "c-1", 5_000, refund_id="r-1")
    assert refunded.status_code == 201, refunded.text
    body = (await client.get(f"/v1/bills/{bill_id}/invoice", headers=person.headers)).json()
    blue, [red] = body["invoice"], body["red_invoices"]
    assert red["kind"] == "red" and red["original"] == {
        "code": blue["code"],
        "number": blue["number"],
    }
    assert red["total_fen"] == -5_000 and red["refund_id"] == "r-1"
    payers = ("fund_fen", "current_account_fen", "accumulated_account_fen", "cash_fen")
    assert sum(red["split"][p] for p in payers) == -5_000
    assert red["split"]["fund_fen"] == -refunded.json()["insurance_fen"]
    assert red["split"]["cash_fen"] == -refunded.json()["self_pay_fen"]
    # The same refund retried issues nothing more.
    again = await refund(client, where, encounter["id"], "c-1", 5_000, refund_id="r-1")
    assert again.status_code == 200
    assert await Invoice.filter(bill_id=bill_id).count() == 2
    verified = await client.get(
        "/v1/invoices/verify", params={"number": blue["number"], "check": blue["check_code"]}
    )
    assert verified.json()["status"] == "partly_reversed"
    assert verified.json()["reversed_by"] == [{"code": red["code"], "number": red["number"]}]
    red_pdf = await client.get(
        f"/v1/bills/{bill_id}/invoices/{red['number']}?format=pdf", headers=person.headers
    )
    text = pdf_text(red_pdf.content)
    assert "红字冲红" in text and blue["number"] in text and "-50.00" in text
    # The hospital's day lists both, and they net to what was finally billed.
    day = datetime.fromisoformat(blue["issued_at"]).astimezone(UTC).date().isoformat()
    listed = (await client.get("/v1/hospitals/me/invoices", params={"date": day},
                               headers=where.headers)).json()  # fmt: skip
    assert [i["number"] for i in listed["invoices"]] == [blue["number"], red["number"]]
    assert listed["blue_total_fen"] + listed["red_total_fen"] == 27_050 - 5_000
    assert listed["invoices"][1]["original_number"] == blue["number"]
    await check_books()


async def test_refund_of_the_whole_bill_shows_it_reversed(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where, person, encounter, bill_id = await settled_bill(client, ctx, items=[item(8_000)])
    assert (await refund(client, where, encounter["id"], "c-1", 8_000)).status_code == 201
    blue = (await client.get(f"/v1/bills/{bill_id}/invoice", headers=person.headers)).json()[
        "invoice"
    ]
    verified = await client.get(
        "/v1/invoices/verify", params={"number": blue["number"], "check": blue["check_code"]}
    )
    assert verified.json()["status"] == "reversed"


async def test_an_invoice_before_settlement_is_bill_not_settled(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(1_000)])
    response = await client.get(f"/v1/encounters/{encounter['id']}/invoice", headers=where.headers)
    body = assert_problem(response, 409, "bill_not_settled")
    assert body["encounter_status"] == "open"


async def test_invoices_are_private_to_patient_payer_and_hospital(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    _, _, _, bill_id = await settled_bill(client, ctx)
    stranger = await resident(client, ctx)
    other_hospital = await hospital(client, ctx, name="华山医院")
    for headers in (stranger.headers, other_hospital.headers):
        response = await client.get(f"/v1/bills/{bill_id}/invoice", headers=headers)
        assert_problem(response, 404, "not_found")
    anonymous = await client.get(f"/v1/bills/{bill_id}/invoice")
    assert_problem(anonymous, 401, "unauthorized")


@pytest.mark.parametrize(
    ("fen", "words"),
    [
        (0, "零元整"),
        (5, "伍分"),
        (100, "壹元整"),
        (27_050, "贰佰柒拾元伍角"),
        (10_010_000, "壹拾万零壹佰元整"),
        (123_456_789, "壹佰贰拾叁万肆仟伍佰陆拾柒元捌角玖分"),
        (10_000_000_100, "壹亿零壹元整"),
        (-5_000, "负伍拾元整"),
    ],
)
def test_amounts_in_capitals_as_the_paper_writes_them(fen: int, words: str) -> None:
    assert capital_amount(fen) == words


def test_signature_verification_pins_es256_and_the_content() -> None:
    key = invoice_signing.hospital_key(b"k" * 32, "hosp_a")
    content = {"number": "0000000001", "total_fen": 100}
    signature = invoice_signing.sign(key, content)
    public = key.public_key()
    assert invoice_signing.verify(public, content, signature, "ES256")
    assert not invoice_signing.verify(public, content, signature, "none")
    assert not invoice_signing.verify(public, content, signature, "ES384")
    assert not invoice_signing.verify(public, {**content, "total_fen": 101}, signature, "ES256")
    assert not invoice_signing.verify(public, content, signature[:-4], "ES256")
    other = invoice_signing.hospital_key(b"k" * 32, "hosp_b").public_key()
    assert not invoice_signing.verify(other, content, signature, "ES256")
    # Derived, not stored: the same secret and hospital give the same key every time.
    again = invoice_signing.hospital_key(b"k" * 32, "hosp_a").public_key()
    assert again.public_numbers() == public.public_numbers()
