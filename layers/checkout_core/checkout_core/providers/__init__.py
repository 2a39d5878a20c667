"""Payment providers: one adapter per provider behind one protocol (base.py), and the registry of the
ones this deployment has: the three sandboxes always, Stripe and Adyen where they are configured."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from functools import cache
from typing import Any, cast

from checkout_core.providers.base import (
    Attempt,
    BatchedEvents,
    CancelOutcome,
    ProviderAdapter,
    ProviderBatch,
    ProviderReport,
    ProviderState,
    Refusal,
)
from checkout_core.settings import get_settings

# Every provider this code can talk to; a deployment has the sandboxes and those it holds secrets for.
KNOWN_PROVIDERS = ("adyen", "sandbox_bank_transfer", "sandbox_card", "sandbox_flaky_card", "stripe")

__all__ = [
    "KNOWN_PROVIDERS",
    "Attempt",
    "BatchedEvents",
    "CancelOutcome",
    "ProviderAdapter",
    "ProviderBatch",
    "ProviderRegistry",
    "ProviderReport",
    "ProviderState",
    "Refusal",
    "get_providers",
]


# The adapter methods that call the provider, each timed and counted by provider (observability.py).
_CALLS = frozenset({"start", "cancel", "refund", "status", "complete", "complete_return"})


class _Metered:
    """An adapter whose provider calls publish their latency, and an error when they raise (or a cancel
    fails), per provider; everything else is the adapter's own."""

    def __init__(self, adapter: ProviderAdapter) -> None:
        self._adapter = adapter

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._adapter, name)
        if name not in _CALLS or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            from checkout_core.observability import provider_call

            started = time.perf_counter()
            failed = True
            try:
                result = value(*args, **kwargs)
                failed = result is CancelOutcome.FAILED
                return result
            finally:
                provider_call(self._adapter.name, time.perf_counter() - started, failed)

        return call


class ProviderRegistry:
    def __init__(self, adapters: list[ProviderAdapter]) -> None:
        self._adapters = {adapter.name: adapter for adapter in adapters}

    def names(self) -> list[str]:
        return sorted(self._adapters)

    def get(self, name: str) -> ProviderAdapter | None:
        adapter = self._adapters.get(name)
        return None if adapter is None else cast(ProviderAdapter, _Metered(adapter))


def _stored_secrets() -> dict[str, Any]:
    """Deployed: each provider's secrets, as JSON in the Secrets Manager secret PROVIDER_SECRETS_NAME
    (`{"sandbox_card": {"webhookSecret": ...}, "stripe": {"apiKey": ..., "webhookSecret": ...},
    "adyen": {"apiKey": ..., "merchantAccount": ..., "hmacKey": ..., "liveEndpointPrefix": ...}}`)."""
    name = get_settings().provider_secrets_name
    if not name:
        return {}
    from aws_lambda_powertools.utilities import parameters

    return dict(json.loads(str(parameters.get_secret(name, max_age=300))))


@cache
def get_providers() -> ProviderRegistry:
    from checkout_core.providers.sandbox import sandboxes

    settings = get_settings()
    stored = _stored_secrets()
    adapters: list[ProviderAdapter] = []
    for sandbox in sandboxes(settings.sandbox_webhook_secret):
        if not stored:
            adapters.append(sandbox)
        elif sandbox.name in stored:  # deployed, a sandbox exists only where its secret does
            adapters.append(replace(sandbox, webhook_secret=stored[sandbox.name]["webhookSecret"]))
    stripe_keys = stored.get("stripe") or {}
    api_key = stripe_keys.get("apiKey") or settings.stripe_api_key
    if api_key:
        from checkout_core.providers.stripe import StripeProvider, StripeSettings

        webhook_secret = stripe_keys.get("webhookSecret") or settings.stripe_webhook_secret
        adapters.append(
            StripeProvider(
                StripeSettings(
                    api_key,
                    webhook_secret,
                    settings.stripe_api_base,
                    confirm_window_seconds=settings.stripe_confirm_window_seconds,
                )
            )
        )
    adyen_keys = stored.get("adyen") or {}
    adyen_api_key = adyen_keys.get("apiKey") or settings.adyen_api_key
    if adyen_api_key:
        from checkout_core.providers.adyen import AdyenProvider, AdyenSettings

        adapters.append(
            AdyenProvider(
                AdyenSettings(
                    api_key=adyen_api_key,
                    merchant_account=adyen_keys.get("merchantAccount") or settings.adyen_merchant_account,
                    hmac_key=adyen_keys.get("hmacKey") or settings.adyen_hmac_key,
                    api_base=settings.adyen_api_base,
                    live_endpoint_prefix=adyen_keys.get("liveEndpointPrefix") or None,
                )
            )
        )
    return ProviderRegistry(adapters)
