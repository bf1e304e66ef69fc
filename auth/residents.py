"""Residents as people: real-name identity, dependents and the consent codes that let a
relative add an account holder, the masked profile, and the subject a resident acts for."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app.clock import SystemClock
from app.context import AppContext
from app.errors import Forbidden, Unauthorized
from auth import identity, store
from auth.audit import RequestMeta, audit
from auth.config import AuthRuntime
from auth.errors import (
    AlreadyDependent,
    ConsentInvalid,
    ConsentRequired,
    DependentIsSelf,
    DependentNotFound,
    DependentsLimit,
    IdentityAlreadyBound,
    IdentityMismatch,
    IdentityRequired,
    IdentityTaken,
    IdNumberInvalid,
    NameInvalid,
)
from auth.models import Account, Consent, Guardianship, Subject
from auth.principal import Principal

CONSENT_TTL = timedelta(minutes=30)
MAX_DEPENDENTS = 5


# -- real-name identity -------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A validated name and ID number, with their blind indexes."""

    name: str
    id_number: identity.IdNumber
    id_index: str
    name_index: str


def _person(rt: AuthRuntime, name_raw: str, id_raw: str, today: date) -> Person:
    name = identity.normalise_name(name_raw)
    if name is None:
        raise NameInvalid("2-30 characters: Chinese characters (with ·) or Latin letters")
    number = identity.parse_id_number(id_raw, today)
    if number is None:
        raise IdNumberInvalid("region, birth date or check digit is wrong")
    return Person(
        name,
        number,
        rt.cipher.blind_index(number.value, field="id_number"),
        rt.cipher.blind_index(name, field="name"),
    )


def _new_subject(rt: AuthRuntime, person: Person, now: datetime, owner: str | None) -> Subject:
    subject_id = store.new_id("sub", 16)
    return Subject(
        id=subject_id,
        id_number_index=person.id_index,
        id_number_enc=rt.cipher.encrypt(person.id_number.value, field="id_number", row=subject_id),
        name_enc=rt.cipher.encrypt(person.name, field="name", row=subject_id),
        name_index=person.name_index,
        masked_name=identity.mask_name(person.name),
        masked_id_number=identity.mask_id_number(person.id_number.value),
        birth_date=person.id_number.birth_date,
        owner_account_id=owner,
        created_at=now,
    )


def _require_resident(principal: Principal) -> None:
    if not principal.is_resident:
        raise Forbidden("only residents have a profile")


async def bind_identity(
    ctx: AppContext, principal: Principal, name_raw: str, id_raw: str, meta: RequestMeta
) -> ResidentView:
    """Bind the account to a real-name person and return the new profile. Binding the
    same identity again is a no-op; a different one is refused (identities do not change)."""
    _require_resident(principal)
    rt = ctx.runtime(AuthRuntime)
    now = ctx.clock.now()
    person = _person(rt, name_raw, id_raw, now.date())
    account = await Account.get(id=principal.id)
    if account.subject_id is not None:
        own = await Subject.get(id=account.subject_id)
        if own.id_number_index != person.id_index:
            raise IdentityAlreadyBound()
        if own.name_index != person.name_index:
            raise IdentityMismatch()
        return await resident_profile(ctx, principal)
    await _claim_identity(rt, account, person, now)
    await audit(
        "identity_bound", now=now, actor=account.id, target=account.subject_id,
        request_id=meta.request_id, ip=meta.ip,
    )  # fmt: skip
    return await resident_profile(ctx, principal)


async def _claim_identity(rt: AuthRuntime, account: Account, person: Person, now: datetime) -> None:
    """Make `person` the account's own subject: a new one, or the subject they already
    are as somebody's dependent. Sets `account.subject_id`."""
    created = False
    subject = await Subject.get_or_none(id_number_index=person.id_index)
    if subject is not None:
        # Known already as someone's dependent: the person now has an account of their own.
        if subject.owner_account_id is not None:
            raise IdentityTaken()
        if subject.name_index != person.name_index:
            raise IdentityMismatch()
        claimed = await Subject.filter(id=subject.id, owner_account_id=None).update(
            owner_account_id=account.id
        )
        if claimed == 0:
            raise IdentityTaken()
    else:
        subject = _new_subject(rt, person, now, account.id)
        try:
            await subject.save(force_create=True)
        except IntegrityError:
            # Another account bound this ID number (or this account another) meanwhile.
            raise IdentityTaken() from None
        created = True
    bound = await Account.filter(id=account.id, subject_id=None).update(subject_id=subject.id)
    if bound == 0:
        # A concurrent binding of this same account won; undo ours.
        if created:
            await Subject.filter(id=subject.id).delete()
        else:
            await Subject.filter(id=subject.id, owner_account_id=account.id).update(
                owner_account_id=None
            )
        raise IdentityAlreadyBound()
    account.subject_id = subject.id


