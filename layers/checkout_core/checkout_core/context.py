"""What every capability works with: settings, the table, the providers, the finaliser and the clock.

Each is made on first use, so importing a handler stays cheap; tests pass their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache

from checkout_core.clock import utc_now
from checkout_core.providers import ProviderRegistry, get_providers
from checkout_core.repository import SessionRepository
from checkout_core.settings import Settings, get_settings
from checkout_core.workflow import Finaliser


class Context:
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

    def can_cancel_in_flight(self, provider_name: str) -> bool:
        provider = self.providers.get(provider_name)
        return bool(provider and provider.cancel_in_flight)


@cache
def get_context() -> Context:
    return Context()
