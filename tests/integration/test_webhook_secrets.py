"""Endpoint secrets at rest: sealed in the table (KMS envelope encryption when a key is configured), never
read by the fan-out, each rotated-out secret signing its full 24 h and then dropped."""

# ruff: noqa: F811 - `world` is the fixture imported from the schedule tests
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from standardwebhooks import Webhook

from checkout_core.webhooks import secret_box
from checkout_core.webhooks.endpoints import rotate_secret
from checkout_core.webhooks.fanout import FanOut
from tests.integration.flows import create_session
from tests.integration.test_webhook_schedule import TENANT, World, endpoint, world  # noqa: F401


def everything_stored(world: World) -> str:
    table = world.services.db.table_name
    return json.dumps(boto3.client("dynamodb").scan(TableName=table)["Items"])


def in_clear(secret: str, stored: str) -> bool:
    key = secret.removeprefix("whsec_")
    return secret in stored or key in stored or base64.b64decode(key).hex() in stored


def verifies(secret: str, body: str, headers: dict[str, str]) -> bool:
    """Whether one of the attempt's signatures is this secret's (the test's clock is days ahead of the
    library's, so its timestamp check is left out)."""
    moment = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(headers["webhook-id"], moment, body)
    return expected in headers["webhook-signature"].split(" ")


def test_secrets_rest_sealed_and_the_fan_out_never_reads_them(world: World) -> None:
    hook = endpoint(world)
    rotated = rotate_secret(world.services, TENANT, hook["endpointId"])
    stored = everything_stored(world)
    assert not in_clear(hook["secret"], stored) and not in_clear(rotated.secret, stored)
    _, endpoints = FanOut(world.services).endpoints(TENANT.tenant_id)
    assert endpoints and all("secret" not in e and "previousSecrets" not in e for e in endpoints)


def test_with_a_kms_key_each_secret_is_sealed_under_a_data_key_of_its_own(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    monkeypatch.setenv("ENDPOINT_SECRETS_KMS_KEY_ID", key_id)
    secret_box._data_keys.clear()
    hook = endpoint(world)
    item = world.services.db.get_endpoint(TENANT.tenant_id, hook["endpointId"])
    assert item is not None and "dataKey" in item["secret"]
    assert not in_clear(hook["secret"], everything_stored(world))
    # The delivery function opens it (KMS Decrypt) and signs with it
    world.fan_out(create_session()["sessionId"])
    secret_box._data_keys.clear()
    world.work()
    ((body, headers),) = world.merchant.got
    assert verifies(hook["secret"], body, headers)
    # Sealed for one endpoint, it does not open as another's (the encryption context binds it)
    with pytest.raises(Exception):  # noqa: B017 - KMS refuses: InvalidCiphertextException
        secret_box._data_keys.clear()
        secret_box.open_secret(item["secret"], "0190f0f0-0000-7000-8000-000000000000")


def test_every_secret_rotated_out_signs_for_its_own_24_hours_and_is_then_dropped(world: World) -> None:
    hook = endpoint(world)
    first = hook["secret"]
    world.clock.advance(3600)
    second = rotate_secret(world.services, TENANT, hook["endpointId"]).secret
    world.clock.advance(3600)
    third = rotate_secret(world.services, TENANT, hook["endpointId"]).secret  # a second rotation within 24 h

    def signed_with() -> list[str]:
        world.merchant.got.clear()
        world.fan_out(create_session()["sessionId"])
        world.work()
        ((body, headers),) = world.merchant.got
        return [s for s in (first, second, third) if verifies(s, body, headers)]

    assert signed_with() == [first, second, third]
    world.clock.advance(23 * 3600 + 1)  # the first secret's 24 h are over, the second's are not
    assert signed_with() == [second, third]
    world.clock.advance(3600)
    assert signed_with() == [third]
    item: Any = world.services.db.get_endpoint(TENANT.tenant_id, hook["endpointId"])
    assert "previousSecrets" not in item  # dropped, not only left unused
