"""HTTP endpoints of the codes domain: issue, keys, verify, revoke, revocations, health status."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.context import app_context
from app.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from app.http import endpoint, json_response, raw_header, read_json, read_query
from app.pdf import pdf_response
from auth.api import IdentityRequired, require
from auth.api import scopes as sc
from codes import printed, qr
from codes.errors import KioskRequired, PrintedCodeNotFound, SubjectRequired
from codes.issuing import issue_code_for
from codes.keys import public_keys
from codes.printed_card import card_pdf
from codes.revocation import revocations_since, revoke_as, sign_document
from codes.schemas import (
    CodeQuery,
    IssuedCodeOut,
    JwksOut,
    PrintedCodeOut,
    PrintedIn,
    PrintedQuery,
    PrintedRevokedOut,
    RevocationsOut,
    RevocationsQuery,
    RevokedCodeOut,
    RevokeIn,
    RevokeOut,
    StatusBatchIn,
    StatusBatchOut,
    StatusChangeOut,
    StatusHistoryOut,
    StatusIn,
    StatusOut,
    SubjectOut,
    VerifyIn,
    VerifyOut,
)
from codes.status import (
    StatusChange,
    StatusRecord,
    StatusReport,
    set_status,
    set_statuses,
    status_history,
    status_report,
)
from codes.verifying import verify_code

TAGS = ["codes"]
NO_STORE = {"Cache-Control": "no-store"}
# Short enough that a gate learns a rotated key within a minute; a gate that meets an
# unknown key id refetches at once (docs/offline-verification.md).
KEYS_CACHE = {"Cache-Control": "public, max-age=60"}
IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def _image_format(request: Request, asked: str | None) -> str:
    """`?format=` wins; otherwise the Accept header may ask for an image; JSON by default."""
    if asked is not None:
        return asked
    accept = (raw_header(request.scope, b"accept") or b"").decode("latin-1")
    for name, media in IMAGE_TYPES.items():
        if media in accept:
            return name
    return "json"


@endpoint(
    summary="A fresh identity code for the caller or a dependent (JSON, PNG or SVG)",
    query=CodeQuery,
    response=IssuedCodeOut,
    errors=[IdentityRequired, NotFound],
    auth=sc.RESIDENT,
    media_types=list(IMAGE_TYPES.values()),
    tags=TAGS,
)
async def get_my_code(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    query = read_query(request, CodeQuery)
    issued = await issue_code_for(app_context(request), principal, query.dependent_id)
    shape = _image_format(request, query.format)
    if shape == "png":
        return Response(qr.png(issued.code), media_type="image/png", headers=NO_STORE)
    if shape == "svg":
        return Response(qr.svg(issued.code), media_type="image/svg+xml", headers=NO_STORE)
    body = IssuedCodeOut(
        code=issued.code,
        status=issued.status,
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
        refresh_after=int(issued.refresh_after.total_seconds()),
        refresh_at=issued.issued_at + issued.refresh_after,
    )
    return json_response(body, headers=NO_STORE)


@endpoint(
    summary="Public code signing keys (JWK Set), retired keys within their window included",
    response=JwksOut,
    tags=TAGS,
)
async def get_keys(request: Request) -> Response:
    return json_response(public_keys(app_context(request)), headers=KEYS_CACHE)


@endpoint(
    summary="Verify an identity or printed code online (replay rule, revocation, current status)",
    body=VerifyIn,
    response=VerifyOut,
    errors=[Unauthorized, Forbidden],
    auth=sc.CODES_VERIFY,
    tags=TAGS,
)
async def post_verify(request: Request) -> Response:
    principal = await require(request, sc.CODES_VERIFY)
    body = await read_json(request, VerifyIn)
    verdict = await verify_code(app_context(request), body.code, verifier_id=principal.id)
    subject = None
    if verdict.valid:
        subject = SubjectOut(
            masked_name=verdict.masked_name,
            status=verdict.status,
            age_group=verdict.age_group,
        )
    out = VerifyOut(
        valid=verdict.valid,
        reason=verdict.reason,
        subject=subject,
        expires_at=verdict.expires_at,
        issued_at=verdict.issued_at,
        issued_status=verdict.issued_status,
        code_id=verdict.code_id,
        kind=verdict.kind,
    )
    return json_response(out, headers=NO_STORE)


@endpoint(
    summary="Revoke every code issued so far (lost phone): the resident's own, or any (admin)",
    body=RevokeIn,
    response=RevokeOut,
    errors=[IdentityRequired, NotFound, SubjectRequired],
    auth=f"{sc.RESIDENT} or {sc.ADMIN}",
    tags=TAGS,
)
async def post_revoke(request: Request) -> Response:
    principal = await require(request, (sc.RESIDENT, sc.ADMIN))
    body = await read_json(request, RevokeIn)
    done = await revoke_as(
        app_context(request),
        principal,
        dependent_id=body.dependent_id,
        subject_id=body.subject_id,
    )
    return json_response(RevokeOut(revoked_at=done.revoked_at, codes_revoked=done.codes_revoked))


@endpoint(
    summary="Revoked code ids since a cursor, signed (for offline gates)",
    query=RevocationsQuery,
    response=RevocationsOut,
    auth=f"{sc.CODES_VERIFY} or {sc.GATES_SCAN}",
    tags=TAGS,
)
async def get_revocations(request: Request) -> Response:
    await require(request, (sc.CODES_VERIFY, sc.GATES_SCAN))
    query = read_query(request, RevocationsQuery)
    ctx = app_context(request)
    page = await revocations_since(ctx, query.since, query.limit)
    document = RevocationsOut(
        since=page.since,
        next_cursor=page.next_cursor,
        has_more=page.has_more,
        generated_at=page.generated_at,
        entries=[RevokedCodeOut(cursor=e.cursor, code_id=e.code_id, not_after=e.not_after)
                 for e in page.entries],
        jws="",
    ).model_dump(mode="json", exclude={"jws"})  # fmt: skip
    return json_response({**document, "jws": sign_document(ctx, document)}, headers=NO_STORE)


def _status_out(report: StatusReport) -> StatusOut:
    record: StatusRecord = report.record
    return StatusOut(
        subject_id=record.subject_id,
        status=report.in_force,
        set_status=record.status,
        reason=record.reason,
        valid_until=record.valid_until,
        set_at=record.set_at,
    )


@endpoint(
    summary="Set a subject's health status (green, yellow, red), optionally until a time",
    body=StatusIn,
    response=StatusOut,
    errors=[ValidationFailed],
    auth=sc.STATUS_WRITE,
    tags=TAGS,
)
async def put_status(request: Request) -> Response:
    principal = await require(request, sc.STATUS_WRITE)
    body = await read_json(request, StatusIn)
    change = StatusChange(
        request.path_params["subject_id"], body.status, body.reason, body.valid_until
    )
    report = await set_status(app_context(request), principal, change)
    return json_response(_status_out(report))


@endpoint(
    summary="A subject's status in force now, and the last one set",
    response=StatusOut,
    auth=sc.STATUS_WRITE,
    tags=TAGS,
)
async def get_status(request: Request) -> Response:
    await require(request, sc.STATUS_WRITE)
    report = await status_report(app_context(request), request.path_params["subject_id"])
    return json_response(_status_out(report))


@endpoint(
    summary="Every status change of a subject, oldest first",
    response=StatusHistoryOut,
    auth=sc.STATUS_WRITE,
    tags=TAGS,
)
async def get_status_history(request: Request) -> Response:
    await require(request, sc.STATUS_WRITE)
    subject_id = request.path_params["subject_id"]
    changes = await status_history(subject_id)
    return json_response(
        StatusHistoryOut(
            subject_id=subject_id,
            changes=[
                StatusChangeOut(
                    status=c.status,
                    reason=c.reason,
                    valid_until=c.valid_until,
                    set_by=c.set_by,
                    set_at=c.set_at,
                )
                for c in changes
            ],
        )
    )


@endpoint(
    summary="Set up to 10,000 statuses at once; any invalid entry rejects the whole batch",
    body=StatusBatchIn,
    response=StatusBatchOut,
    errors=[ValidationFailed],
    auth=sc.STATUS_WRITE,
    tags=TAGS,
)
async def post_status_batch(request: Request) -> Response:
    principal = await require(request, sc.STATUS_WRITE)
    body = await read_json(request, StatusBatchIn)
    changes = [StatusChange(e.subject_id, e.status, e.reason, e.valid_until) for e in body.entries]
    records = await set_statuses(app_context(request), principal, changes)
    return json_response(StatusBatchOut(updated=len(records)))


def _printed_out(card: printed.PrintedCard) -> PrintedCodeOut:
    return PrintedCodeOut(
        code=card.code,
        code_id=card.code_id,
        subject_id=card.subject_id,
        masked_name=card.masked_name,
        issued_at=card.issued_at,
        expires_at=card.expires_at,
        issuing_point=card.issuing_point,
    )


@endpoint(
    summary="Issue a printed code (离线码) at a kiosk for the resident or a dependent; "
    "the previous one is revoked",
    body=PrintedIn,
    response=PrintedCodeOut,
    status=201,
    errors=[KioskRequired, IdentityRequired, NotFound],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def post_printed(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    body = await read_json(request, PrintedIn)
    card = await printed.issue_printed(
        app_context(request), principal, body.dependent_id,
        request_id=request.scope.get("request_id"),
    )  # fmt: skip
    return json_response(_printed_out(card), status=201, headers=NO_STORE)


@endpoint(
    summary="The resident's (or a dependent's) valid printed code",
    query=PrintedQuery,
    response=PrintedCodeOut,
    errors=[IdentityRequired, NotFound, PrintedCodeNotFound],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def get_printed(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    query = read_query(request, PrintedQuery)
    card = await printed.current_card(app_context(request), principal, query.dependent_id)
    return json_response(_printed_out(card), headers=NO_STORE)


@endpoint(
    summary="The valid printed code as an A6 card (PDF) for the kiosk's printer",
    query=PrintedQuery,
    media_types=["application/pdf"],
    errors=[IdentityRequired, NotFound, PrintedCodeNotFound],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def get_printed_pdf(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    query = read_query(request, PrintedQuery)
    card = await printed.current_card(app_context(request), principal, query.dependent_id)
    return pdf_response(await card_pdf(card), "printed-code.pdf")


@endpoint(
    summary="Revoke the valid printed code (lost card), from the app or a kiosk",
    body=PrintedIn,
    response=PrintedRevokedOut,
    errors=[IdentityRequired, NotFound, PrintedCodeNotFound],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def post_printed_revoke(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    body = await read_json(request, PrintedIn)
    card = await printed.revoke_printed(
        app_context(request), principal, body.dependent_id,
        request_id=request.scope.get("request_id"),
    )  # fmt: skip
    return json_response(PrintedRevokedOut(code_id=card.code_id))


routes = [
    Route("/v1/codes/me", get_my_code, methods=["GET"]),
    Route("/v1/codes/keys", get_keys, methods=["GET"]),
    Route("/v1/codes/verify", post_verify, methods=["POST"]),
    Route("/v1/codes/revoke", post_revoke, methods=["POST"]),
    Route("/v1/codes/revocations", get_revocations, methods=["GET"]),
    Route("/v1/codes/printed", post_printed, methods=["POST"]),
    Route("/v1/codes/printed", get_printed, methods=["GET"]),
    Route("/v1/codes/printed/revoke", post_printed_revoke, methods=["POST"]),
    Route("/v1/codes/printed-code.pdf", get_printed_pdf, methods=["GET"]),
    Route("/v1/health-status:batch", post_status_batch, methods=["POST"]),
    Route("/v1/health-status/{subject_id:longid}", put_status, methods=["PUT"]),
    Route("/v1/health-status/{subject_id:longid}", get_status, methods=["GET"]),
    Route("/v1/health-status/{subject_id:longid}/history", get_status_history, methods=["GET"]),
]
