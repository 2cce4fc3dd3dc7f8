"""Settings of a merchant: its API keys (list, create — the key shown once — revoke),
its call policy (installments, interest-free promotions, senior mode, read-back, the
agent destination, digit timeouts, the lease lifetime) and the engine-wide lease
lifetime from ``arspay.toml``. A merchant user manages its own merchant; an operator
picks one (``?merchant=``) and also sees every merchant with a suspend/activate action
and the system's health (database, PG, Asterisk ARI).

The policy form is the whole policy: each field left empty goes back to the operator's
default. The values are handed to :meth:`MerchantService.set_policy`, whose model
(:class:`~ivr.merchants.policy.MerchantPolicy`) validates them; a refusal shows the
form again as it was submitted (422) and stores nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Form, Query, Request
from sqlalchemy import text
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.pages.common import acting_merchant, fetch_owned, scope_of
from ivr.console.pages.fields import IdField, IdParam
from ivr.console.render import page
from ivr.domain.states import ApiKeyStatus, MerchantStatus
from ivr.errors import InvalidInput, NotFound
from ivr.merchants import queries
from ivr.merchants.policy import MerchantPolicy
from ivr.notify.notices.kinds import NoticeKind, NoticeSettings
from ivr.settings import Settings
from ivr.store.db import Database
from ivr.store.tables import ApiKey, Merchant

router = APIRouter()
HEALTH_TIMEOUT_S = 2.0
BLANK_PROMOTIONS = 3  # empty interest-free rows offered under the existing ones
CHECKBOXES = ("installments", "corporate_installments", "allow_save_card", "verify_registered_card")
TRISTATE = ("senior_mode", "readback")
TEXTS = ("max_installment_months", "agent_destination", "first_digit_timeout_s",
         "inter_digit_timeout_s", "lease_minutes", "verify_max_failures",
         "verify_lock_hours")  # fmt: skip
PROMO_FIELDS = ("issuer", "min_months", "max_months", "starts", "ends")
# the payer-notice switches (docs/notices.md): a checkbox notice_<kind> each, the
# pre-notice's lead days; changed only when the form carried them (notices_form)
NOTICE_KINDS = tuple(kind.value for kind in NoticeKind)
# the notices box's checkboxes: one per kind, and 알림톡 first (docs/notices.md §6)
NOTICE_SWITCHES = (*NOTICE_KINDS, "alimtalk")


# ------------------------------------------------------------------ health


@dataclass(frozen=True, slots=True)
class Check:
    key: str  # text key of the thing checked
    target: str  # what was tried (never a password: URLs only, the database's kind)
    ok: bool


async def reachable(url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """Whether anything answers HTTP at ``url`` (any status counts); never raises."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
            await client.get(url)
    except Exception:  # unreachable, refused, timed out, a malformed URL: all "no"
        return False
    return True


async def database_ok(db: Database) -> bool:
    try:
        async with db.sessions() as s:
            await asyncio.wait_for(s.execute(text("SELECT 1")), HEALTH_TIMEOUT_S)
    except Exception:
        return False
    return True


async def health(db: Database, settings: Settings) -> list[Check]:
    """Database, payment gateway and Asterisk ARI reachability, checked together."""
    gateway, ari = settings.gateway.base_url, settings.asterisk.ari_url
    db_ok, pg_ok, ari_ok = await asyncio.gather(database_ok(db), reachable(gateway),
                                                reachable(ari))  # fmt: skip
    kind = "postgresql" if db.is_postgres else "sqlite"
    return [
        Check("settings.health_db", kind, db_ok),
        Check("settings.health_pg", f"{settings.gateway.kind} · {gateway}", pg_ok),
        Check("settings.health_ari", ari, ari_ok),
    ]


# ------------------------------------------------------------------ the policy form