# -- the profile ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectCard:
    """What a profile shows of a person: masked values and the birth date."""

    id: str
    masked_name: str
    masked_id_number: str
    birth_date: date

    @classmethod
    def of(cls, subject: Subject) -> SubjectCard:
        return cls(subject.id, subject.masked_name, subject.masked_id_number, subject.birth_date)


@dataclass(frozen=True)
class DependentView:
    subject: SubjectCard
    relation: str


@dataclass(frozen=True)
class ResidentView:
    account_id: str
    phone_masked: str
    subject: SubjectCard | None
    dependents: list[DependentView]


async def resident_profile(ctx: AppContext, principal: Principal) -> ResidentView:
    _require_resident(principal)
    rt = ctx.runtime(AuthRuntime)
    row = await store.profile_row(principal.id)
    if row is None:
        raise Unauthorized("the account no longer exists")
    phone = rt.cipher.decrypt(row["phone_enc"], field="phone", row=principal.id)
    subject = None
    if row["subject_id"] is not None:
        born = row["birth_date"]
        subject = SubjectCard(
            row["subject_id"],
            row["masked_name"],
            row["masked_id_number"],
            born if isinstance(born, date) else date.fromisoformat(str(born)),
        )
    dependents = await list_dependents(principal) if row["dependents"] else []
    return ResidentView(principal.id, identity.mask_phone(phone), subject, dependents)


async def list_dependents(principal: Principal) -> list[DependentView]:
    _require_resident(principal)
    links = (
        await Guardianship.filter(guardian_account_id=principal.id)
        .select_related("subject")
        .order_by("id")
    )
    return [DependentView(SubjectCard.of(g.subject), g.relation) for g in links]


# -- dependents and consent -------------------------------------------------------------


async def give_consent(
    ctx: AppContext, principal: Principal, meta: RequestMeta
) -> tuple[str, datetime]:
    """A single-use code the holder hands a relative so the relative may add them as a
    dependent (see docs/auth.md, "Dependents and consent")."""
    _require_resident(principal)
    account = await Account.get(id=principal.id)
    if account.subject_id is None:
        raise IdentityRequired()
    now = ctx.clock.now()
    code = secrets.token_hex(6).upper()  # 48 bits, and useless without the name and ID
    expires = now + CONSENT_TTL
    await Consent.create(
        id=store.new_id("cns"),
        subject_id=account.subject_id,
        code_hash=store.sha256_hex(code),
        expires_at=expires,
        created_at=now,
    )
    await audit(
        "consent_given", now=now, actor=account.id, target=account.subject_id,
        request_id=meta.request_id, ip=meta.ip,
    )  # fmt: skip
    return code, expires


async def add_dependent(
    ctx: AppContext,
    principal: Principal,
    *,
    name: str,
    id_number: str,
    relation: str,
    consent_code: str | None,
    meta: RequestMeta,
) -> DependentView:
    """Guard a person. Rules (docs/auth.md): identity first; at most 5; a person already
    guarded by others may be shared if the name matches; a person with their own account
    only with a consent code they gave."""
    _require_resident(principal)
    rt = ctx.runtime(AuthRuntime)
    now = ctx.clock.now()
    person = _person(rt, name, id_number, now.date())
    async with in_transaction("default"):
        # Locking the guardian's row serialises their additions, so the limit holds
        # under concurrency (SQLite serialises writers anyway).
        account = await Account.filter(id=principal.id).select_for_update().first()
        if account is None or account.subject_id is None:
            raise IdentityRequired()
        subject = await _subject_to_guard(rt, account, person, consent_code, now)
        await Guardianship.create(
            guardian_account_id=account.id, subject_id=subject.id, relation=relation,
            created_at=now,
        )  # fmt: skip
        await Account.filter(id=account.id).update(dependents=F("dependents") + 1)
    await audit(
        "dependent_added", now=now, actor=principal.id, target=subject.id,
        request_id=meta.request_id, ip=meta.ip, detail={"relation": relation},
    )  # fmt: skip
    return DependentView(SubjectCard.of(subject), relation)


