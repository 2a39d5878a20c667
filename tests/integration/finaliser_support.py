"""Helpers for running the CancellationFinaliser state machine in moto's Step Functions engine.

The table and the definition come from template.yaml (local.cfn). Items are written in the shapes of
docs/data-model.md. `ProviderPath.move` stands in for the provider-event handler: the same single
TransactWriteItems (transaction item, session summary, timeline event) followed by SendTaskSuccess.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from checkout_core.repository import pending_level_pk
from checkout_core.tallies import counter_pk, tally_shard
from local import cfn
from tests.support import wait_until

IN_FLIGHT = ("PROCESSING", "AUTHORIZED")
EVENT_SK_BASE = 100_000_000
ROLE_ARN = "arn:aws:iam::123456789012:role/cancellation-finaliser"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_iso(offset_seconds: float = 0) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=offset_seconds))


def new_id() -> str:
    return str(uuid.uuid4())


def event_sk(sequence: int) -> str:
    return f"EVENT#{EVENT_SK_BASE + sequence}"


@dataclass
class SeededTransaction:
    transaction_id: str
    status: str
    provider: str = "sandbox_bank_transfer"
    amount: int = 5000


@dataclass
class Finaliser:
    """One table, one state machine, and the calls a test needs around them."""

    dynamodb: Any
    sfn: Any
    table_name: str = "checkout-sessions-test"
    recheck_seconds: str = "1"
    state_machine_arn: str = field(init=False, default="")

    def __post_init__(self) -> None:
        cfn.create_tables(
            self.dynamodb, {"SessionsTable": self.table_name, "IdempotencyTable": f"{self.table_name}-idem"}
        )
        definition = cfn.state_machine_definition(
            "CancellationFinaliser",
            cfn.Resolver(refs={"SessionsTable": self.table_name}),
            parameter_overrides={"CancellationRecheckSeconds": self.recheck_seconds},
        )
        self.state_machine_arn = self.sfn.create_state_machine(
            name="CancellationFinaliser", definition=definition, roleArn=ROLE_ARN, type="STANDARD"
        )["stateMachineArn"]

    # ---- seeding -------------------------------------------------------------------------------

    def level(self, pk: str) -> int:
        """A pending-cancellation counter's value (0 when it was never written)."""
        item = self.dynamodb.get_item(
            TableName=self.table_name, Key={"pk": {"S": pk}, "sk": {"S": "COUNT"}}, ConsistentRead=True
        ).get("Item")
        return int(item["sessions"]["N"]) if item else 0

    def seed_pending_cancellation(
        self,
        transactions: Iterable[SeededTransaction],
        finalize_by: str,
        session_id: str | None = None,
    ) -> str:
        """A session locked by cancel: PENDING_CANCELLATION, its in-flight transactions pending.

        Timeline so far: session.created, one transaction.created per transaction,
        session.cancellation_pending.
        """
        session_id = session_id or new_id()
        transactions = list(transactions)
        created = now_iso(-120)
        requested = now_iso(-60)
        pending = [tx.transaction_id for tx in transactions if tx.status in IN_FLIGHT]
        events: list[tuple[str, dict[str, Any]]] = [("session.created", {})]
        events += [("transaction.created", {"transactionId": tx.transaction_id}) for tx in transactions]
        events.append(("session.cancellation_pending", {"pendingTransactionIds": pending}))
        session = {
            "pk": {"S": f"SESSION#{session_id}"},
            "sk": {"S": "SESSION"},
            "entity": {"S": "SESSION"},
            "sessionId": {"S": session_id},
            "tenantId": {"S": "demo"},
            "statsKey": {"S": counter_pk("demo", tally_shard(session_id))},
            "status": {"S": "PENDING_CANCELLATION"},
            "amount": {"N": "5000"},
            "currency": {"S": "USD"},
            "referenceId": {"S": "order-123"},
            "returnUrl": {"S": "https://example.com/return"},
            "metadata": {"M": {}},
            "createdAt": {"S": created},
            "updatedAt": {"S": requested},
            "expiresAt": {"N": str(int(time.time()) + 1800)},
            "version": {"N": str(1 + len(transactions) + 1)},
            "seq": {"N": str(len(events))},
            "inFlight": {"N": str(len(pending))},
            "txCount": {"N": str(len(transactions))},
            "transactions": {
                "M": {
                    tx.transaction_id: {
                        "M": {
                            "transactionId": {"S": tx.transaction_id},
                            "provider": {"S": tx.provider},
                            "status": {"S": tx.status},
                            "amount": {"N": str(tx.amount)},
                            "createdAt": {"S": created},
                            "updatedAt": {"S": created},
                        }
                    }
                    for tx in transactions
                }
            },
            "cancellation": {
                "M": {
                    "reason": {"S": "customer changed their mind"},
                    "reasonType": {"S": "CUSTOMER_REQUESTED"},
                    "referenceId": {"NULL": True},
                    "requestedAt": {"S": requested},
                    "finalizedAt": {"NULL": True},
                    "finalizeBy": {"S": finalize_by},
                    "cancelledTransactionIds": {"L": []},
                    "pendingTransactionIds": {"L": [{"S": tx_id} for tx_id in pending]},
                    "settledTransactionIds": {"L": []},
                    "attentionRequired": {"BOOL": False},
                }
            },
            "pendingShard": {"S": "PENDING#3"},
            "recheckAt": {"N": str(int(time.time()) + 3600)},
            "pendingLevel": {"S": pending_level_pk(session_id)},
        }
        self.dynamodb.put_item(TableName=self.table_name, Item=session)
        self.dynamodb.update_item(  # counted in, as the lock does
            TableName=self.table_name,
            Key={"pk": {"S": pending_level_pk(session_id)}, "sk": {"S": "COUNT"}},
            UpdateExpression="ADD sessions :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
        for tx in transactions:
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": f"TRANSACTION#{tx.transaction_id}"},
                    "sk": {"S": "TRANSACTION"},
                    "entity": {"S": "TRANSACTION"},
                    "transactionId": {"S": tx.transaction_id},
                    "sessionId": {"S": session_id},
                    "provider": {"S": tx.provider},
                    "status": {"S": tx.status},
                    "amount": {"N": str(tx.amount)},
                    "createdAt": {"S": created},
                    "updatedAt": {"S": created},
                },
            )
        for sequence, (event_type, data) in enumerate(events, start=1):
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": f"SESSION#{session_id}"},
                    "sk": {"S": event_sk(sequence)},
                    "entity": {"S": "EVENT"},
                    "eventId": {"S": new_id()},
                    "type": {"S": event_type},
                    "sessionId": {"S": session_id},
                    "sequence": {"N": str(sequence)},
                    "occurredAt": {"S": created},
                    "actor": {"S": "api"},
                    "data": {"M": _to_attribute_map(data)},
                },
            )
        return session_id

    # ---- the workflow --------------------------------------------------------------------------

    def start(
        self,
        session_id: str,
        pending_transaction_ids: list[str],
        finalize_by: str,
        name: str | None = None,
        final_event_id: str | None = None,
        attention_event_id: str | None = None,
    ) -> str:
        execution_input = {
            "sessionId": session_id,
            "pendingTransactionIds": pending_transaction_ids,
            "finalizeBy": finalize_by,
            "finalEventId": final_event_id or new_id(),
            "attentionEventId": attention_event_id or new_id(),
        }
        return self.start_raw(name or f"cancel-{session_id}", json.dumps(execution_input))

    def start_raw(self, name: str, execution_input: str) -> str:
        return self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=execution_input
        )["executionArn"]

    def wait_for_end(self, execution_arn: str, timeout: float = 30.0) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            return None if described["status"] == "RUNNING" else described

        return wait_until(finished, timeout, f"execution {execution_arn} to end")

    def status(self, execution_arn: str) -> str:
        return self.sfn.describe_execution(executionArn=execution_arn)["status"]

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events += page["events"]
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def entered(self, execution_arn: str) -> list[str]:
        """Names of the states entered, in order (Map iterations included)."""
        return [
            event["stateEnteredEventDetails"]["name"]
            for event in self.history(execution_arn)
            if "stateEnteredEventDetails" in event
        ]

    # ---- reads ---------------------------------------------------------------------------------

    def session(self, session_id: str) -> dict[str, Any]:
        return self.dynamodb.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "SESSION"}},
            ConsistentRead=True,
        )["Item"]

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        return self.dynamodb.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"TRANSACTION#{transaction_id}"}, "sk": {"S": "TRANSACTION"}},
            ConsistentRead=True,
        )["Item"]

    def timeline(self, session_id: str) -> list[dict[str, Any]]:
        return self.dynamodb.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"SESSION#{session_id}"}, ":prefix": {"S": "EVENT#"}},
            ConsistentRead=True,
        )["Items"]

    def wait_for_token(
        self, transaction_id: str, other_than: str | None = None, timeout: float = 30.0
    ) -> str:
        def stored() -> str | None:
            token = self.transaction(transaction_id).get("taskToken", {}).get("S")
            return token if token and token != other_than else None

        return wait_until(stored, timeout, f"a task token on transaction {transaction_id}")


