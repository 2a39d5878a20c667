"""The CancellationFinaliser state machine, seen from the code: start it, answer its callbacks."""

from __future__ import annotations

import json
from typing import Any

from checkout_core import aws
from checkout_core.settings import get_settings


def execution_name(session_id: str) -> str:
    return f"cancel-{session_id}"


class Finaliser:
    def __init__(self, state_machine_arn: str | None = None, client: Any = None) -> None:
        self.state_machine_arn = state_machine_arn or get_settings().state_machine_arn
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("stepfunctions")

    def start(self, execution_input: dict[str, Any], name: str) -> bool:
        """Starts the execution; False when one of that name already exists (a retry must not start two)."""
        from botocore.exceptions import ClientError

        try:
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(execution_input)
            )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return False
            raise

    def is_running(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        try:
            return bool(self.client.describe_execution(executionArn=arn)["status"] == "RUNNING")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                return False
            raise

    def release(self, task_token: str, output: dict[str, Any]) -> None:
        """Answers a waiting task; a token whose task already ended is not an error."""
        from botocore.exceptions import ClientError

        try:
            self.client.send_task_success(taskToken=task_token, output=json.dumps(output))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "TaskTimedOut",
                "TaskDoesNotExist",
                "InvalidToken",
            ):
                raise
