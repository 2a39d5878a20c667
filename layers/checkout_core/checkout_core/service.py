"""The domain operations. Each reads what it needs, decides with the pure rules, then makes one
conditional write per state change; a lost race re-reads and decides again."""

from __future__ import annotations

import math
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from checkout_core import faults, transitions
from checkout_core.api_keys import hash_secret
from checkout_core.clock import from_epoch, from_iso, is_uuid7, to_iso, utc_now, uuid7
from checkout_core.errors import (
    ConcurrentUpdate,
    InvalidRequest,
    SessionExpired,
    SessionNotCancellable,
    SessionNotFound,
    SessionNotOpen,
    TransactionLimitReached,
    TransactionNotFound,
    TransactionsInFlight,
)
from checkout_core.models import (
    Cancellation,
    CancelRequest,
    CancelResponse,
    CreateSessionRequest,
    Event,
    ProviderEventRequest,
    Session,
    SessionList,
    Tenant,
    Transaction,
    WhenInFlight,
)
from checkout_core.observability import count_transition, logger
from checkout_core.providers import CancelOutcome, ProviderRegistry, get_providers
from checkout_core.repository import (
    PROVIDER_EVENT_RETENTION_SECONDS,
    SessionChange,
    SessionRepository,
    TransactionChange,
    WriteConflict,
    shard_of,
    transaction_key,
)
from checkout_core.settings import Settings, get_settings
from checkout_core.transitions import SessionStatus, TransactionStatus
from checkout_core.workflow import Finaliser, execution_name

MAX_ATTEMPTS = 10
RETRY_BASE_SECONDS = 0.01
RETRY_CAP_SECONDS = 0.2
IN_FLIGHT_STATUSES = [TransactionStatus.PROCESSING.value, TransactionStatus.AUTHORIZED.value]


def _attempts() -> Iterator[int]:
    """Attempt numbers of an optimistic write; a retry first waits a random, growing moment
    (full jitter), so writers that lost to each other do not collide again in step."""
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**attempt)))  # noqa: S311
        yield attempt


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _event(event_type: str, actor: str, now: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"eventId": uuid7(), "type": event_type, "occurredAt": to_iso(now), "actor": actor, "data": data}


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass
class ProviderEventResult:
    applied: bool


@dataclass
class SweepReport:
    expired: int = 0
    recovered: int = 0
    examined: int = 0
    stopped_early: bool = False


def session_view(item: dict[str, Any], now: datetime, url: str | None = None) -> Session:
    """The Session resource as every read reports it (effective status)."""
    status = transitions.effective_status(
        item["status"], item["expiresAt"], item.get("inFlight", 0), _epoch(now)
    )
    expired_at = item.get("expiredAt")
    if status is SessionStatus.EXPIRED and expired_at is None:
        expired_at = to_iso(from_epoch(item["expiresAt"]))
    cancellation = item.get("cancellation")
    if cancellation:
        # The finaliser writes Step Functions' own time format; every answer uses the contract's.
        cancellation = {
            key: _normalise_time(value) if key in _CANCELLATION_TIMES and isinstance(value, str) else value
            for key, value in cancellation.items()
        }
    return Session(
        sessionId=item["sessionId"],
        status=status,
        amount=item["amount"],
        currency=item["currency"],
        referenceId=item["referenceId"],
        customerId=item.get("customerId"),
        description=item.get("description"),
        metadata=item.get("metadata") or {},
        returnUrl=item["returnUrl"],
        url=url,
        createdAt=item["createdAt"],
        updatedAt=_normalise_time(item["updatedAt"]),
        expiresAt=to_iso(from_epoch(item["expiresAt"])),
        completedAt=_optional_time(item.get("completedAt")),
        cancelledAt=_optional_time(item.get("cancelledAt")),
        expiredAt=_optional_time(expired_at),
        cancellation=Cancellation.model_validate(cancellation) if cancellation else None,
        transactions=[Transaction.model_validate(tx) for tx in _transactions_in_order(item)],
    )


def _transactions_in_order(item: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        (item.get("transactions") or {}).values(), key=lambda tx: (tx["createdAt"], tx["transactionId"])
    )


_CANCELLATION_TIMES = frozenset({"requestedAt", "finalizedAt", "finalizeBy"})


def _normalise_time(text: str) -> str:
    try:
        return to_iso(from_iso(text))
    except ValueError:
        return text


def _optional_time(text: str | None) -> str | None:
    return None if text is None else _normalise_time(text)


def event_view(item: dict[str, Any]) -> Event:
    return Event(
        eventId=item["eventId"],
        type=item["type"],
        sessionId=item["sessionId"],
        sequence=item["sequence"],
        occurredAt=_normalise_time(item["occurredAt"]),
        actor=item["actor"],
        data=item.get("data") or {},
    )