async def _subject_to_guard(
    rt: AuthRuntime, account: Account, person: Person, consent_code: str | None, now: datetime
) -> Subject:
    """The subject `account` may add as a dependent, created when the person is new; the
    rules in the order their refusals are checked."""
    own = await Subject.get(id=account.subject_id)
    if own.id_number_index == person.id_index:
        raise DependentIsSelf()
    subject = await Subject.get_or_none(id_number_index=person.id_index)
    if subject is not None and await Guardianship.exists(
        guardian_account_id=account.id, subject_id=subject.id
    ):
        raise AlreadyDependent()
    if account.dependents >= MAX_DEPENDENTS:
        raise DependentsLimit()
    if subject is None:
        subject = _new_subject(rt, person, now, None)
        await subject.save(force_create=True)
        return subject
    if subject.name_index != person.name_index:
        raise IdentityMismatch()
    if subject.owner_account_id is not None:
        await _use_consent(subject.id, consent_code, account.id, now)
    return subject


async def _use_consent(subject_id: str, code: str | None, account_id: str, now: datetime) -> None:
    if not code:
        raise ConsentRequired(
            "this person has their own account: ask them for a consent code "
            "(POST /v1/residents/me/consents) and send it as consent_code"
        )
    # Moves an open consent to used (states.CONSENT_TRANSITIONS): the update matches only
    # an open, unexpired code, so of relatives racing with one code one gets it.
    used = await Consent.filter(
        code_hash=store.sha256_hex(code.strip().upper()),
        subject_id=subject_id,
        used_at=None,
        expires_at__gt=now,
    ).update(used_at=now, used_by_account_id=account_id)
    if used == 0:
        raise ConsentInvalid()


# -- what other domains ask --------------------------------------------------------------


async def subject_for_request(principal: Principal, dependent_id: str | None) -> str:
    """The subject a resident acts for: their own, or a dependent they guard."""
    if not principal.is_resident:
        raise Forbidden("only residents act for a subject")
    subject_id = principal.subject_id
    if subject_id is None:
        account = await Account.get_or_none(id=principal.id)
        subject_id = account.subject_id if account is not None else None
    if subject_id is None:
        raise IdentityRequired()
    if dependent_id is None or dependent_id == subject_id:
        return subject_id
    if not await Guardianship.exists(guardian_account_id=principal.id, subject_id=dependent_id):
        raise DependentNotFound()
    return dependent_id


@dataclass(frozen=True)
class SubjectProfile:
    """What gates, hospitals and codes may know about a person: nothing in clear."""

    subject_id: str
    masked_name: str
    birth_date: date
    age_group: str
    is_dependent: bool


async def subject_profile(subject_id: str, *, now: datetime | None = None) -> SubjectProfile | None:
    """The masked profile of a subject. Pass `now` (ctx.clock.now()) where a clock is at
    hand; the age group is a day-precision fact, so the wall clock is the fallback."""
    subject = await Subject.get_or_none(id=subject_id)
    if subject is None:
        return None
    today = (now or SystemClock().now()).date()
    return SubjectProfile(
        subject_id=subject.id,
        masked_name=subject.masked_name,
        birth_date=subject.birth_date,
        age_group=identity.age_group(subject.birth_date, today),
        is_dependent=subject.owner_account_id is None,
    )


# -- lookups for the other domains (auth.api) ------------------------------------------------


async def subject_for_id_number(ctx: AppContext, id_number: str) -> str | None:
    """The subject holding this ID number (an account holder or a dependent), found by
    its blind index; None for a number that is malformed or belongs to nobody here."""
    rt = ctx.runtime(AuthRuntime)
    number = identity.parse_id_number(id_number, ctx.clock.now().date())
    if number is None:
        return None
    index = rt.cipher.blind_index(number.value, field="id_number")
    found = await Subject.filter(id_number_index=index).values_list("id", flat=True)
    return str(found[0]) if found else None


async def dependents_of(subject_id: str) -> list[str]:
    """The subjects that the account whose own identity is `subject_id` guards, oldest
    guardianship first (empty for a dependent-only subject or one without dependents)."""
    subject = await Subject.get_or_none(id=subject_id)
    if subject is None or subject.owner_account_id is None:
        return []
    found = (
        await Guardianship.filter(guardian_account_id=subject.owner_account_id)
        .order_by("created_at", "id")
        .values_list("subject_id", flat=True)
    )
    return [str(subject_id) for subject_id in found]


async def guardians_of(subject_id: str) -> list[str]:
    """The subjects of the accounts that guard `subject_id` (only guardians who bound their
    own identity), oldest guardianship first."""
    accounts = (
        await Guardianship.filter(subject_id=subject_id)
        .order_by("created_at", "id")
        .values_list("guardian_account_id", flat=True)
    )
    if not accounts:
        return []
    owners = await Account.filter(id__in=accounts).values_list("id", "subject_id")
    by_account = {account_id: owner for account_id, owner in owners if owner is not None}
    return [by_account[a] for a in accounts if a in by_account]