@dataclass
class PolicyForm:
    """The policy form's values as text (what was stored, or what was submitted)."""

    values: dict[str, str] = field(default_factory=dict)
    promotions: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, stored: dict[str, Any]) -> PolicyForm:
        defaults = MerchantPolicy()
        values: dict[str, str] = {}
        for name in CHECKBOXES:
            values[name] = "on" if stored.get(name, getattr(defaults, name)) else ""
        for name in TRISTATE:
            value = stored.get(name)
            values[name] = "" if value is None else ("true" if value else "false")
        for name in TEXTS:
            value = stored.get(name, getattr(defaults, name))
            values[name] = "" if value is None else str(value)
        raw = stored.get("notices")
        notices: dict[str, Any] = raw if isinstance(raw, dict) else {}
        defaults_n = NoticeSettings().model_dump()
        for kind in NOTICE_SWITCHES:
            values[f"notice_{kind}"] = "on" if notices.get(kind, defaults_n[kind]) else ""
        values["notice_prenotice_days"] = str(notices.get("prenotice_days", ""))
        values["notices_form"] = "1"
        promos = [
            {k: "" if p.get(k) is None else str(p.get(k)) for k in PROMO_FIELDS}
            for p in stored.get("interest_free") or []
            if isinstance(p, dict)
        ]
        return cls(values, promos)

    @classmethod
    def submitted(cls, form: FormData) -> PolicyForm:
        def one(name: str) -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else ""

        values = {name: "on" if one(name) else "" for name in CHECKBOXES}
        values |= {name: one(name) for name in TRISTATE + TEXTS}
        values |= {f"notice_{k}": "on" if one(f"notice_{k}") else "" for k in NOTICE_SWITCHES}
        values |= {name: one(name) for name in ("notice_prenotice_days", "notices_form")}
        columns = [
            [v.strip() if isinstance(v, str) else "" for v in form.getlist(f"if_{k}")]
            for k in PROMO_FIELDS
        ]
        rows = max((len(c) for c in columns), default=0)
        promos = []
        for i in range(rows):
            row = {
                k: (col[i] if i < len(col) else "")
                for k, col in zip(PROMO_FIELDS, columns, strict=True)
            }
            if any(row.values()):
                promos.append(row)
        return cls(values, promos)

    def changes(self) -> dict[str, Any]:
        """What to hand to ``set_policy``: ``None`` for an empty field (the default).
        Text is passed as it is; the policy model converts and checks it."""
        out: dict[str, Any] = {name: bool(self.values.get(name)) for name in CHECKBOXES}
        for name in TRISTATE:
            value = self.values.get(name, "")
            out[name] = {"": None, "true": True, "false": False}.get(value, value)
        for name in TEXTS:
            out[name] = self.values.get(name) or None
        promos = [{k: v for k, v in p.items() if v} for p in self.promotions]
        out["interest_free"] = promos or None
        if self.values.get("notices_form"):
            notices: dict[str, Any] = {
                k: bool(self.values.get(f"notice_{k}")) for k in NOTICE_SWITCHES
            }
            if self.values.get("notice_prenotice_days"):
                notices["prenotice_days"] = self.values["notice_prenotice_days"]
            out["notices"] = notices
        return out

    @property
    def rows(self) -> list[dict[str, str]]:
        blank = dict.fromkeys(PROMO_FIELDS, "")
        return self.promotions + [dict(blank) for _ in range(BLANK_PROMOTIONS)]


# ------------------------------------------------------------------ pages


def _target(who: Viewer, chosen: str | None) -> str | None:
    """The merchant the page is about: a merchant user's own (another one: 404), or the
    one an operator chose (None: not chosen yet)."""
    if who.scope is not None:
        if chosen:
            who.own(chosen, "merchant")
        return who.scope
    return chosen or None


def _back(who: Viewer, merchant_id: str) -> str:
    return "/console/settings" if who.scope else f"/console/settings?merchant={merchant_id}"


