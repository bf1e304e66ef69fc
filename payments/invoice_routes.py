"""HTTP endpoints of e-invoices, credit limits and family credit, and their start-up (the
credit bureau runtime, the settlement hook): plugged into `payments/wiring.py`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.context import AppContext, app_context
from app.domain import Job
from app.errors import NotFound, RateLimited
from app.http import endpoint, json_response, read_json, read_query
from auth.api import require, scopes
from payments import credit, errors, family, invoices, settlement
from payments.credit_bureau import CreditRuntime
from payments.hospitals import hospital_of
from payments.invoice_signing import ALG, master_secret
from payments.models import Invoice
from payments.responses import bill_view_out
from payments.schemas import (
    BillInvoicesOut,
    CreditLimitOut,
    FamilyBillList,
    FamilyBillOut,
    InvoiceDayOut,
    InvoiceDayQuery,
    InvoiceOut,
    InvoiceQuery,
    InvoiceVerifyOut,
    InvoiceVerifyQuery,
    JwkOut,
    PayIn,
)


async def startup(ctx: AppContext) -> None:
    """The credit bureau (refused as sandbox in production), the invoice secret (made on a
    dev start, refused when missing in production), the settlement hook."""
    ctx.provide(CreditRuntime.from_settings(ctx.settings))
    master_secret(ctx)
    if family.on_bill_settled not in settlement.on_settled:
        settlement.on_settled.append(family.on_bill_settled)


jobs = [Job("payments-credit-review", 60, credit.review_due_limits)]


# -- invoices ---------------------------------------------------------------------------------


def invoice_out(ctx: AppContext, invoice: Invoice) -> InvoiceOut:
    content: dict[str, Any] = invoice.content
    base = ctx.settings.public_base_url.rstrip("/")
    return InvoiceOut.model_validate(
        {
            **content,
            "check_code": invoice.check_code,
            "verify_url": invoices.verify_url(ctx, invoice),
            "signature": {
                "alg": ALG,
                "kid": invoice.kid,
                "value": invoice.signature,
                "public_key_url": f"{base}/v1/hospitals/{invoice.hospital_id}/invoice-key",
            },
            "content": content,
        }
    )


async def _pdf(ctx: AppContext, invoice: Invoice) -> Response:
    # Imported on the first PDF, not at start: fpdf2 takes seconds to import on a busy
    # machine, and every worker process would pay it before serving anything.
    from app import pdf
    from payments import invoice_pdf

    zone = invoices.local_zone(ctx)
    url = invoices.verify_url(ctx, invoice)
    content = await pdf.build(
        lambda: invoice_pdf.draw_invoice(
            invoice.content, check_code=invoice.check_code, verify_url=url, zone=zone
        )
    )
    return pdf.pdf_response(content, f"invoice-{invoices.number_of(invoice)}.pdf")


def _wants_pdf(request: Request, query: InvoiceQuery) -> bool:
    if query.format is not None:
        return query.format == "pdf"
    return "application/pdf" in request.headers.get("accept", "")


@endpoint(
    summary="The bill's e-invoice (医疗收费电子票据) and its red (冲红) invoices; PDF with "
    "format=pdf or Accept: application/pdf (the blue invoice, or `red=<number>`)",
    query=InvoiceQuery,
    response=BillInvoicesOut,
    media_types=["application/pdf"],
    errors=[NotFound, errors.BillNotSettled],
    auth=scopes.RESIDENT,
)
async def bill_invoice(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, [scopes.RESIDENT, scopes.ENCOUNTERS_WRITE])
    query = read_query(request, InvoiceQuery)
    found = await invoices.invoices_of_bill(ctx, principal, request.path_params["bill_id"])
    return await _invoices_response(ctx, request, query, found)


@endpoint(
    summary="The hospital's view of an encounter's e-invoices (409 before settlement)",
    query=InvoiceQuery,
    response=BillInvoicesOut,
    media_types=["application/pdf"],
    errors=[NotFound, errors.BillNotSettled],
    auth=scopes.ENCOUNTERS_WRITE,
)
async def encounter_invoice(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.ENCOUNTERS_WRITE)
    query = read_query(request, InvoiceQuery)
    found = await invoices.invoices_of_encounter(
        ctx, principal, request.path_params["encounter_id"]
    )
    return await _invoices_response(ctx, request, query, found)


@endpoint(
    summary="One e-invoice of a bill by number, blue or red (JSON or PDF)",
    query=InvoiceQuery,
    response=InvoiceOut,
    media_types=["application/pdf"],
    errors=[NotFound, errors.BillNotSettled],
    auth=scopes.RESIDENT,
)
async def bill_invoice_by_number(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, [scopes.RESIDENT, scopes.ENCOUNTERS_WRITE])
    query = read_query(request, InvoiceQuery)
    found = await invoices.invoices_of_bill(ctx, principal, request.path_params["bill_id"])
    number = request.path_params["number"]
    chosen = [i for i in (found.blue, *found.red) if invoices.number_of(i) == number]
    if not chosen:
        raise NotFound("no such invoice on this bill")
    if _wants_pdf(request, query):
        return await _pdf(ctx, chosen[0])
    return json_response(invoice_out(ctx, chosen[0]))


async def _invoices_response(
    ctx: AppContext, request: Request, query: InvoiceQuery, found: invoices.BillInvoices
) -> Response:
    if _wants_pdf(request, query):
        return await _pdf(ctx, found.blue)
    return json_response(
        BillInvoicesOut(
            invoice=invoice_out(ctx, found.blue),
            red_invoices=[invoice_out(ctx, r) for r in found.red],
        )
    )


@endpoint(
    summary="The hospital's e-invoices issued on a UTC day (the statement's day), by number",
    query=InvoiceDayQuery,
    response=InvoiceDayOut,
    auth=scopes.ENCOUNTERS_WRITE,
)
async def invoices_of_day(request: Request) -> Response:
    principal = await require(request, scopes.ENCOUNTERS_WRITE)
    query = read_query(request, InvoiceDayQuery)
    day = await invoices.invoices_of_day(hospital_of(principal), query.date)
    return json_response(InvoiceDayOut.model_validate({"date": query.date, **asdict(day)}))


@endpoint(
    summary="Verify a paper e-invoice from its QR code: number and check code (anyone, "
    "rate-limited); answers only what the paper shows",
    query=InvoiceVerifyQuery,
    response=InvoiceVerifyOut,
    errors=[NotFound, RateLimited],
)
async def verify_invoice(request: Request) -> Response:
    ctx = app_context(request)
    query = read_query(request, InvoiceVerifyQuery)
    client_ip = request.client.host if request.client else ""
    found = await invoices.verify_public(ctx, query.number, query.check, client_ip)
    content: dict[str, Any] = found.invoice.content
    reversed_total = -sum(r.total_fen for r in found.reversed_by)
    if found.invoice.kind == invoices.InvoiceKind.RED:
        status = "red"
    elif not found.reversed_by:
        status = "valid"
    else:
        status = "reversed" if reversed_total >= found.invoice.total_fen else "partly_reversed"
    out = InvoiceVerifyOut(
        signature_valid=found.signature_valid,
        status=status,
        kind=content["kind"],
        code=content["code"],
        number=content["number"],
        issued_at=content["issued_at"],
        hospital_name=content["hospital"]["name"],
        department=content["department"],
        patient=content["patient"],
        lines=content["lines"],
        total_fen=content["total_fen"],
        split=content["split"],
        original=content.get("original"),
        reversed_by=[{"code": r.code, "number": invoices.number_of(r)} for r in found.reversed_by],
        kid=found.invoice.kid,
    )
    return json_response(out)


@endpoint(
    summary="The public key (JWK, ES256) a hospital signs its e-invoices with",
    response=JwkOut,
    errors=[NotFound],
)
async def invoice_key(request: Request) -> Response:
    ctx = app_context(request)
    jwk = await invoices.hospital_public_key(ctx, request.path_params["hospital_id"])
    return json_response(jwk.as_dict())


# -- credit limit and family ------------------------------------------------------------------


@endpoint(
    summary="Why the credit limit is what it is: score tier, limit, reasons, grace period",
    response=CreditLimitOut,
    errors=[errors.NotEnrolled],
    auth=scopes.RESIDENT,
)
async def credit_limit(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.RESIDENT)
    explained = await credit.explain_limit(ctx, principal)
    score, summary = explained.score, explained.summary
    return json_response(
        CreditLimitOut(
            tier=score.tier if score else None,
            score=score.score if score else None,
            limit_fen=summary.account.limit_fen,
            available_fen=summary.available_fen,
            status=summary.account.status,
            provisional=bool(score and score.pending),
            reasons=explained.reasons,
            grace_days=explained.grace_days,
            overdue_bill_ids=[b.id for b in explained.overdue_bills],
            checked_at=score.checked_at if score else None,
            next_check_at=score.next_check_at if score else None,
        )
    )


def family_bill_out(found: family.FamilyBill) -> FamilyBillOut:
    return FamilyBillOut(
        bill=bill_view_out(found.view),
        patient={"masked_name": found.patient_masked_name},
        payer={"masked_name": found.payer_masked_name},
        on_family_credit=found.patient_subject_id != found.view.bill.subject_id,
    )


@endpoint(
    summary="The family's bills: dependents' treatment and relatives' bills, with patient "
    "and payer",
    response=FamilyBillList,
    auth=scopes.RESIDENT,
)
async def list_family_bills(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.RESIDENT)
    found = await family.family_bills(ctx, principal)
    return json_response(FamilyBillList(bills=[family_bill_out(f) for f in found]))


@endpoint(
    summary="Repay a relative's bill (your own credit account's method, or the one given)",
    body=PayIn,
    response=FamilyBillOut,
    errors=[
        NotFound,
        errors.NotEnrolled,
        errors.PaymentDeclined,
        errors.PaymentInProgress,
        errors.PaymentMethodInvalid,
        errors.ProviderUnavailable,
    ],
    auth=scopes.RESIDENT,
)
async def repay_family_bill(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.RESIDENT)
    body = await read_json(request, PayIn) if await request.body() else PayIn()
    found = await family.repay_bill(
        ctx, principal, request.path_params["bill_id"], payment_method=body.payment_method
    )
    return json_response(family_bill_out(found))


routes = [
    Route("/v1/bills/{bill_id:id}/invoice", bill_invoice, methods=["GET"]),
    Route("/v1/bills/{bill_id:id}/invoices/{number:id}", bill_invoice_by_number, methods=["GET"]),
    Route("/v1/encounters/{encounter_id:id}/invoice", encounter_invoice, methods=["GET"]),
    Route("/v1/hospitals/me/invoices", invoices_of_day, methods=["GET"]),
    Route("/v1/hospitals/{hospital_id:id}/invoice-key", invoice_key, methods=["GET"]),
    Route("/v1/invoices/verify", verify_invoice, methods=["GET"]),
    Route("/v1/credit/me/limit", credit_limit, methods=["GET"]),
    Route("/v1/family/bills", list_family_bills, methods=["GET"]),
    Route("/v1/family/bills/{bill_id:id}/pay", repay_family_bill, methods=["POST"]),
]
