"""HTTP endpoints of the payments domain: parse, authorize, one service call, serialize."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.context import app_context
from app.errors import IdempotencyKeyReused, NotFound, RequestInProgress
from app.http import endpoint, json_response, read_json, read_query
from app.idempotency import IdempotencyKeyRequired, StoredResponse, idempotent_json
from auth.api import require, scopes
from payments import (
    collection,
    credit,
    encounters,
    errors,
    hospitals,
    personas,
    refunds,
    settlement,
    statements,
    webhooks,
)
from payments.responses import (
    bill_view_out,
    credit_out,
    encounter_list_item,
    encounter_out,
    quote_out,
    refund_out,
    settlement_out,
)
from payments.schemas import (
    BillList,
    BillOut,
    ChargeIn,
    ChargeItemOut,
    ChargeOut,
    ClientCredentialsOut,
    CreditOut,
    EncounterIn,
    EncounterList,
    EncounterListQuery,
    EncounterOut,
    EnrollIn,
    HospitalIn,
    HospitalOut,
    PatientOut,
    PayIn,
    QuoteOut,
    RefundIn,
    RefundOut,
    SettlementOut,
    SettlementTimingIn,
    SettlementTimingOut,
    StatementOut,
    StatementQuery,
    WebhookIn,
    WebhookOut,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY = {IDEMPOTENCY_HEADER: "makes retries safe: same key + same body replays the answer"}
IDEMPOTENT_ERRORS = [IdempotencyKeyReused, RequestInProgress]


# -- hospitals ------------------------------------------------------------------------------


@endpoint(
    summary="Create a hospital and its machine client (secret shown once)",
    body=HospitalIn,
    response=HospitalOut,
    status=201,
    auth=scopes.ADMIN,
)
async def create_hospital(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.ADMIN)
    body = await read_json(request, HospitalIn)
    registered = await hospitals.create_hospital(ctx, body.name, actor=principal, tier=body.tier)
    creds, hospital = registered.credentials, registered.hospital
    client = ClientCredentialsOut(
        client_id=creds.client_id, client_secret=creds.client_secret, scope=creds.scope
    )
    out = HospitalOut(id=hospital.id, name=hospital.name, tier=hospital.tier, client=client)
    return json_response(out, 201)


@endpoint(
    summary="Choose when bills are collected: at close, or in a daily batch at a local hour",
    body=SettlementTimingIn,
    response=SettlementTimingOut,
    errors=[NotFound],
    auth=scopes.ENCOUNTERS_WRITE,
)
async def set_settlement_timing(request: Request) -> Response:
    principal = await require(request, scopes.ENCOUNTERS_WRITE)
    body = await read_json(request, SettlementTimingIn)
    hospital = await hospitals.set_settlement_timing(
        principal, mode=body.settlement_mode, batch_hour=body.batch_hour
    )
    return json_response(
        SettlementTimingOut(
            hospital_id=hospital.id,
            tier=hospital.tier,
            settlement_mode=hospital.settlement_mode,
            batch_hour=hospital.batch_hour,
        )
    )


@endpoint(
    summary="Set the hospital's webhook URL; returns the signing secret",
    body=WebhookIn,
    response=WebhookOut,
    auth=scopes.ENCOUNTERS_WRITE,
)
async def set_webhook(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.ENCOUNTERS_WRITE)
    body = await read_json(request, WebhookIn)
    endpoint_row, secret = await webhooks.set_endpoint(
        ctx, principal, str(body.url), rotate_secret=body.rotate_secret
    )
    return json_response(
        WebhookOut(url=endpoint_row.url, secret=secret, secret_version=endpoint_row.secret_version)
    )


@endpoint(
    summary="Daily reconciliation statement (JSON, or CSV with format=csv / Accept: text/csv)",
    query=StatementQuery,
    response=StatementOut,
    media_types=["text/csv"],
    auth=scopes.ENCOUNTERS_WRITE,
)
async def statement(request: Request) -> Response:
    principal = await require(request, scopes.ENCOUNTERS_WRITE)
    query = read_query(request, StatementQuery)
    found = await statements.daily_statement(principal, query.date)
    wants_csv = query.format == "csv" or (
        query.format is None and "text/csv" in request.headers.get("accept", "")
    )
    if wants_csv:
        return Response(statements.statement_csv(found), media_type="text/csv")
    return json_response(StatementOut.model_validate(found, from_attributes=True))


# -- credit ---------------------------------------------------------------------------------


@endpoint(
    summary="Enrol for credit by binding a payment method",
    body=EnrollIn,
    response=CreditOut,
    status=201,
    errors=[
        errors.AlreadyEnrolled,
        errors.PaymentMethodInvalid,
        errors.InsuranceDeclarationRefused,
    ],
    auth=scopes.RESIDENT,
)
async def enroll(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.RESIDENT)
    body = await read_json(request, EnrollIn)
    insurance = body.insurance
    if insurance is not None:
        # Checked first: production refuses the declaration before anything is stored.
        persona_of = await personas.check_declaration(ctx)
    summary = await credit.enroll(
        ctx,
        principal,
        body.payment_method,
        insured=insurance.insured if insurance else True,
        deductible_met_fen=insurance.deductible_met_fen if insurance else 0,
    )
    if insurance is not None:
        await persona_of(summary.account.subject_id, insurance)
    return json_response(credit_out(summary), 201)


@endpoint(
    summary="The resident's credit: limit, available, open encounters, unpaid bills",
    response=CreditOut,
    errors=[errors.NotEnrolled],
    auth=scopes.RESIDENT,
)
async def credit_me(request: Request) -> Response:
    principal = await require(request, scopes.RESIDENT)
    return json_response(credit_out(await credit.credit_summary(principal)))


# -- encounters -----------------------------------------------------------------------------


@endpoint(
    summary="Scan the patient's code and open an encounter on credit (authorization hold)",
    body=EncounterIn,
    response=EncounterOut,
    status=201,
    errors=[
        errors.CreditUnavailable,
        errors.CodeRejected,
        errors.VoucherRejected,
        errors.BureauUnavailable,
        IdempotencyKeyRequired,
        *IDEMPOTENT_ERRORS,
    ],
    auth=scopes.ENCOUNTERS_WRITE,
    headers=IDEMPOTENCY,
    required_headers=[IDEMPOTENCY_HEADER],
)
async def open_encounter(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.ENCOUNTERS_WRITE)
    body = await read_json(request, EncounterIn)

    async def action() -> StoredResponse:
        opened = await encounters.open_encounter(
            ctx,
            principal,
            code=body.code,
            department=body.department,
            insurance_voucher=body.insurance_voucher,
        )
        patient = PatientOut(masked_name=opened.masked_name, age_group=opened.age_group)
        out = encounter_out(opened.encounter, patient)
        return StoredResponse(201, out.model_dump(mode="json"))

    return await idempotent_json(request, ctx, owner=principal.id, action=action)


@endpoint(
    summary="The hospital's encounters opened on a local day, newest first (the desk's list)",
    query=EncounterListQuery,
    response=EncounterList,
    auth=scopes.ENCOUNTERS_WRITE,
)
async def list_encounters(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.ENCOUNTERS_WRITE)
    query = read_query(request, EncounterListQuery)
    rows = await encounters.encounters_of_day(ctx, principal, query.date)
    return json_response(
        EncounterList(date=query.date, encounters=[encounter_list_item(r) for r in rows])
    )


@endpoint(
    summary="An encounter of this hospital",
    response=EncounterOut,
    errors=[NotFound],
    auth=scopes.ENCOUNTERS_WRITE,
)
async def get_encounter(request: Request) -> Response:
    principal = await require(request, scopes.ENCOUNTERS_WRITE)
    encounter = await encounters.get_encounter(principal, request.path_params["encounter_id"])
    return json_response(encounter_out(encounter))


@endpoint(
    summary="Post an itemised charge (idempotent by charge_id); extends the hold as needed",
    body=ChargeIn,
    response=ChargeOut,
    status=201,
    errors=[
        NotFound,
        errors.CreditLimitExceeded,
        errors.EncounterClosed,
        *IDEMPOTENT_ERRORS,
    ],
    auth=scopes.ENCOUNTERS_WRITE,
    headers=IDEMPOTENCY,
)
async def post_charge(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.ENCOUNTERS_WRITE)
    body = await read_json(request, ChargeIn)

    async def action() -> StoredResponse:
        result = await encounters.post_charge(
            ctx,
            principal,
            encounter_id=request.path_params["encounter_id"],
            charge_id=body.charge_id,
            items=[encounters.ItemInput(**item.model_dump()) for item in body.items],
        )
        out = ChargeOut(
            charge_id=result.charge.charge_id,
            encounter_id=result.charge.encounter_id,
            amount_fen=result.charge.amount_fen,
            refunded_fen=result.charge.refunded_fen,
            items=[ChargeItemOut.model_validate(i, from_attributes=True) for i in result.items],
            hold_fen=result.encounter.hold_fen,
            created_at=result.charge.created_at,
        )
        return StoredResponse(201 if result.created else 200, out.model_dump(mode="json"))

    return await idempotent_json(request, ctx, owner=principal.id, action=action, required=False)


@endpoint(
    summary="Close and settle the encounter: split, bill, ledger, collect self-pay",
    response=SettlementOut,
    errors=[
        NotFound,
        errors.ProviderUnavailable,
        errors.BureauUnavailable,
        errors.InsuranceRulesMissing,
        IdempotencyKeyRequired,
        *IDEMPOTENT_ERRORS,
    ],
    auth=scopes.ENCOUNTERS_WRITE,
    headers=IDEMPOTENCY,
    required_headers=[IDEMPOTENCY_HEADER],
)
async def close_encounter(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.ENCOUNTERS_WRITE)

    async def action() -> StoredResponse:
        bill = await settlement.close_encounter(ctx, principal, request.path_params["encounter_id"])
        return StoredResponse(200, settlement_out(bill).model_dump(mode="json"))

    return await idempotent_json(request, ctx, owner=principal.id, action=action)


@endpoint(
    summary="The split the bureau would settle now; close settles it (the hospital's client, "
    "or the patient with a resident token)",
    response=QuoteOut,
    errors=[
        NotFound,
        errors.EncounterClosed,
        errors.BureauUnavailable,
        errors.InsuranceRulesMissing,
    ],
    # The fuzzer maps one caller per `Requires:` line: it fuzzes this as the hospital.
    auth=scopes.ENCOUNTERS_WRITE,
)
async def quote_encounter(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, (scopes.ENCOUNTERS_WRITE, scopes.RESIDENT))
    found = await settlement.quote_encounter(ctx, principal, request.path_params["encounter_id"])
    return json_response(quote_out(found))


@endpoint(
    summary="Refund part or all of a charge, before or after settlement (idempotent by refund_id)",
    body=RefundIn,
    response=RefundOut,
    status=201,
    errors=[
        NotFound,
        errors.RefundExceedsCharge,
        errors.PaymentInProgress,
        *IDEMPOTENT_ERRORS,
    ],
    auth=scopes.ENCOUNTERS_WRITE,
    headers=IDEMPOTENCY,
)
async def refund(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.ENCOUNTERS_WRITE)
    body = await read_json(request, RefundIn)

    async def action() -> StoredResponse:
        result = await refunds.refund_charge(
            ctx,
            principal,
            encounter_id=request.path_params["encounter_id"],
            refund_id=body.refund_id,
            charge_id=body.charge_id,
            amount_fen=body.amount_fen,
        )
        out = refund_out(result.refund).model_dump(mode="json")
        return StoredResponse(201 if result.created else 200, out)

    return await idempotent_json(request, ctx, owner=principal.id, action=action, required=False)


# -- bills ----------------------------------------------------------------------------------


@endpoint(summary="The resident's bills with lines", response=BillList, auth=scopes.RESIDENT)
async def list_bills(request: Request) -> Response:
    principal = await require(request, scopes.RESIDENT)
    views = await collection.list_bills(principal)
    return json_response(BillList(bills=[bill_view_out(v) for v in views]))


@endpoint(
    summary="One bill with its lines and insurance split",
    response=BillOut,
    errors=[NotFound],
    auth=scopes.RESIDENT,
)
async def get_bill(request: Request) -> Response:
    principal = await require(request, scopes.RESIDENT)
    view = await collection.bill_view(principal, request.path_params["bill_id"])
    return json_response(bill_view_out(view))


@endpoint(
    summary="Pay a pending or overdue bill by hand (optionally with another payment method)",
    body=PayIn,
    response=BillOut,
    errors=[
        NotFound,
        errors.PaymentDeclined,
        errors.PaymentInProgress,
        errors.PaymentMethodInvalid,
        errors.ProviderUnavailable,
    ],
    auth=scopes.RESIDENT,
)
async def pay_bill(request: Request) -> Response:
    ctx = app_context(request)
    principal = await require(request, scopes.RESIDENT)
    body = await read_json(request, PayIn) if await request.body() else PayIn()
    view = await collection.pay_bill(
        ctx, principal, request.path_params["bill_id"], payment_method=body.payment_method
    )
    return json_response(bill_view_out(view))


routes = [
    Route("/v1/hospitals", create_hospital, methods=["POST"]),
    Route("/v1/hospitals/me/webhook", set_webhook, methods=["PUT"]),
    Route("/v1/hospitals/me/statements", statement, methods=["GET"]),
    Route("/v1/credit/enroll", enroll, methods=["POST"]),
    Route("/v1/credit/me", credit_me, methods=["GET"]),
    Route("/v1/encounters", open_encounter, methods=["POST"]),
    Route("/v1/encounters", list_encounters, methods=["GET"]),
    Route("/v1/encounters/{encounter_id:id}", get_encounter, methods=["GET"]),
    Route("/v1/encounters/{encounter_id:id}/charges", post_charge, methods=["POST"]),
    Route("/v1/encounters/{encounter_id:id}/close", close_encounter, methods=["POST"]),
    Route("/v1/encounters/{encounter_id:id}/quote", quote_encounter, methods=["GET"]),
    Route("/v1/hospitals/me/settlement", set_settlement_timing, methods=["PUT"]),
    Route("/v1/encounters/{encounter_id:id}/refunds", refund, methods=["POST"]),
    Route("/v1/bills", list_bills, methods=["GET"]),
    Route("/v1/bills/{bill_id:id}", get_bill, methods=["GET"]),
    Route("/v1/bills/{bill_id:id}/pay", pay_bill, methods=["POST"]),
]