async def _settings_page(
    request: Request,
    deps: Deps,
    who: Viewer,
    merchant_id: str | None,
    *,
    form: PolicyForm | None = None,
    policy_error: str | None = None,
    key_error: str | None = None,
    new_key: str | None = None,
    saved: bool = False,
    status_code: int = 200,
) -> Response:
    merchant: Merchant | None = None
    keys: list[ApiKey] = []
    async with deps.api.db.sessions() as s:
        if merchant_id is not None:
            merchant = await scope_of(who).get(s, Merchant, merchant_id)
            if merchant is None:
                raise NotFound("merchant not found")
            keys = await queries.api_keys(s, scope_of(who), merchant.id)
        merchants = await queries.merchants(s, scope_of(who)) if who.scope is None else []
    if merchant is not None and form is None:
        form = PolicyForm.of(dict(merchant.settings or {}))
    calls = deps.settings.calls
    defaults = {
        "senior_mode": calls.senior_mode,
        "readback": calls.readback,
        "agent_destination": calls.agent_destination or "—",
        "first_digit_timeout_s": calls.first_digit_timeout_s,
        "inter_digit_timeout_s": calls.inter_digit_timeout_s,
        "lease_minutes": deps.settings.dids.lease_minutes,
    }
    return page(request, who, "settings.html", status_code=status_code, merchant=merchant,
                keys=keys, merchants=merchants, form=form, defaults=defaults,
                policy_error=policy_error, key_error=key_error, new_key=new_key, saved=saved,
                engine_lease=deps.settings.dids.lease_minutes,
                notice_kinds=NOTICE_SWITCHES)  # fmt: skip


@router.get("/settings")
async def show_settings(
    request: Request,
    deps: Deps,
    who: Reader,
    merchant: IdParam = None,
    saved: Annotated[int | None, Query(ge=0, le=1)] = None,
) -> Response:
    return await _settings_page(request, deps, who, _target(who, merchant), saved=bool(saved))


@router.post("/settings/api-keys")
async def create_key(
    request: Request,
    deps: Deps,
    who: Writer,
    name: Annotated[str, Form(max_length=200)] = "",
    merchant_id: IdField = "",
) -> Response:
    """A new key, shown in this answer only (the page itself, not a redirect: the key
    must not travel in a URL or be kept anywhere)."""
    owner = _target(who, merchant_id)
    try:
        created = await deps.api.merchants.create_api_key(
            acting_merchant(who, owner), name, actor=who.actor
        )
    except InvalidInput as exc:
        return await _settings_page(request, deps, who, owner, key_error=exc.message,
                                    status_code=422)  # fmt: skip
    return await _settings_page(request, deps, who, created.merchant_id, new_key=created.key)


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_key(key_id: str, deps: Deps, who: Writer) -> Response:
    row = await fetch_owned(deps.api.db, ApiKey, key_id, who, "API key")
    if row.status == ApiKeyStatus.active.value:
        await deps.api.merchants.revoke_api_key(row.merchant_id, row.id, actor=who.actor)
    return RedirectResponse(_back(who, row.merchant_id), status_code=303)


@router.post("/settings/policy")
async def save_policy(
    request: Request,
    deps: Deps,
    who: Writer,
    merchant_id: IdField = "",
) -> Response:
    target = acting_merchant(who, _target(who, merchant_id))
    form = PolicyForm.submitted(await request.form())
    try:
        await deps.api.merchants.set_policy(target, form.changes(), actor=who.actor)
    except InvalidInput as exc:
        return await _settings_page(request, deps, who, target, form=form,
                                    policy_error=exc.message, status_code=422)  # fmt: skip
    back = _back(who, target)
    return RedirectResponse(back + ("&" if "?" in back else "?") + "saved=1", status_code=303)


# ------------------------------------------------------------------ operators only


@router.post("/settings/merchants/{merchant_id}/status")
async def set_merchant_status(
    merchant_id: str,
    deps: Deps,
    who: Writer,
    status: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    who.operator_only()
    try:
        wanted = MerchantStatus(status)
    except ValueError:
        raise InvalidInput("status must be active or suspended") from None
    current = await deps.api.merchants.get(merchant_id)
    if current.status != wanted.value:
        await deps.api.merchants.set_status(merchant_id, wanted, actor=who.actor)
    return RedirectResponse("/console/settings", status_code=303)


@router.get("/settings/health")
async def health_box(request: Request, deps: Deps, who: Reader) -> Response:
    who.operator_only()
    checks = await health(deps.api.db, deps.settings)
    return page(request, who, "fragments/settings_health.html", checks=checks)
