"""Typed settings read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    table_name: str
    idempotency_table_name: str
    event_bus_name: str
    state_machine_arn: str
    public_base_url: str
    provider_secrets_name: str
    sandbox_webhook_secret: str
    session_ttl_min_seconds: int
    session_ttl_max_seconds: int
    session_ttl_default_seconds: int
    cancellation_recheck_seconds: int
    cancellation_deadline_seconds: int
    cancellation_grace_seconds: int
    sweep_concurrency: int
    sweep_page_size: int
    hosted_test_payments: bool
    provider_reconcile_seconds: int
    stripe_api_key: str
    stripe_webhook_secret: str
    stripe_api_base: str | None
    webhook_queue_url: str = ""
    webhook_allow_private_urls: bool = False
    webhook_requeue_grace_seconds: int = 300
    webhook_events_dead_letter_url: str = ""
    webhook_delivery_dead_letter_url: str = ""
    # Set by the embedded runtime only: http:// return URLs to loopback, and errors that name its settings.
    local_runtime: bool = False
    adyen_api_key: str = ""
    adyen_merchant_account: str = ""
    adyen_hmac_key: str = ""
    adyen_api_base: str | None = None
    stripe_confirm_window_seconds: int = 120


@cache
def get_settings() -> Settings:
    return Settings(
        table_name=os.environ.get("TABLE_NAME", "checkout-sessions"),
        idempotency_table_name=os.environ.get("IDEMPOTENCY_TABLE_NAME", "checkout-idempotency"),
        event_bus_name=os.environ.get("EVENT_BUS_NAME", "checkout"),
        state_machine_arn=os.environ.get("STATE_MACHINE_ARN", ""),
        public_base_url=os.environ.get("PUBLIC_BASE_URL", "").rstrip("/"),
        provider_secrets_name=os.environ.get("PROVIDER_SECRETS_NAME", ""),
        sandbox_webhook_secret=os.environ.get("SANDBOX_WEBHOOK_SECRET", "whsec_sandbox"),
        session_ttl_min_seconds=_int("SESSION_TTL_MIN_SECONDS", 1800),
        session_ttl_max_seconds=_int("SESSION_TTL_MAX_SECONDS", 86400),
        session_ttl_default_seconds=_int("SESSION_TTL_DEFAULT_SECONDS", 1800),
        cancellation_recheck_seconds=_int("CANCELLATION_RECHECK_SECONDS", 3600),
        cancellation_deadline_seconds=_int("CANCELLATION_DEADLINE_SECONDS", 259200),
        cancellation_grace_seconds=_int("CANCELLATION_GRACE_SECONDS", 120),
        sweep_concurrency=_int("SWEEP_CONCURRENCY", 8),
        sweep_page_size=_int("SWEEP_PAGE_SIZE", 100),
        stripe_api_key=os.environ.get("STRIPE_API_KEY", ""),
        stripe_webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
        stripe_api_base=os.environ.get("STRIPE_API_BASE") or None,
        stripe_confirm_window_seconds=_int("STRIPE_CONFIRM_WINDOW_SECONDS", 120),
        provider_reconcile_seconds=_int("PROVIDER_RECONCILE_SECONDS", 900),
        hosted_test_payments=os.environ.get("HOSTED_TEST_PAYMENTS", "false").strip().lower() == "true",
        webhook_queue_url=os.environ.get("WEBHOOK_QUEUE_URL", ""),
        webhook_allow_private_urls=os.environ.get("WEBHOOK_ALLOW_PRIVATE_URLS", "false").strip().lower()
        == "true",
        webhook_requeue_grace_seconds=_int("WEBHOOK_REQUEUE_GRACE_SECONDS", 300),
        webhook_events_dead_letter_url=os.environ.get("WEBHOOK_EVENTS_DLQ_URL", ""),
        webhook_delivery_dead_letter_url=os.environ.get("WEBHOOK_DELIVERY_DLQ_URL", ""),
        local_runtime=os.environ.get("LOCAL_RUNTIME", "false").strip().lower() == "true",
        adyen_api_key=os.environ.get("ADYEN_API_KEY", ""),
        adyen_merchant_account=os.environ.get("ADYEN_MERCHANT_ACCOUNT", ""),
        adyen_hmac_key=os.environ.get("ADYEN_HMAC_KEY", ""),
        adyen_api_base=os.environ.get("ADYEN_API_BASE") or None,
    )
