"""An endpoint's delivery log in shards, in process against moto: its pages merge the shards newest first
and page on without a gap or a repeat, a delivery of before the sharding (under the one key of then) is
listed, resent and recovered, and an endpoint made before the copies of its version still gets its
deliveries while a deleted one gets nothing."""

# ruff: noqa: F811 - `world` is the fixture imported from the schedule tests
from __future__ import annotations

import hashlib
from typing import Any

from checkout_core.clock import uuid7_from
from checkout_core.webhooks.deliveries import recover, resend
from checkout_core.webhooks.store import (
    LOG_SHARDS,
    delivery_key,
    log_shard,
    unsharded_delivery_key,
    version_copy_key,
)
from tests.integration.flows import create_session
from tests.integration.test_webhook_schedule import TENANT, World, endpoint, world  # noqa: F401

EPOCH_MS = 1_800_000_000_000


def put_logged(
    world: World, endpoint_id: str, count: int, unsharded_every: int = 0, failed_every: int = 2
) -> list[str]:
    """`count` deliveries a second apart, every `failed_every`-th FAILED and the others SUCCEEDED, every
    `unsharded_every`-th under the key of before the sharding; their ids, newest first."""
    ids = []
    for n in range(count):
        delivery_id = uuid7_from(EPOCH_MS + n * 1000, hashlib.sha256(str(n).encode()).digest())
        key = (
            unsharded_delivery_key(endpoint_id, delivery_id)
            if unsharded_every and n % unsharded_every == 0
            else delivery_key(endpoint_id, delivery_id)
        )
        world.services.db.put_delivery(
            {
                **key,
                "entity": "DELIVERY",
                "deliveryId": delivery_id,
                "endpointId": endpoint_id,
                "status": "SUCCEEDED" if n % failed_every else "FAILED",
            }
        )
        ids.append(delivery_id)
    return ids[::-1]


def every_page(world: World, endpoint_id: str, status: str | None, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        items, cursor = world.services.db.list_deliveries(endpoint_id, status, limit, cursor)
        pages.append([item["deliveryId"] for item in items])
        if cursor is None:
            return pages


def test_the_log_lists_every_shard_newest_first_page_after_page(world: World) -> None:
    # Given 40 deliveries spread over the shards, a few of them under the key of before the sharding
    hook = endpoint(world)
    newest_first = put_logged(world, hook["endpointId"], 40, unsharded_every=7)
    assert len({log_shard(d) for d in newest_first}) > LOG_SHARDS // 2
    # When the log is read 6 at a time
    pages = every_page(world, hook["endpointId"], None, 6)
    # Then the pages hold every delivery once, newest first, all but the last full
    assert [d for page in pages for d in page] == newest_first
    assert all(len(page) == 6 for page in pages[:-1])
    # And with a status filter only that status, in the same order
    failed = every_page(world, hook["endpointId"], "FAILED", 4)
    assert [d for page in failed for d in page] == newest_first[1::2]


def test_a_rare_status_pages_on_past_a_shard_read_only_in_part(world: World) -> None:
    # Given a log whose old key holds many deliveries, few of them FAILED
    hook = endpoint(world)
    newest_first = put_logged(world, hook["endpointId"], 60, unsharded_every=2, failed_every=9)
    # When the FAILED ones are listed two at a time (a page reads only part of the old key)
    pages = every_page(world, hook["endpointId"], "FAILED", 2)
    # Then every one of them comes, once, newest first (some pages shorter: where a shard stopped)
    expected = [d for n, d in enumerate(reversed(newest_first)) if n % 9 == 0][::-1]
    assert [d for page in pages for d in page] == expected
    assert any(len(page) < 2 for page in pages[:-1])


def test_a_delivery_made_before_the_sharding_is_listed_resent_and_recovered(world: World) -> None:
    # Given a delivered event, then its delivery moved under the key of before the sharding, failed
    hook = endpoint(world)
    session = create_session()["sessionId"]
    world.fan_out(session)
    while world.work():
        pass
    store = world.services.db
    logged = store.list_deliveries(hook["endpointId"], None, 100, None)[0]
    assert len(logged) == 1
    for item in logged:
        store.drop_delivery(item)
        old = {**item, **unsharded_delivery_key(item["endpointId"], item["deliveryId"]), "status": "FAILED"}
        store.put_delivery(old)
    delivery_id = logged[0]["deliveryId"]
    # When it is resent
    resend(world.services, TENANT, hook["endpointId"], delivery_id)
    while world.work():
        pass
    # Then the same item, at its old key, is sent and recorded
    assert len(world.merchant.got) == 2
    [listed] = store.list_deliveries(hook["endpointId"], None, 100, None)[0]
    assert (listed["pk"], listed["status"]) == (f"ENDPOINT#{hook['endpointId']}", "SUCCEEDED")
    # And once failed again, recover finds it there too
    store.update_delivery(listed, {"status": "EXHAUSTED"})
    answer = recover(world.services, TENANT, hook["endpointId"], "2000-01-01T00:00:00Z")
    while world.work():
        pass
    assert answer.recovered == 1 and len(world.merchant.got) == 3
    assert store.get_delivery(hook["endpointId"], delivery_id)["status"] == "SUCCEEDED"  # type: ignore[index]


def forget_version_copies(world: World, endpoint_id: str) -> None:
    """As an endpoint made before its version was copied into the shards of its log."""
    client = world.services.db._client_factory()
    for shard in range(LOG_SHARDS):
        key = version_copy_key(endpoint_id, shard)
        client.delete_item(
            TableName=world.services.db.table_name, Key={name: {"S": value} for name, value in key.items()}
        )


def test_an_endpoint_made_before_the_version_copies_gets_its_deliveries(world: World) -> None:
    hook = endpoint(world)
    forget_version_copies(world, hook["endpointId"])
    world.fan_out(create_session()["sessionId"])
    while world.work():
        pass
    assert len(world.merchant.got) == 1


def test_an_endpoint_deleted_while_its_version_copy_is_written_gets_nothing(world: World) -> None:
    # Given an endpoint without version copies, and an event for it
    hook = endpoint(world)
    forget_version_copies(world, hook["endpointId"])
    world.fan_out(create_session()["sessionId"])
    store: Any = world.services.db
    read = store.get_endpoint

    def read_then_deleted(tenant_id: str, endpoint_id: str) -> dict[str, Any] | None:
        found = read(tenant_id, endpoint_id)
        if found is not None and store.delete_endpoint(tenant_id, endpoint_id):
            deleted.append(endpoint_id)
        return found

    deleted: list[str] = []

    # When the endpoint is deleted right after the attempt read it to write the missing copy
    store.get_endpoint = read_then_deleted
    try:
        while world.work():
            pass
    finally:
        del store.get_endpoint
    # Then nothing is sent, no copy is left behind, and the delivery is dropped
    assert deleted == [hook["endpointId"]]
    assert world.merchant.got == []
    assert store.get_endpoint(TENANT.tenant_id, hook["endpointId"]) is None
    assert store.list_deliveries(hook["endpointId"], None, 100, None)[0] == []