class ProviderPath:
    """What the provider-event handler does when a provider reports a transaction's new status.

    One TransactWriteItems: the transaction item moves (conditioned on its status and on the task
    token read, which it removes); the session summary follows (inFlight - 1, version + 1, seq + 1,
    the transaction's status, the id out of cancellation.pendingTransactionIds, settled ids and
    refundRequired on SETTLED); a transaction.updated event is appended. Then SendTaskSuccess with
    the token read, if there was one.
    """

    def __init__(self, finaliser: Finaliser) -> None:
        self.finaliser = finaliser

    def move(self, transaction_id: str, new_status: str, send_callback: bool = True) -> str | None:
        """Returns the token the write was conditioned on (None if no workflow was waiting)."""
        for _attempt in range(10):
            tx = self.finaliser.transaction(transaction_id)
            assert tx["status"]["S"] in IN_FLIGHT, (
                f"transaction {transaction_id} is already {tx['status']['S']}"
            )
            token = tx.get("taskToken", {}).get("S")
            session = self.finaliser.session(tx["sessionId"]["S"])
            try:
                self.finaliser.dynamodb.transact_write_items(
                    TransactItems=self._write(tx, session, new_status, token, now_iso())
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                continue  # the token, the session or the sequence moved under us: read again
            if token and send_callback:
                self.send_success(token)
            return token
        raise AssertionError(f"could not move transaction {transaction_id}")

    def _write(
        self, tx: dict[str, Any], session: dict[str, Any], new_status: str, token: str | None, now: str
    ) -> list[dict[str, Any]]:
        table = self.finaliser.table_name
        transaction_id = tx["transactionId"]["S"]
        session_id = tx["sessionId"]["S"]
        old_status = tx["status"]["S"]
        seq = int(session["seq"]["N"])
        tx_values: dict[str, Any] = {":old": {"S": old_status}, ":new": {"S": new_status}, ":now": {"S": now}}
        if token:
            tx_values[":token"] = {"S": token}
        session_set = (
            "SET inFlight = inFlight - :one, #version = #version + :one, #seq = #seq + :one, "
            "updatedAt = :now, transactions.#tx.#status = :new, transactions.#tx.updatedAt = :now"
        )
        session_values: dict[str, Any] = {
            ":one": {"N": "1"},
            ":now": {"S": now},
            ":new": {"S": new_status},
            ":seen": session["version"],
        }
        if new_status == "SETTLED":
            session_set += (
                ", refundRequired = :true, "
                "#c.settledTransactionIds = list_append(#c.settledTransactionIds, :ids)"
            )
            session_values[":true"] = {"BOOL": True}
            session_values[":ids"] = {"L": [{"S": transaction_id}]}
        session_names = {"#version": "version", "#seq": "seq", "#status": "status", "#tx": transaction_id}
        if new_status == "SETTLED":
            session_names["#c"] = "cancellation"
        pending = [entry["S"] for entry in session["cancellation"]["M"]["pendingTransactionIds"]["L"]]
        if transaction_id in pending:  # the version condition makes the index safe
            session_set += f" REMOVE #c.pendingTransactionIds[{pending.index(transaction_id)}]"
            session_names["#c"] = "cancellation"
        event = {
            "pk": {"S": f"SESSION#{session_id}"},
            "sk": {"S": event_sk(seq + 1)},
            "entity": {"S": "EVENT"},
            "eventId": {"S": new_id()},
            "type": {"S": "transaction.updated"},
            "sessionId": {"S": session_id},
            "sequence": {"N": str(seq + 1)},
            "occurredAt": {"S": now},
            "actor": {"S": f"provider:{tx['provider']['S']}"},
            "data": {
                "M": {
                    "transactionId": {"S": transaction_id},
                    "status": {"S": new_status},
                    "previousStatus": {"S": old_status},
                }
            },
        }
        return [
            {
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": f"TRANSACTION#{transaction_id}"}, "sk": {"S": "TRANSACTION"}},
                    "UpdateExpression": "SET #status = :new, updatedAt = :now REMOVE taskToken",
                    "ConditionExpression": "#status = :old AND "
                    + ("taskToken = :token" if token else "attribute_not_exists(taskToken)"),
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": tx_values,
                }
            },
            {
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "SESSION"}},
                    "UpdateExpression": session_set,
                    "ConditionExpression": "#version = :seen",
                    "ExpressionAttributeNames": session_names,
                    "ExpressionAttributeValues": session_values,
                }
            },
            {"Put": {"TableName": table, "Item": event, "ConditionExpression": "attribute_not_exists(pk)"}},
        ]

    def send_success(self, token: str) -> bool:
        """SendTaskSuccess; a token the workflow has stopped waiting on is not an error."""
        try:
            self.finaliser.sfn.send_task_success(taskToken=token, output="{}")
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
                return False
            raise
        return True


def _to_attribute_map(data: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> dict[str, Any]:
        if isinstance(value, bool):
            return {"BOOL": value}
        if isinstance(value, str):
            return {"S": value}
        if isinstance(value, list):
            return {"L": [convert(item) for item in value]}
        raise TypeError(value)

    return {key: convert(value) for key, value in data.items()}
