"""`python -m local.api_key` against moto: the key is printed once, only its hash is stored, and it authorizes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import api_key, cfn

REGION = "us-east-1"
TABLE = "checkout-sessions-SessionsTable-TEST"
KEY_FORMAT = re.compile(r"^sk_live_[A-Za-z0-9_-]{43}$")


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto_session = boto3.session.Session(region_name=REGION)
        dynamodb = boto_session.client("dynamodb")
        cfn.create_tables(dynamodb, {"SessionsTable": TABLE, "IdempotencyTable": "checkout-idempotency-TEST"})
        plan = boto_session.client("apigateway").create_usage_plan(name="checkout-sessions-TEST")
        boto_session.usage_plan_id = plan["id"]
        yield boto_session


def deploy_stack_with_table_output(boto_session: Any, stack_name: str = "checkout-sessions") -> None:
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "SessionsTableName": {"Value": TABLE},
            "UsagePlanId": {"Value": boto_session.usage_plan_id},
        },
    }
    boto_session.client("cloudformation").create_stack(
        StackName=stack_name, TemplateBody=json.dumps(template)
    )


def stored_items(boto_session: Any) -> list[dict[str, Any]]:
    return boto_session.client("dynamodb").scan(TableName=TABLE)["Items"]


def test_prints_a_fresh_key_once_and_stores_only_its_hash(
    session: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an empty sessions table
    # When a key is created for tenant acme
    code = api_key.main(
        [
            "--tenant",
            "acme",
            "--return-hosts",
            "shop.acme.com, ACME.com",
            "--table",
            TABLE,
            "--usage-plan",
            session.usage_plan_id,
        ],
        session=session,
    )

    # Then the key alone is on standard output, in the live key format
    assert code == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert KEY_FORMAT.match(key), key
    assert "shown only now" in err and key not in err
    # And the table holds one APIKEY item keyed by the key's SHA-256, with no trace of the key itself
    items = stored_items(session)
    assert len(items) == 1
    item = items[0]
    key_hash = hashlib.sha256(key.encode()).hexdigest()
    assert item["pk"] == {"S": f"APIKEY#{key_hash}"}
    assert item["sk"] == {"S": "APIKEY"}
    assert item["entity"] == {"S": "APIKEY"}
    assert item["tenant"] == {"S": "acme"}
    assert item["returnHosts"] == {"L": [{"S": "shop.acme.com"}, {"S": "acme.com"}]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", item["createdAt"]["S"])
    assert key not in json.dumps(items)


def test_the_new_key_authorizes_its_tenant(session: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from checkout_core.authorizer import authorize
    from checkout_core.repository import SessionRepository

    # Given a key created with the CLI, with the name the hosted page shows
    api_key.main(
        [
            "--tenant",
            "acme",
            "--return-hosts",
            "shop.acme.com",
            "--merchant-name",
            "  Acme   Shop ",
            "--table",
            TABLE,
            "--usage-plan",
            session.usage_plan_id,
        ],
        session=session,
    )
    key = capsys.readouterr().out.strip()
    event = json.loads((cfn.ROOT / "events" / "authorizer.json").read_text())
    event["headers"]["Authorization"] = f"Bearer {key}"
    repository = SessionRepository(TABLE, client_factory=lambda: session.client("dynamodb"))

    # When the authorizer sees it
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
        APIGatewayAuthorizerRequestEvent,
    )

    answer = authorize(APIGatewayAuthorizerRequestEvent(event), repository=repository)

    # Then the request is allowed as tenant acme with its return hosts and its display name
    assert answer["principalId"] == "acme"
    assert answer["context"] == {
        "tenantId": "acme",
        "returnHosts": "shop.acme.com",
        "merchantName": "Acme Shop",
    }
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    # And API Gateway is told which usage plan key to throttle the request on
    [plan_key] = session.client("apigateway").get_usage_plan_keys(usagePlanId=session.usage_plan_id)["items"]
    assert answer["usageIdentifierKey"] == plan_key["value"]


def test_each_run_creates_a_different_key(session: Any, capsys: pytest.CaptureFixture[str]) -> None:
    keys = set()
    for _ in range(3):
        api_key.main(
            [
                "--tenant",
                "acme",
                "--return-hosts",
                "acme.com",
                "--table",
                TABLE,
                "--usage-plan",
                session.usage_plan_id,
            ],
            session=session,
        )
        keys.add(capsys.readouterr().out.strip())
    assert len(keys) == 3
    assert len(stored_items(session)) == 3


def test_table_defaults_to_the_stack_output(session: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a deployed stack whose SessionsTableName output names the table
    deploy_stack_with_table_output(session)

    # When no --table is given
    code = api_key.main(["--tenant", "acme", "--return-hosts", "acme.com"], session=session)

    # Then the key is stored in that table
    assert code == 0
    key = capsys.readouterr().out.strip()
    [item] = stored_items(session)
    assert item["pk"]["S"] == f"APIKEY#{hashlib.sha256(key.encode()).hexdigest()}"


def test_a_stack_without_the_output_is_a_usage_error(
    session: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    session.client("cloudformation").create_stack(
        StackName="other",
        TemplateBody=json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}),
    )
    with pytest.raises(SystemExit) as exit_info:
        api_key.main(["--tenant", "acme", "--return-hosts", "acme.com", "--stack", "other"], session=session)
    assert exit_info.value.code == 2
    assert "SessionsTableName" in capsys.readouterr().err
    assert stored_items(session) == []


@pytest.mark.parametrize(
    ("tenant", "hosts"),
    [
        ("acme", "https://shop.acme.com"),
        ("acme", "shop.acme.com:443"),
        ("acme", "user@shop.acme.com"),
        ("acme", " , "),
        ("", "acme.com"),
        ("acme corp", "acme.com"),
    ],
)
def test_bad_arguments_store_nothing(session: Any, tenant: str, hosts: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        api_key.main(
            [
                "--tenant",
                tenant,
                "--return-hosts",
                hosts,
                "--table",
                TABLE,
                "--usage-plan",
                session.usage_plan_id,
            ],
            session=session,
        )
    assert exit_info.value.code == 2
    assert stored_items(session) == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "Acme\x07Shop"])
def test_a_bad_merchant_name_stores_nothing(session: Any, name: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        api_key.main(
            [
                "--tenant",
                "acme",
                "--return-hosts",
                "acme.com",
                "--merchant-name",
                name,
                "--table",
                TABLE,
                "--usage-plan",
                session.usage_plan_id,
            ],
            session=session,
        )
    assert exit_info.value.code == 2
    assert stored_items(session) == []


def test_the_tenant_gets_a_key_in_the_usage_plan_that_its_authorizer_answers_name(
    session: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a deployed stack with its usage plan
    deploy_stack_with_table_output(session)
    # When a key is made for a tenant
    assert api_key.main(["--tenant", "acme", "--return-hosts", "acme.com"], session=session) == 0
    # Then the usage plan has one key, and the stored item names its value for the authorizer to return
    apigateway = session.client("apigateway")
    [plan_key] = apigateway.get_usage_plan_keys(usagePlanId=session.usage_plan_id)["items"]
    [item] = stored_items(session)
    assert item["usageKey"]["S"] == plan_key["value"]
    assert capsys.readouterr().out.strip() not in json.dumps(item)
