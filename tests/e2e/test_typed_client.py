"""A typed client generated from the document the runtime serves (openapi-python-client, no hand edits)
drives the README walk-through: create, a bank transfer that cannot be cancelled in flight, cancel,
the provider's report, the final read and the timeline."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from checkout_core.signatures import sign
from tests.e2e.conftest import RunningRuntime
from tests.e2e.helpers import SANDBOX_SECRET, Api, wait_for_status

PACKAGE = "checkout_sessions_api_client"


@pytest.fixture(scope="module")
def client_package(runtime: RunningRuntime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("typed-client")
    with urllib.request.urlopen(f"{runtime.base_url}/v1/openapi.json", timeout=30) as served:  # noqa: S310
        (folder / "openapi.json").write_bytes(served.read())
    generator = Path(sys.executable).with_name("openapi-python-client")
    subprocess.run(  # noqa: S603 - the generator, on the document just served
        [str(generator), "generate", "--path", "openapi.json", "--meta", "none"],
        cwd=folder,
        env={**os.environ, "PATH": f"{generator.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (folder / PACKAGE / "api").is_dir()
    sys.path.insert(0, str(folder))
    yield PACKAGE
    sys.path.remove(str(folder))
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_the_readme_walk_through_with_the_generated_client(
    client_package: str, runtime: RunningRuntime
) -> None:
    client_module = module("client")
    models = module("models")
    # The generator puts each operation in the package of its OpenAPI tag.
    operations = {
        name: module(f"api.{tag}.{name}")
        for tag, name in (
            ("sessions", "create_session"),
            ("payments", "create_transaction"),
            ("cancel", "cancel_session"),
            ("sessions", "get_session"),
            ("timeline", "list_session_events"),
            ("sessions", "list_sessions"),
        )
    }
    client = client_module.AuthenticatedClient(base_url=runtime.base_url, token="sk_test_demo")

    created = operations["create_session"].sync_detailed(
        client=client,
        body=models.CreateSessionRequest(
            amount=5000,
            currency=models.CreateSessionRequestCurrency.USD,
            reference_id="order-123",
            return_url="https://example.com/return",
        ),
        idempotency_key=f"order-123-create-{time.time_ns()}",
    )
    assert created.status_code == 201 and isinstance(created.parsed, models.Session)
    session = created.parsed
    assert session.status == models.SessionStatus.OPEN and session.url.startswith(f"{runtime.base_url}/pay/")

    started = operations["create_transaction"].sync(
        session.session_id,
        client=client,
        body=models.CreateTransactionRequest(
            provider=models.CreateTransactionRequestProvider.SANDBOX_BANK_TRANSFER
        ),
    )
    assert isinstance(started, models.Transaction) and started.status == models.TransactionStatus.PROCESSING

    cancelled = operations["cancel_session"].sync(
        session.session_id,
        client=client,
        body=models.CancelRequest(reason_type=models.ReasonType.CUSTOMER_REQUESTED),
    )
    assert isinstance(cancelled, models.CancelResponse)
    assert cancelled.status == models.SessionStatus.PENDING_CANCELLATION
    assert cancelled.pending_transaction_ids == [started.transaction_id]

    report_failure(runtime.base_url, started.transaction_id)  # the provider's signed webhook
    wait_for_status(Api(runtime.base_url, "sk_test_demo"), session.session_id, "CANCELLED")

    final = operations["get_session"].sync(session.session_id, client=client)
    assert isinstance(final, models.Session) and final.status == models.SessionStatus.CANCELLED
    assert final.cancellation.finalized_at
    timeline = operations["list_session_events"].sync(session.session_id, client=client)
    assert isinstance(timeline, models.EventList)
    assert [event.sequence for event in timeline.data] == list(range(1, len(timeline.data) + 1))
    assert timeline.data[-1].type_ == "session.cancelled"
    listed = operations["list_sessions"].sync(client=client, status=models.SessionStatus.CANCELLED, limit=100)
    assert isinstance(listed, models.SessionList)
    assert session.session_id in [item.session_id for item in listed.data]

    missing = operations["get_session"].sync_detailed("01936f1c-0000-7000-8000-000000000000", client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.ErrorResponse)
    assert missing.parsed.error.code == "session_not_found"


def report_failure(base_url: str, transaction_id: str) -> Any:
    body = json.dumps(
        {"eventId": f"evt_{time.time_ns()}", "transactionId": transaction_id, "status": "FAILED"}
    )
    request = urllib.request.Request(  # noqa: S310 - the local runtime
        f"{base_url}/v1/providers/sandbox_bank_transfer/events",
        data=body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Provider-Signature": sign(SANDBOX_SECRET, int(time.time()), body.encode()),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        assert json.loads(answer.read()) == {"received": True, "applied": True}
