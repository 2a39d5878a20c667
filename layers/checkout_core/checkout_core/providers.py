"""Payment provider adapters: the only code that talks to a provider.

The three sandbox providers call nobody; they exist for development, tests and demos. Each provider has
a name, a webhook secret and one capability, `cancel_in_flight`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Protocol

from checkout_core.settings import get_settings


class CancelOutcome(StrEnum):
    CANCELLED = "CANCELLED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    FAILED = "FAILED"


class ProviderAdapter(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def cancel_in_flight(self) -> bool: ...

    def cancel(self, transaction_id: str) -> CancelOutcome: ...


@dataclass(frozen=True)
class SandboxCard:
    name: str = "sandbox_card"
    cancel_in_flight: bool = True

    def cancel(self, transaction_id: str) -> CancelOutcome:
        return CancelOutcome.CANCELLED


@dataclass(frozen=True)
class SandboxBankTransfer:
    name: str = "sandbox_bank_transfer"
    cancel_in_flight: bool = False

    def cancel(self, transaction_id: str) -> CancelOutcome:
        return CancelOutcome.NOT_SUPPORTED


@dataclass(frozen=True)
class SandboxFlakyCard:
    """Claims it can cancel in flight, but its cancel call always fails, as during a provider outage."""

    name: str = "sandbox_flaky_card"
    cancel_in_flight: bool = True

    def cancel(self, transaction_id: str) -> CancelOutcome:
        return CancelOutcome.FAILED


class ProviderRegistry:
    def __init__(self, adapters: list[ProviderAdapter], secrets: dict[str, str]) -> None:
        self._adapters = {adapter.name: adapter for adapter in adapters}
        self._secrets = secrets

    def names(self) -> list[str]:
        return sorted(self._adapters)

    def get(self, name: str) -> ProviderAdapter | None:
        return self._adapters.get(name)

    def webhook_secret(self, name: str) -> str | None:
        return self._secrets.get(name)


def _webhook_secrets(names: list[str]) -> dict[str, str]:
    settings = get_settings()
    if settings.provider_secrets_name:
        from aws_lambda_powertools.utilities import parameters

        stored = json.loads(str(parameters.get_secret(settings.provider_secrets_name, max_age=300)))
        return {name: stored[name]["webhookSecret"] for name in names if name in stored}
    return dict.fromkeys(names, settings.sandbox_webhook_secret)


@cache
def get_providers() -> ProviderRegistry:
    adapters: list[ProviderAdapter] = [SandboxCard(), SandboxBankTransfer(), SandboxFlakyCard()]
    return ProviderRegistry(adapters, _webhook_secrets([adapter.name for adapter in adapters]))
