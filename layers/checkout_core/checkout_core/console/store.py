"""Console sign-ins in the sessions table: the only console code that talks to DynamoDB.

| item | pk | sk |
|---|---|---|
| sign-in | `CONSOLE#<sha256 of the cookie value>` | `CONSOLE`: `tenant`, `returnHosts`, `expiresAt`; TTL |

The cookie's value is never stored: a copy of the table signs no one in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from checkout_core import aws
from checkout_core.repository import item_from_dynamo


def sign_in_key(value_hash: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"CONSOLE#{value_hash}"}, "sk": {"S": "CONSOLE"}}


class ConsoleStore:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] | None = None) -> None:
        self.table_name = table_name
        self._client_factory = client_factory or (lambda: aws.client("dynamodb"))

    def put(self, value_hash: str, tenant: str, return_hosts: Sequence[str], expires_at: int) -> None:
        self._client_factory().put_item(
            TableName=self.table_name,
            Item={
                **sign_in_key(value_hash),
                "entity": {"S": "CONSOLE"},
                "tenant": {"S": tenant},
                "returnHosts": {"L": [{"S": host} for host in return_hosts]},
                "expiresAt": {"N": str(expires_at)},
                "ttl": {"N": str(expires_at)},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, value_hash: str) -> dict[str, Any] | None:
        answer = self._client_factory().get_item(
            TableName=self.table_name, Key=sign_in_key(value_hash), ConsistentRead=True
        )
        item = answer.get("Item")
        return item_from_dynamo(item) if item else None

    def delete(self, value_hash: str) -> None:
        self._client_factory().delete_item(TableName=self.table_name, Key=sign_in_key(value_hash))