class CheckoutService:
    def __init__(
        self,
        repository: SessionRepository | None = None,
        providers: ProviderRegistry | None = None,
        finaliser: Finaliser | None = None,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings or get_settings()
        self.repository = repository or SessionRepository(self.settings.table_name)
        self._providers = providers
        self._finaliser = finaliser
        self.clock = clock

    @property
    def providers(self) -> ProviderRegistry:
        if self._providers is None:
            self._providers = get_providers()
        return self._providers

    @property
    def finaliser(self) -> Finaliser:
        if self._finaliser is None:
            self._finaliser = Finaliser(self.settings.state_machine_arn)
        return self._finaliser

    # -- reads ----------------------------------------------------------------------------------------

    def _owned_session(self, tenant: Tenant, session_id: str) -> dict[str, Any]:
        if not is_uuid7(session_id):
            raise InvalidRequest(
                "sessionId must be a UUID version 7 in lowercase canonical form.", "sessionId"
            )
        item = self.repository.get_session(session_id)
        if item is None or item.get("tenantId") != tenant.tenant_id:
            raise SessionNotFound(session_id)
        return item

    def get_session(self, tenant: Tenant, session_id: str) -> Session:
        return session_view(self._owned_session(tenant, session_id), self.clock())

    def list_sessions(
        self, tenant: Tenant, status: SessionStatus | None, limit: int, cursor: str | None
    ) -> SessionList:
        now = _epoch(self.clock())
        status_filter: tuple[str, dict[str, Any]] | None = None
        if status is SessionStatus.OPEN:
            status_filter = (
                "{status} = :open AND ({expiresAt} > :now OR {inFlight} > :zero)",
                {":open": "OPEN", ":now": now, ":zero": 0},
            )
        elif status is SessionStatus.EXPIRED:
            status_filter = (
                "{status} = :expired OR ({status} = :open AND {expiresAt} <= :now AND {inFlight} = :zero)",
                {":expired": "EXPIRED", ":open": "OPEN", ":now": now, ":zero": 0},
            )
        elif status is not None:
            status_filter = ("{status} = :wanted", {":wanted": status.value})
        items, next_cursor = self.repository.list_sessions(tenant.tenant_id, limit, cursor, status_filter)
        moment = self.clock()
        return SessionList(data=[session_view(item, moment) for item in items], nextCursor=next_cursor)

    def list_events(self, tenant: Tenant, session_id: str) -> list[Event]:
        self._owned_session(tenant, session_id)
        return [event_view(item) for item in self.repository.list_events(session_id)]

    def pay_page_session(self, token: str) -> Session | None:
        """The session behind a hosted checkout token, or None for an unknown token."""
        if not 16 <= len(token) <= 128 or not all(ch.isalnum() or ch in "-_" for ch in token):
            return None
        pointer = self.repository.get_pay_token(hash_secret(token))
        if pointer is None:
            return None
        item = self.repository.get_session(pointer["sessionId"])
        return session_view(item, self.clock()) if item else None

    # -- create ---------------------------------------------------------------------------------------

    def create_session(self, tenant: Tenant, request: CreateSessionRequest, public_base_url: str) -> Session:
        settings = self.settings
        ttl = request.expiresInSeconds
        if ttl is None:
            ttl = settings.session_ttl_default_seconds
        if not settings.session_ttl_min_seconds <= ttl <= settings.session_ttl_max_seconds:
            raise InvalidRequest(
                f"expiresInSeconds must be between {settings.session_ttl_min_seconds} and "
                f"{settings.session_ttl_max_seconds}.",
                "expiresInSeconds",
            )
        from urllib.parse import urlsplit

        host = (urlsplit(request.returnUrl).hostname or "").lower()
        if host not in tenant.return_hosts:
            raise InvalidRequest("returnUrl host is not in this account's allowlist.", "returnUrl")
        now = self.clock()
        session_id = uuid7()
        token = secrets.token_urlsafe(24)
        expires_at = math.ceil((now + timedelta(seconds=ttl)).timestamp())
        item: dict[str, Any] = {
            "pk": f"SESSION#{session_id}",
            "sk": "SESSION",
            "entity": "SESSION",
            "sessionId": session_id,
            "tenantId": tenant.tenant_id,
            "status": SessionStatus.OPEN.value,
            "amount": request.amount,
            "currency": request.currency,
            "referenceId": request.referenceId,
            "metadata": dict(request.metadata),
            "returnUrl": request.returnUrl,
            "createdAt": to_iso(now),
            "updatedAt": to_iso(now),
            "expiresAt": expires_at,
            "version": 1,
            "seq": 1,
            "inFlight": 0,
            "txCount": 0,
            "transactions": {},
            "openShard": f"OPEN#{shard_of(session_id)}",
        }
        if request.customerId is not None:
            item["customerId"] = request.customerId
        if request.description is not None:
            item["description"] = request.description
        event = _event(
            "session.created",
            "api",
            now,
            {
                "amount": request.amount,
                "currency": request.currency,
                "referenceId": request.referenceId,
                "expiresAt": to_iso(from_epoch(expires_at)),
            },
        )
        self.repository.create_session(item, hash_secret(token), event)
        count_transition("SessionCreated")
        logger.info("session created", extra={"sessionId": session_id, "tenantId": tenant.tenant_id})
        return session_view(item, now, url=f"{public_base_url.rstrip('/')}/pay/{token}")

    # -- payment attempts -----------------------------------------------------------------------------

    def create_transaction(self, tenant: Tenant, session_id: str, provider_name: str) -> Transaction:
        if self.providers.get(provider_name) is None:
            raise InvalidRequest(
                f"Unknown provider; use one of {', '.join(self.providers.names())}.", "provider"
            )
        for _ in _attempts():
            item = self._owned_session(tenant, session_id)
            now = self.clock()
            self._require_writable(item, now, SessionNotOpen)
            if item["txCount"] >= transitions.MAX_TRANSACTIONS_PER_SESSION:
                raise TransactionLimitReached(transitions.MAX_TRANSACTIONS_PER_SESSION)
            transaction_id = uuid7()
            summary = {
                "transactionId": transaction_id,
                "provider": provider_name,
                "status": TransactionStatus.PROCESSING.value,
                "amount": item["amount"],
                "createdAt": to_iso(now),
                "updatedAt": to_iso(now),
            }
            change = SessionChange(
                session_id=session_id,
                expected_version=item["version"],
                seen_seq=item["seq"],
                set={f"transactions.{transaction_id}": summary, "updatedAt": to_iso(now)},
                add={"inFlight": 1, "txCount": 1},
                condition="{status} = :open AND {expiresAt} > :now AND {txCount} < :max",
                condition_values={
                    ":open": "OPEN",
                    ":now": _epoch(now),
                    ":max": transitions.MAX_TRANSACTIONS_PER_SESSION,
                },
                events=[_event("transaction.created", "api", now, {**summary})],
                new_items=[
                    {
                        **transaction_key(transaction_id),
                        "entity": "TRANSACTION",
                        "sessionId": session_id,
                        **summary,
                    }
                ],
            )
            try:
                self.repository.apply(change)
            except WriteConflict:
                continue
            count_transition("TransactionCreated")
            logger.info(
                "transaction created",
                extra={
                    "sessionId": session_id,
                    "transactionId": transaction_id,
                    "tenantId": tenant.tenant_id,
                },
            )
            return Transaction.model_validate(summary)
        raise ConcurrentUpdate()

    def _require_writable(self, item: dict[str, Any], now: datetime, not_open: type[SessionNotOpen]) -> None:
        status = item["status"]
        if status == SessionStatus.EXPIRED:
            raise SessionExpired()
        if status != SessionStatus.OPEN:
            raise not_open(status)
        if transitions.is_past_expiry(item["expiresAt"], _epoch(now)):
            effective = transitions.effective_status(status, item["expiresAt"], item["inFlight"], _epoch(now))
            raise SessionExpired(effective.value)

    # -- cancel ---------------------------------------------------------------------------------------

    def cancel_session(self, tenant: Tenant, session_id: str, request: CancelRequest) -> CancelResponse:
        for _ in _attempts():
            item = self._owned_session(tenant, session_id)
            now = self.clock()
            status = item["status"]
            if status == SessionStatus.EXPIRED:
                raise SessionExpired()
            if status != SessionStatus.OPEN:
                raise SessionNotCancellable(status)
            if transitions.is_past_expiry(item["expiresAt"], _epoch(now)):
                raise SessionExpired(
                    transitions.effective_status(
                        status, item["expiresAt"], item["inFlight"], _epoch(now)
                    ).value
                )
            plan = transitions.plan_cancellation(
                (tx["transactionId"], tx["status"], self._can_cancel_in_flight(tx["provider"]))
                for tx in _transactions_in_order(item)
            )
            if request.whenInFlight is WhenInFlight.REJECT and plan.left_in_flight:
                raise TransactionsInFlight(list(plan.left_in_flight))
            cancellation = {
                "reason": request.reason,
                "reasonType": request.reasonType.value if request.reasonType else None,
                "referenceId": request.referenceId,
                "requestedAt": to_iso(now),
                "finalizedAt": None,
                "finalizeBy": to_iso(now + timedelta(seconds=self.settings.cancellation_deadline_seconds)),
                "cancelledTransactionIds": [],
                "pendingTransactionIds": list(plan.in_flight),
                "settledTransactionIds": [],
                "attentionRequired": False,
            }
            try:
                if not plan.in_flight:
                    return self._cancel_now(item, cancellation, now)
                locked = self._lock(item, cancellation, now)
            except WriteConflict:
                continue
            break
        else:
            raise ConcurrentUpdate()
        faults.inject("cancel.after_lock")
        outcomes = self._cancel_at_providers(item, plan.to_cancel_at_provider)
        cancelled = [tx_id for tx_id, outcome in outcomes.items() if outcome is CancelOutcome.CANCELLED]
        final = self._record_provider_cancellations(locked, cancelled, actor="api", tokens=None)
        if final["status"] == SessionStatus.PENDING_CANCELLATION:
            self._start_finaliser(final)
        return self._cancel_response(final)

    def _can_cancel_in_flight(self, provider_name: str) -> bool:
        provider = self.providers.get(provider_name)
        return bool(provider and provider.cancel_in_flight)

    def _cancel_now(
        self, item: dict[str, Any], cancellation: dict[str, Any], now: datetime
    ) -> CancelResponse:
        cancellation["finalizedAt"] = to_iso(now)
        cancellation["pendingTransactionIds"] = []
        change = SessionChange(
            session_id=item["sessionId"],
            expected_version=item["version"],
            seen_seq=item["seq"],
            set={
                "status": SessionStatus.CANCELLED.value,
                "cancelledAt": to_iso(now),
                "updatedAt": to_iso(now),
                "cancellation": cancellation,
                "refundRequired": False,
            },
            remove=["openShard"],
            condition="{status} = :open AND {expiresAt} > :now AND {inFlight} = :zero",
            condition_values={":open": "OPEN", ":now": _epoch(now), ":zero": 0},
            events=[
                _event(
                    "session.cancelled",
                    "api",
                    now,
                    {**_reason_data(cancellation), "refundRequired": False, "settledTransactionIds": []},
                )
            ],
        )
        self.repository.apply(change)
        count_transition("SessionCancelled")
        logger.info("session cancelled", extra={"sessionId": item["sessionId"], "tenantId": item["tenantId"]})
        final = {**item, **change.set}
        return self._cancel_response(final)

    def _lock(self, item: dict[str, Any], cancellation: dict[str, Any], now: datetime) -> dict[str, Any]:
        """OPEN -> PENDING_CANCELLATION: from here no payment attempt can land on the session."""
        session_id = item["sessionId"]
        change = SessionChange(
            session_id=session_id,
            expected_version=item["version"],
            seen_seq=item["seq"],
            set={
                "status": SessionStatus.PENDING_CANCELLATION.value,
                "updatedAt": to_iso(now),
                "cancellation": cancellation,
                "refundRequired": False,
                "pendingShard": f"PENDING#{shard_of(session_id)}",
                "recheckAt": _epoch(now) + self.settings.cancellation_grace_seconds,
            },
            remove=["openShard"],
            condition="{status} = :open AND {expiresAt} > :now",
            condition_values={":open": "OPEN", ":now": _epoch(now)},
            events=[
                _event(
                    "session.cancellation_pending",
                    "api",
                    now,
                    {
                        **_reason_data(cancellation),
                        "inFlightTransactionIds": cancellation["pendingTransactionIds"],
                    },
                )
            ],
        )
        version = self.repository.apply(change)
        count_transition("SessionLocked")
        logger.info(
            "session locked for cancellation", extra={"sessionId": session_id, "tenantId": item["tenantId"]}
        )
        locked = {**item, **change.set, "version": version, "seq": item["seq"] + 1}
        locked.pop("openShard", None)
        return locked

    def _cancel_at_providers(
        self, item: dict[str, Any], transaction_ids: Iterable[str]
    ) -> dict[str, CancelOutcome]:
        """Asks each provider to cancel, all at once; a provider that raises counts as a failed call."""
        transactions = item.get("transactions") or {}
        wanted = list(transaction_ids)
        if not wanted:
            return {}

        def cancel(transaction_id: str) -> CancelOutcome:
            provider = self.providers.get(transactions[transaction_id]["provider"])
            if provider is None:
                return CancelOutcome.NOT_SUPPORTED
            try:
                return provider.cancel(transaction_id)
            except Exception:
                logger.exception(
                    "provider cancel call raised",
                    extra={"sessionId": item["sessionId"], "transactionId": transaction_id},
                )
                return CancelOutcome.FAILED

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(wanted), 8)) as pool:
            outcomes = dict(zip(wanted, pool.map(cancel, wanted), strict=True))
        for transaction_id, outcome in outcomes.items():
            if outcome is not CancelOutcome.CANCELLED:
                logger.warning(
                    "provider did not cancel a transaction in flight",
                    extra={
                        "sessionId": item["sessionId"],
                        "transactionId": transaction_id,
                        "outcome": outcome.value,
                    },
                )
        return outcomes

    def _record_provider_cancellations(
        self,
        item: dict[str, Any],
        cancelled_ids: list[str],
        actor: str,
        tokens: dict[str, str | None] | None,
    ) -> dict[str, Any]:
        """Records the provider-side cancellations; finalises when nothing is left in flight.

        `item` is the session as last known; a conflict re-reads it. `tokens` are the task tokens read
        from the transaction items when a finaliser may already be waiting on them (None: none can be).
        """
        session_id = item["sessionId"]
        for attempt in _attempts():
            if attempt:
                fresh = self.repository.get_session(session_id)
                if fresh is None:
                    raise SessionNotFound(session_id)
                item = fresh
            if item["status"] != SessionStatus.PENDING_CANCELLATION:
                return item
            now = self.clock()
            transactions = item.get("transactions") or {}
            still = [
                tx_id for tx_id in cancelled_ids if transitions.is_in_flight(transactions[tx_id]["status"])
            ]
            remaining = [
                tx["transactionId"]
                for tx in _transactions_in_order(item)
                if transitions.is_in_flight(tx["status"]) and tx["transactionId"] not in still
            ]
            if not still and remaining:
                return item
            cancellation = dict(item["cancellation"])
            cancellation["cancelledTransactionIds"] = [
                *cancellation.get("cancelledTransactionIds", []),
                *still,
            ]
            cancellation["pendingTransactionIds"] = remaining
            updates: dict[str, Any] = {"updatedAt": to_iso(now)}
            events = []
            tx_changes = []
            for tx_id in still:
                previous = transactions[tx_id]["status"]
                updates[f"transactions.{tx_id}.status"] = TransactionStatus.CANCELLED.value
                updates[f"transactions.{tx_id}.updatedAt"] = to_iso(now)
                tx_changes.append(
                    TransactionChange(
                        transaction_id=tx_id,
                        expected_statuses=[previous],
                        set={"status": TransactionStatus.CANCELLED.value, "updatedAt": to_iso(now)},
                        remove=["taskToken"],
                        check_token=tokens is not None,
                        expected_token=(tokens or {}).get(tx_id),
                    )
                )
                events.append(
                    _event(
                        "transaction.updated",
                        actor,
                        now,
                        {
                            "transactionId": tx_id,
                            "provider": transactions[tx_id]["provider"],
                            "from": previous,
                            "to": TransactionStatus.CANCELLED.value,
                        },
                    )
                )
            remove: list[str] = []
            finalised = not remaining
            if finalised:
                cancellation["finalizedAt"] = to_iso(now)
                updates.update({"status": SessionStatus.CANCELLED.value, "cancelledAt": to_iso(now)})
                remove = ["pendingShard", "recheckAt"]
                events.append(
                    _event(
                        "session.cancelled",
                        actor,
                        now,
                        {
                            **_reason_data(cancellation),
                            "refundRequired": bool(item.get("refundRequired")),
                            "settledTransactionIds": cancellation.get("settledTransactionIds", []),
                        },
                    )
                )
            updates["cancellation"] = cancellation
            change = SessionChange(
                session_id=session_id,
                expected_version=item["version"],
                seen_seq=item["seq"],
                set=updates,
                add={"inFlight": -len(still)} if still else {},
                remove=remove,
                condition="{status} = :pending",
                condition_values={":pending": SessionStatus.PENDING_CANCELLATION.value},
                events=events,
                transactions=tx_changes,
            )
            try:
                version = self.repository.apply(change)
            except WriteConflict:
                continue
            for tx_id in still:
                count_transition("TransactionCancelled")
                token = (tokens or {}).get(tx_id)
                if token:
                    self.finaliser.release(token, {"transactionId": tx_id, "status": "CANCELLED"})
            if finalised:
                count_transition("SessionCancelled")
                logger.info(
                    "session cancelled", extra={"sessionId": session_id, "tenantId": item["tenantId"]}
                )
            updated = {
                **item,
                "version": version,
                "seq": item["seq"] + len(events),
                "cancellation": cancellation,
            }
            updated["inFlight"] = item["inFlight"] - len(still)
            updated["transactions"] = {
                tx_id: ({**tx, "status": TransactionStatus.CANCELLED.value} if tx_id in still else tx)
                for tx_id, tx in transactions.items()
            }
            if finalised:
                updated.update({"status": SessionStatus.CANCELLED.value, "cancelledAt": to_iso(now)})
            return updated
        raise ConcurrentUpdate()

    def _start_finaliser(self, item: dict[str, Any]) -> None:
        try:
            started = self.finaliser.start(self._finaliser_input(item), execution_name(item["sessionId"]))
        except Exception:
            # The lock is in place; the scheduled safety net starts the finaliser on its next pass.
            logger.exception("finaliser did not start", extra={"sessionId": item["sessionId"]})
            return
        if started:
            count_transition("FinaliserStarted")

    def _cancel_response(self, item: dict[str, Any]) -> CancelResponse:
        cancellation = Cancellation.model_validate(item["cancellation"])
        status = SessionStatus(item["status"])
        pending = cancellation.pendingTransactionIds if status is SessionStatus.PENDING_CANCELLATION else []
        cancelled = cancellation.cancelledTransactionIds
        if status is SessionStatus.PENDING_CANCELLATION:
            whose = "its" if len(pending) == 1 else "their"
            message = (
                f"Session locked; {_plural(len(pending), 'transaction')} cannot be cancelled in flight "
                f"and will finish on {whose} own."
            )
        elif cancelled:
            message = (
                f"Session cancelled; {_plural(len(cancelled), 'transaction')} cancelled at the provider."
            )
        else:
            message = "Session cancelled."
        return CancelResponse(
            sessionId=item["sessionId"],
            status=status,
            message=message,
            cancelledTransactionIds=cancelled,
            pendingTransactionIds=pending,
            cancellation=cancellation,
        )

    # -- provider events ------------------------------------------------------------------------------

    def apply_provider_event(self, provider_name: str, event: ProviderEventRequest) -> ProviderEventResult:
        target = event.status.value
        transaction = (
            self.repository.get_transaction(event.transactionId) if is_uuid7(event.transactionId) else None
        )
        if transaction is None or transaction["provider"] != provider_name:
            raise TransactionNotFound(event.transactionId)
        session_id = transaction["sessionId"]
        for attempt in _attempts():
            if attempt:
                transaction = self.repository.get_transaction(event.transactionId) or transaction
            previous = transaction["status"]
            if not transitions.can_move_transaction(previous, target):
                logger.info(
                    "provider event ignored",
                    extra={
                        "sessionId": session_id,
                        "transactionId": event.transactionId,
                        "from": previous,
                        "to": target,
                    },
                )
                return ProviderEventResult(applied=False)
            item = self.repository.get_session(session_id)
            if item is None:
                raise TransactionNotFound(event.transactionId)
            now = self.clock()
            change, token = self._transaction_move(item, transaction, provider_name, event, now)
            try:
                self.repository.apply(change)
            except WriteConflict as conflict:
                if conflict.part.startswith("item:PROVIDER_EVENT#"):
                    return ProviderEventResult(applied=False)
                continue
            count_transition(f"Transaction{target.title()}")
            for event_record in change.events:
                if event_record["type"].startswith("session."):
                    count_transition(
                        "Session" + event_record["type"].split(".", 1)[1].title().replace("_", "")
                    )
            logger.info(
                "provider event applied",
                extra={
                    "sessionId": session_id,
                    "transactionId": event.transactionId,
                    "from": previous,
                    "to": target,
                    "tenantId": item["tenantId"],
                },
            )
            if token and not transitions.is_in_flight(target):
                self.finaliser.release(token, {"transactionId": event.transactionId, "status": target})
            return ProviderEventResult(applied=True)
        raise ConcurrentUpdate()

    def _transaction_move(
        self,
        item: dict[str, Any],
        transaction: dict[str, Any],
        provider_name: str,
        event: ProviderEventRequest,
        now: datetime,
    ) -> tuple[SessionChange, str | None]:
        tx_id = transaction["transactionId"]
        previous, target = transaction["status"], event.status.value
        leaves_flight = transitions.is_in_flight(previous) and not transitions.is_in_flight(target)
        in_flight_after = item["inFlight"] - (1 if leaves_flight else 0)
        past_expiry = transitions.is_past_expiry(item["expiresAt"], _epoch(now))
        session_after = transitions.session_status_after_transaction_move(
            item["status"], target, in_flight_after, past_expiry
        )
        token = transaction.get("taskToken")
        updates: dict[str, Any] = {
            f"transactions.{tx_id}.status": target,
            f"transactions.{tx_id}.updatedAt": to_iso(now),
            "updatedAt": to_iso(now),
        }
        remove: list[str] = []
        events = [
            _event(
                "transaction.updated",
                f"provider:{provider_name}",
                now,
                {"transactionId": tx_id, "provider": provider_name, "from": previous, "to": target},
            )
        ]
        if item["status"] == SessionStatus.PENDING_CANCELLATION and leaves_flight:
            cancellation = dict(item["cancellation"])
            cancellation["pendingTransactionIds"] = [
                pending for pending in cancellation.get("pendingTransactionIds", []) if pending != tx_id
            ]
            if target == TransactionStatus.SETTLED:
                cancellation["settledTransactionIds"] = [
                    *cancellation.get("settledTransactionIds", []),
                    tx_id,
                ]
                updates["refundRequired"] = True
            updates["cancellation"] = cancellation
        if session_after is SessionStatus.COMPLETED and item["status"] != SessionStatus.COMPLETED:
            updates.update({"status": SessionStatus.COMPLETED.value, "completedAt": to_iso(now)})
            remove.append("openShard")
            events.append(
                _event("session.completed", f"provider:{provider_name}", now, {"transactionId": tx_id})
            )
        elif target == TransactionStatus.SETTLED and item["status"] == SessionStatus.COMPLETED:
            # Another payment already completed this session: the customer has now paid twice.
            updates["refundRequired"] = True
            events.append(
                _event(
                    "session.attention_required",
                    f"provider:{provider_name}",
                    now,
                    {"reason": "DUPLICATE_SETTLEMENT", "transactionId": tx_id, "refundRequired": True},
                )
            )
        elif session_after is SessionStatus.EXPIRED and item["status"] != SessionStatus.EXPIRED:
            updates.update({"status": SessionStatus.EXPIRED.value, "expiredAt": to_iso(now)})
            remove.append("openShard")
            events.append(
                _event("session.expired", f"provider:{provider_name}", now, {"expiresAt": _iso_epoch(item)})
            )
        change = SessionChange(
            session_id=item["sessionId"],
            expected_version=item["version"],
            seen_seq=item["seq"],
            set=updates,
            add={"inFlight": -1} if leaves_flight else {},
            remove=remove,
            events=events,
            transactions=[
                TransactionChange(
                    transaction_id=tx_id,
                    expected_statuses=[previous],
                    set={"status": target, "updatedAt": to_iso(now)},
                    remove=["taskToken"] if not transitions.is_in_flight(target) else [],
                    check_token=True,
                    expected_token=token,
                )
            ],
            new_items=[
                {
                    "pk": f"PROVIDER_EVENT#{provider_name}#{event.eventId}",
                    "sk": "SEEN",
                    "entity": "PROVIDER_EVENT",
                    "transactionId": tx_id,
                    "ttl": _epoch(now) + PROVIDER_EVENT_RETENTION_SECONDS,
                }
            ],
        )
        return change, token

    # -- expiry and the safety net --------------------------------------------------------------------

    def sweep(self, time_left_ms: Callable[[], int], margin_ms: int = 5000) -> SweepReport:
        """Persists EXPIRED for due OPEN sessions, then recovers due pending cancellations.

        Reads only the sparse indexes' due entries and the sessions they name. Stops submitting work
        when the invocation is about to run out of time; what is left is still due for the next run.
        """
        report = SweepReport()
        now = self.clock()
        due_expiries = self.repository.due_keys(
            "byExpiry", "openShard", "OPEN", "expiresAt", _epoch(now), self.settings.sweep_page_size
        )
        report.expired = self._run_bounded(due_expiries, self.expire_session, time_left_ms, margin_ms, report)
        if not report.stopped_early:
            due_recoveries = self.repository.due_keys(
                "byPendingCancellation",
                "pendingShard",
                "PENDING",
                "recheckAt",
                _epoch(now),
                self.settings.sweep_page_size,
            )
            report.recovered = self._run_bounded(
                due_recoveries, self.recover_cancellation, time_left_ms, margin_ms, report
            )
        logger.info("sweep finished", extra={"report": report.__dict__})
        return report

    def _run_bounded(
        self,
        keys: Iterable[dict[str, Any]],
        work: Callable[[str], bool],
        time_left_ms: Callable[[], int],
        margin_ms: int,
        report: SweepReport,
    ) -> int:
        from concurrent.futures import ThreadPoolExecutor

        done = 0
        with ThreadPoolExecutor(max_workers=self.settings.sweep_concurrency) as pool:
            batch: list[str] = []
            for key in keys:
                if time_left_ms() < margin_ms:
                    report.stopped_early = True
                    break
                batch.append(key["pk"].split("#", 1)[1])
                if len(batch) == self.settings.sweep_concurrency:
                    done += sum(pool.map(work, batch))
                    report.examined += len(batch)
                    batch = []
            if batch:
                done += sum(pool.map(work, batch))
                report.examined += len(batch)
        return done

    def expire_session(self, session_id: str) -> bool:
        """OPEN, past expiresAt, nothing in flight -> EXPIRED. False when another outcome won."""
        for _ in _attempts():
            item = self.repository.get_session(session_id)
            now = self.clock()
            if (
                item is None
                or item["status"] != SessionStatus.OPEN
                or item["inFlight"] != 0
                or not transitions.is_past_expiry(item["expiresAt"], _epoch(now))
            ):
                return False
            change = SessionChange(
                session_id=session_id,
                expected_version=item["version"],
                seen_seq=item["seq"],
                set={
                    "status": SessionStatus.EXPIRED.value,
                    "expiredAt": _iso_epoch(item),
                    "updatedAt": to_iso(now),
                },
                remove=["openShard"],
                condition="{status} = :open AND {expiresAt} <= :now AND {inFlight} = :zero",
                condition_values={":open": "OPEN", ":now": _epoch(now), ":zero": 0},
                events=[_event("session.expired", "scheduler", now, {"expiresAt": _iso_epoch(item)})],
            )
            try:
                self.repository.apply(change)
            except WriteConflict:
                continue
            count_transition("SessionExpired")
            logger.info("session expired", extra={"sessionId": session_id, "tenantId": item["tenantId"]})
            return True
        return False

    def recover_cancellation(self, session_id: str) -> bool:
        """The safety net for a PENDING_CANCELLATION session past its recheck time.

        Retries the provider cancel of transactions still in flight whose provider can cancel in
        flight (a cancel whose process died between the lock and the provider calls never made them),
        then makes sure a finaliser is waiting on whatever is left.
        """
        item = self.repository.get_session(session_id)
        if item is None or item["status"] != SessionStatus.PENDING_CANCELLATION:
            return False
        now = self.clock()
        cancellable = [
            tx["transactionId"]
            for tx in _transactions_in_order(item)
            if transitions.is_in_flight(tx["status"]) and self._can_cancel_in_flight(tx["provider"])
        ]
        outcomes = self._cancel_at_providers(item, cancellable)
        cancelled = [tx_id for tx_id, outcome in outcomes.items() if outcome is CancelOutcome.CANCELLED]
        tokens: dict[str, str | None] = {}
        for tx_id in cancelled:
            stored = self.repository.get_transaction(tx_id) or {}
            tokens[tx_id] = stored.get("taskToken")
        final = self._record_provider_cancellations(item, cancelled, actor="scheduler", tokens=tokens)
        if final["status"] != SessionStatus.PENDING_CANCELLATION:
            return True
        self._ensure_finaliser(final, now)
        return True

    def _ensure_finaliser(self, item: dict[str, Any], now: datetime) -> None:
        session_id = item["sessionId"]
        restarts = int(item.get("finaliserRestarts", 0))
        name = execution_name(session_id) if restarts == 0 else f"{execution_name(session_id)}-{restarts}"
        next_restarts = restarts
        try:
            running = self.finaliser.is_running(name)
            if not running and not self.finaliser.start(self._finaliser_input(item), name):
                # An execution of that name ran and ended while the session is still pending.
                next_restarts = restarts + 1
                self.finaliser.start(
                    self._finaliser_input(item), f"{execution_name(session_id)}-{next_restarts}"
                )
        except Exception:
            logger.exception("finaliser check failed", extra={"sessionId": session_id})
        change = SessionChange(
            session_id=session_id,
            expected_version=item["version"],
            seen_seq=item["seq"],
            set={
                "recheckAt": _epoch(now) + self.settings.cancellation_recheck_seconds,
                "finaliserRestarts": next_restarts,
            },
            condition="{status} = :pending",
            condition_values={":pending": SessionStatus.PENDING_CANCELLATION.value},
        )
        try:
            self.repository.apply(change)
        except WriteConflict:
            logger.info(
                "session changed during recovery; next pass rechecks it", extra={"sessionId": session_id}
            )

    def _finaliser_input(self, item: dict[str, Any]) -> dict[str, Any]:
        cancellation = item["cancellation"]
        return {
            "sessionId": item["sessionId"],
            "pendingTransactionIds": cancellation["pendingTransactionIds"],
            "finalizeBy": cancellation["finalizeBy"],
            "finalEventId": uuid7(),
            "attentionEventId": uuid7(),
        }


def _iso_epoch(item: dict[str, Any]) -> str:
    return to_iso(from_epoch(item["expiresAt"]))


def _reason_data(cancellation: dict[str, Any]) -> dict[str, Any]:
    return {
        "reason": cancellation.get("reason"),
        "reasonType": cancellation.get("reasonType"),
        "referenceId": cancellation.get("referenceId"),
    }


@cache
def get_service() -> CheckoutService:
    return CheckoutService()
