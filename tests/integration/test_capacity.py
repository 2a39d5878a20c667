"""The capacity model (bench/capacity.py) over the real handlers against moto: at contract §10's rates no
partition key passes DynamoDB's per-partition limits and no SQS FIFO message group passes 300 messages a
second; the webhook fan-out is fed in many message groups. Small loads: a key touched by every session
keeps its per-session count whatever the size, and a per-session key is counted as if its session lasted
one second (an upper bound)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench import capacity
from local import cfn

TENANT_INDEX_KEY = "SessionsTable/byTenantKeys tenantId=<tenant>"


# What used to be over: an endpoint's delivery log as one key, and the tenant's key under every attempt's
# and fan-out's check of the endpoints' versions. Both must stay under with the rest.
DELIVERY_LOG_SHARD_KEY = "SessionsTable pk=ENDPOINT#<id>#<n>"
TENANT_KEY = "SessionsTable pk=TENANT#<tenant>"


def test_one_busy_tenant_makes_no_hot_key(aws: Any) -> None:
    # Given one tenant whose sessions are created, paid, completed or cancelled, and webhooked
    # When the model runs them at 300 new sessions a second
    result = capacity.model(sessions=6, tenants=1, rate=capacity.ONE_TENANT_RATE)
    # Then the tenant's index key takes one write per new session, and its updates none
    assert result["keys"][TENANT_INDEX_KEY]["writes"] == capacity.ONE_TENANT_RATE
    # And no key passes 1,000 writes or 3,000 reads a second, nor a message group 300 messages
    assert capacity.over_limits(result) == []
    assert result["fanout_groups_used"] == 6
    # And the endpoint's delivery log is written in shards only, the tenant's key a little
    assert "SessionsTable pk=ENDPOINT#<id>" not in result["keys"]
    assert result["keys"][DELIVERY_LOG_SHARD_KEY]["writes"] > 0
    assert result["keys"][TENANT_KEY]["writes"] == 0


def test_many_tenants_fan_out_in_many_groups(aws: Any) -> None:
    # Given sessions spread over many tenants, at 1,000 new sessions a second
    result = capacity.model(sessions=20, tenants=20, rate=capacity.ALL_TENANTS_RATE)
    # Then the fan-out receives them in a group per session, none near the FIFO group limit
    assert result["fanout_groups_used"] == 20
    assert result["hottest_group"]["per_second"] <= capacity.MESSAGES_PER_GROUP_LIMIT
    assert capacity.over_limits(result) == []


def _one_lane(template: dict[str, Any]) -> None:
    pipe = template["Resources"]["WebhookEventsPipe"]["Properties"]
    pipe["TargetParameters"]["SqsQueueParameters"]["MessageGroupId"] = "events"


def _tenant_index_of_whole_items(template: dict[str, Any]) -> None:
    for index in template["Resources"]["SessionsTable"]["Properties"]["GlobalSecondaryIndexes"]:
        if index["IndexName"] == "byTenantKeys":
            index["Projection"] = {"ProjectionType": "ALL"}


@pytest.mark.parametrize(
    ("mutate", "found"),
    [
        (_one_lane, "WebhookEventsQueue events"),
        (_tenant_index_of_whole_items, TENANT_INDEX_KEY),
    ],
)
def test_the_model_finds_a_single_lane_or_a_hot_tenant_key(aws: Any, mutate: Any, found: str) -> None:
    # Given the template with one message group for the fan-out, or a tenant index that every update rewrites
    template = copy.deepcopy(cfn.load_template())
    mutate(template)
    # When one busy tenant runs through the model
    result = capacity.model(sessions=4, tenants=1, rate=capacity.ONE_TENANT_RATE, template=template)
    # Then the lane or the key is reported over its limit
    assert any(problem.startswith(found) for problem in capacity.over_limits(result)), capacity.over_limits(
        result
    )
