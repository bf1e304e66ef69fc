"""HTTP endpoints of the auth domain: OTP login, tokens, machine clients, residents."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.context import app_context
from app.errors import Conflict, RateLimited
from app.http import endpoint, json_response, read_json
from auth import clients, kiosk, otp, residents, sessions
from auth import scopes as sc
from auth.audit import RequestMeta
from auth.authz import require
from auth.errors import (
    AlreadyDependent,
    ClientDisabled,
    ClientNotFound,
    ConsentInvalid,
    ConsentRequired,
    DependentIsSelf,
    DependentsLimit,
    IdentificationFailed,
    IdentityAlreadyBound,
    IdentityMismatch,
    IdentityRequired,
    IdentityTaken,
    IdNumberInvalid,
    InvalidClient,
    KioskSessionNotFound,
    LocationNotAllowed,
    LocationRequired,
    NameInvalid,
    OtpInvalid,
    PhoneInvalid,
    RefreshInvalid,
    RefreshReused,
    TenantNotAllowed,
    TenantRequired,
    UnsupportedGrant,
)
from auth.identity import age_group
from auth.schemas import (
    ClientCreate,
    ClientCredentialsOut,
    ClientOut,
    ClientToken,
    ClientTokenRequest,
    ConsentOut,
    DependentList,
    DependentOut,
    DependentRequest,
    IdentityRequest,
    KioskChallengeOut,
    KioskConfirmRequest,
    KioskIdentifyRequest,
    KioskSessionEnded,
    KioskTokenOut,
    LoggedOut,
    LoginRequest,
    OtpRequest,
    OtpSent,
    RefreshRequest,
    ResidentProfile,
    TokenPair,
)
from auth.states import ClientStatus

TAGS = ["auth"]
NO_STORE = {"Cache-Control": "no-store"}


def _meta(request: Request) -> RequestMeta:
    return RequestMeta(
        ip=request.client.host if request.client else None,
        request_id=request.scope.get("request_id"),
    )


def _pair(pair: sessions.IssuedPair) -> TokenPair:
    return TokenPair(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        refresh_expires_in=pair.refresh_expires_in,
    )


@endpoint(
    summary="Send a 6-digit login code by SMS",
    body=OtpRequest,
    response=OtpSent,
    errors=[PhoneInvalid, RateLimited],
    tags=TAGS,
)
async def post_otp(request: Request) -> Response:
    body = await read_json(request, OtpRequest)
    sent = await otp.send_otp(app_context(request), body.phone, _meta(request))
    return json_response(
        OtpSent(expires_in=sent.expires_in, resend_after=sent.resend_after,
                debug_code=sent.debug_code),
        headers=NO_STORE,
    )  # fmt: skip


@endpoint(
    summary="Log in with phone and OTP: access and refresh tokens",
    body=LoginRequest,
    response=TokenPair,
    errors=[PhoneInvalid, OtpInvalid],
    tags=TAGS,
)
async def post_login(request: Request) -> Response:
    body = await read_json(request, LoginRequest)
    pair = await otp.login(app_context(request), body.phone, body.otp, _meta(request))
    return json_response(_pair(pair), headers=NO_STORE)


@endpoint(
    summary="Rotate a refresh token: new pair, the old token dies",
    body=RefreshRequest,
    response=TokenPair,
    errors=[RefreshInvalid, RefreshReused],
    tags=TAGS,
)
async def post_refresh(request: Request) -> Response:
    body = await read_json(request, RefreshRequest)
    pair = await sessions.refresh(app_context(request), body.refresh_token, _meta(request))
    return json_response(_pair(pair), headers=NO_STORE)


@endpoint(
    summary="Log out: revoke this login's refresh family and its access tokens",
    response=LoggedOut,
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def post_logout(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    await sessions.logout(app_context(request), principal, _meta(request))
    return json_response(LoggedOut())


@endpoint(
    summary="Client-credentials grant for machine clients",
    body=ClientTokenRequest,
    response=ClientToken,
    errors=[UnsupportedGrant, InvalidClient, RateLimited],
    tags=TAGS,
)
async def post_token(request: Request) -> Response:
    body = await read_json(request, ClientTokenRequest)
    if body.grant_type != "client_credentials":
        raise UnsupportedGrant("only grant_type=client_credentials is offered")
    issued = await clients.client_token(
        app_context(request), body.client_id, body.client_secret, _meta(request)
    )
    return json_response(
        ClientToken(access_token=issued.token, expires_in=issued.expires_in, scope=issued.scope),
        headers=NO_STORE,
    )


def _credentials(creds: clients.ClientCredentials) -> ClientCredentialsOut:
    return ClientCredentialsOut(
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        scope=creds.scope,
        kind=creds.kind,
        tenant_id=creds.tenant_id,
        location=creds.location,
    )


@endpoint(
    summary="Create a machine client; the secret is shown only in this response",
    body=ClientCreate,
    response=ClientCredentialsOut,
    status=201,
    errors=[TenantRequired, TenantNotAllowed, LocationRequired, LocationNotAllowed],
    auth=sc.ADMIN,
    tags=TAGS,
)
async def post_client(request: Request) -> Response:
    principal = await require(request, sc.ADMIN)
    body = await read_json(request, ClientCreate)
    creds = await clients.create_client(
        app_context(request), body.kind, body.tenant_id, actor=principal,
        request_id=_meta(request).request_id, location=body.location,
    )  # fmt: skip
    return json_response(_credentials(creds), status=201, headers=NO_STORE)


@endpoint(
    summary="Rotate a client's secret; the old secret and its tokens stop working",
    response=ClientCredentialsOut,
    errors=[ClientNotFound, ClientDisabled, Conflict],
    auth=sc.ADMIN,
    tags=TAGS,
)
async def post_client_rotate(request: Request) -> Response:
    principal = await require(request, sc.ADMIN)
    creds = await clients.rotate_client(
        app_context(request), request.path_params["client_id"], actor=principal,
        request_id=_meta(request).request_id,
    )  # fmt: skip
    return json_response(_credentials(creds), headers=NO_STORE)


@endpoint(
    summary="Disable a client; its tokens stop working",
    response=ClientOut,
    errors=[ClientNotFound],
    auth=sc.ADMIN,
    tags=TAGS,
)
async def post_client_disable(request: Request) -> Response:
    principal = await require(request, sc.ADMIN)
    client = await clients.disable_client(
        app_context(request), request.path_params["client_id"], actor=principal,
        request_id=_meta(request).request_id,
    )  # fmt: skip
    return json_response(
        ClientOut(client_id=client.id, kind=client.kind, tenant_id=client.tenant_id,
                  scope=client.scope, location=client.location,
                  disabled=ClientStatus.of(client) is ClientStatus.DISABLED)
    )  # fmt: skip


def _dependent(view: residents.DependentView, request: Request) -> DependentOut:
    subject = view.subject
    today = app_context(request).clock.now().date()
    return DependentOut(
        dependent_id=subject.id,
        subject_id=subject.id,
        masked_name=subject.masked_name,
        masked_id_number=subject.masked_id_number,
        relation=view.relation,
        birth_year=subject.birth_date.year,
        age_group=age_group(subject.birth_date, today),
    )


@endpoint(
    summary="The resident's own profile, masked",
    response=ResidentProfile,
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def get_me(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    view = await residents.resident_profile(app_context(request), principal)
    return json_response(_profile(view, request))


def _profile(view: residents.ResidentView, request: Request) -> ResidentProfile:
    subject = view.subject
    today = app_context(request).clock.now().date()
    return ResidentProfile(
        account_id=view.account_id,
        phone=view.phone_masked,
        identity_bound=subject is not None,
        subject_id=subject.id if subject else None,
        masked_name=subject.masked_name if subject else None,
        masked_id_number=subject.masked_id_number if subject else None,
        birth_year=subject.birth_date.year if subject else None,
        age_group=age_group(subject.birth_date, today) if subject else None,
        dependents=[_dependent(d, request) for d in view.dependents],
    )


@endpoint(
    summary="Bind real-name identity (name and 18-character resident ID number)",
    body=IdentityRequest,
    response=ResidentProfile,
    errors=[NameInvalid, IdNumberInvalid, IdentityTaken, IdentityAlreadyBound, IdentityMismatch],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def put_identity(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    body = await read_json(request, IdentityRequest)
    view = await residents.bind_identity(
        app_context(request), principal, body.name, body.id_number, _meta(request)
    )
    return json_response(_profile(view, request))


@endpoint(
    summary="Add a dependent (child, parent, spouse, other); at most 5",
    body=DependentRequest,
    response=DependentOut,
    status=201,
    errors=[
        NameInvalid,
        IdNumberInvalid,
        IdentityRequired,
        IdentityMismatch,
        DependentIsSelf,
        AlreadyDependent,
        DependentsLimit,
        ConsentRequired,
        ConsentInvalid,
    ],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def post_dependent(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    body = await read_json(request, DependentRequest)
    view = await residents.add_dependent(
        app_context(request), principal, name=body.name, id_number=body.id_number,
        relation=body.relation, consent_code=body.consent_code, meta=_meta(request),
    )  # fmt: skip
    return json_response(_dependent(view, request), status=201)


@endpoint(
    summary="The resident's dependents",
    response=DependentList,
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def get_dependents(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    views = await residents.list_dependents(principal)
    return json_response(DependentList(dependents=[_dependent(v, request) for v in views]))


@endpoint(
    summary="Give a single-use consent code so a relative may add you as a dependent",
    response=ConsentOut,
    status=201,
    errors=[IdentityRequired],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def post_consent(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    code, expires = await residents.give_consent(app_context(request), principal, _meta(request))
    return json_response(
        ConsentOut(consent_code=code, expires_at=expires), status=201, headers=NO_STORE
    )


@endpoint(
    summary="Kiosk: identify a resident by ID card (name and number); an OTP goes to their phone",
    body=KioskIdentifyRequest,
    response=KioskChallengeOut,
    status=201,
    errors=[IdentificationFailed, RateLimited],
    auth=sc.KIOSK_SESSIONS,
    tags=TAGS,
)
async def post_kiosk_session(request: Request) -> Response:
    principal = await require(request, sc.KIOSK_SESSIONS)
    body = await read_json(request, KioskIdentifyRequest)
    challenge = await kiosk.identify(
        app_context(request), principal, body.name, body.id_number, _meta(request)
    )
    out = KioskChallengeOut(
        session_id=challenge.session_id,
        otp_sent_to=challenge.phone_masked,
        expires_at=challenge.expires_at,
        debug_code=challenge.debug_code,
    )
    return json_response(out, status=201, headers=NO_STORE)


@endpoint(
    summary="Kiosk: confirm the OTP; a short-lived token acting for that resident only",
    body=KioskConfirmRequest,
    response=KioskTokenOut,
    errors=[KioskSessionNotFound, OtpInvalid],
    auth=sc.KIOSK_SESSIONS,
    tags=TAGS,
)
async def post_kiosk_confirm(request: Request) -> Response:
    principal = await require(request, sc.KIOSK_SESSIONS)
    body = await read_json(request, KioskConfirmRequest)
    token = await kiosk.confirm(
        app_context(request), principal, request.path_params["session_id"], body.otp,
        _meta(request),
    )  # fmt: skip
    out = KioskTokenOut(
        session_id=token.session_id,
        access_token=token.access_token,
        expires_in=token.expires_in,
        expires_at=token.expires_at,
        subject_id=token.subject_id,
        masked_name=token.masked_name,
    )
    return json_response(out, headers=NO_STORE)


@endpoint(
    summary="Kiosk: end a session; its token stops working at once",
    response=KioskSessionEnded,
    errors=[KioskSessionNotFound],
    auth=sc.KIOSK_SESSIONS,
    tags=TAGS,
)
async def delete_kiosk_session(request: Request) -> Response:
    principal = await require(request, sc.KIOSK_SESSIONS)
    await kiosk.end(
        app_context(request), principal, request.path_params["session_id"], _meta(request)
    )
    return json_response(KioskSessionEnded())


routes = [
    Route("/v1/auth/otp", post_otp, methods=["POST"]),
    Route("/v1/auth/login", post_login, methods=["POST"]),
    Route("/v1/auth/refresh", post_refresh, methods=["POST"]),
    Route("/v1/auth/logout", post_logout, methods=["POST"]),
    Route("/v1/auth/token", post_token, methods=["POST"]),
    Route("/v1/admin/clients", post_client, methods=["POST"]),
    Route("/v1/admin/clients/{client_id:id}/rotate", post_client_rotate, methods=["POST"]),
    Route("/v1/admin/clients/{client_id:id}/disable", post_client_disable, methods=["POST"]),
    Route("/v1/residents/me", get_me, methods=["GET"]),
    Route("/v1/residents/me/identity", put_identity, methods=["PUT"]),
    Route("/v1/residents/me/dependents", post_dependent, methods=["POST"]),
    Route("/v1/residents/me/dependents", get_dependents, methods=["GET"]),
    Route("/v1/residents/me/consents", post_consent, methods=["POST"]),
    Route("/v1/kiosk/sessions", post_kiosk_session, methods=["POST"]),
    Route("/v1/kiosk/sessions/{session_id:id}/confirm", post_kiosk_confirm, methods=["POST"]),
    Route("/v1/kiosk/sessions/{session_id:id}", delete_kiosk_session, methods=["DELETE"]),
]
