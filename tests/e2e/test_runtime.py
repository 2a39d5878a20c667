"""The embedded runtime as a process: boot, authorizer in front of the routes, unknown routes, concurrency,
schedules, stream -> bus publication, the state machine really running, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from checkout_core.signatures import sign
from local import cfn, processes
from local.functions import FunctionCodeMissing, FunctionError, FunctionSpec, Invoker, function_specs
from local.runtime import (
    Settings,
    SettingsError,
    environment_parameter_overrides,
    local_resolver,
    template_environment,
)
from local.streams import pipe_config
from tests.e2e.conftest import DEMO_KEY, RunningRuntime, launch, stop_and_check
from tests.support import wait_until

pytestmark = pytest.mark.e2e

TIMEOUT = 30


def get(base_url: str, path: str, key: str | None = None, headers: dict[str, str] | None = None) -> Any:
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    return requests.get(f"{base_url}{path}", headers=sent, timeout=TIMEOUT)


def post(
    base_url: str, path: str, body: Any, key: str | None = None, headers: dict[str, str] | None = None
) -> Any:
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    return requests.post(f"{base_url}{path}", data=json.dumps(body), headers=sent, timeout=TIMEOUT)


def create_session(base_url: str, key: str = DEMO_KEY, **overrides: Any) -> dict[str, Any]:
    body = {
        "amount": 5000,
        "currency": "USD",
        "referenceId": f"order-{uuid.uuid4().hex[:12]}",
        "returnUrl": "https://example.com/return",
        **overrides,
    }
    answer = post(base_url, "/v1/sessions", body, key)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def assert_invalid_api_key(answer: Any) -> None:
    assert answer.status_code == 401, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["requestId"], answer.text
    assert answer.headers["X-Request-Id"] == error["requestId"]
    assert set(answer.json()) == {"error"}


def moto_client(runtime: RunningRuntime, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=runtime.moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# -- settings and the functions' environment (no process) ------------------------------------------------


def test_settings_default_to_the_contract() -> None:
    settings = Settings.from_env({})
    assert (settings.port, settings.api_keys, settings.return_hosts) == (
        3000,
        (("demo", DEMO_KEY),),
        ("example.com", "localhost"),
    )
    assert (settings.sweep_interval_seconds, settings.cancellation_recheck_seconds) == (60, 3600)
    assert settings.handler_environment("http://127.0.0.1:3000")["PUBLIC_BASE_URL"] == "http://127.0.0.1:3000"


@pytest.mark.parametrize(
    "env",
    [
        {"LOCAL_API_KEYS": "demo"},
        {"LOCAL_API_KEYS": ":key"},
        {"LOCAL_API_KEYS": "a:k,b:k"},
        {"PORT": "http"},
        {"SWEEP_INTERVAL_SECONDS": "0"},
        {"SESSION_TTL_MIN_SECONDS": "5000", "SESSION_TTL_DEFAULT_SECONDS": "1800"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_the_functions_get_the_template_environment_under_local_names() -> None:
    template = cfn.load_template()
    specs = function_specs(template)
    overrides = environment_parameter_overrides(specs, template, {"CANCELLATION_RECHECK_SECONDS": "5"})
    assert overrides == {"CancellationRecheckSeconds": "5"}
    resolver = local_resolver(template, {**cfn.parameter_defaults(template), **overrides}, specs)
    env = template_environment(specs, resolver)
    assert env["TABLE_NAME"] == "checkout-sessions"
    assert env["IDEMPOTENCY_TABLE_NAME"] == "checkout-idempotency"
    assert env["EVENT_BUS_NAME"] == "checkout"
    assert env["STATE_MACHINE_ARN"] == (
        "arn:aws:states:us-east-1:123456789012:stateMachine:checkout-cancellation-finaliser"
    )
    assert env["CANCELLATION_RECHECK_SECONDS"] == "5"
    assert "PROVIDER_SECRETS_NAME" not in env
    assert not any("LOCAL" in name for name in env)


_invokers: list[Invoker] = []


@pytest.fixture(autouse=True)
def _close_invokers() -> Iterator[None]:
    """Each invoker a test made is closed after it: its launcher and environments end with the test."""
    yield
    while _invokers:
        _invokers.pop().close()


def invoker_for(tmp_path: Path, code: str) -> Invoker:
    (tmp_path / "app.py").write_text(code)
    spec = FunctionSpec("ProbeFunction", "checkout-probe", tmp_path, "app.lambda_handler", 256, 3)
    invoker = Invoker({"ProbeFunction": spec}, layers=[])
    _invokers.append(invoker)
    return invoker


def test_the_invoker_passes_a_lambda_context_and_json_copies(tmp_path: Path) -> None:
    invoker = invoker_for(
        tmp_path,
        "def lambda_handler(event, context):\n"
        "    event['seen'] = True\n"
        "    return {'name': context.function_name, 'memory': context.memory_limit_in_mb,\n"
        "            'arn': context.invoked_function_arn, 'id': context.aws_request_id,\n"
        "            'left': context.get_remaining_time_in_millis(), 'event': event}\n",
    )
    event = {"a": 1}
    answer = invoker.invoke("ProbeFunction", event, "req-1")
    assert answer["name"] == "checkout-probe"
    assert answer["memory"] == 256
    assert answer["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:checkout-probe"
    assert answer["id"] == "req-1"
    assert 0 < answer["left"] <= 3000
    assert event == {"a": 1}


@pytest.mark.parametrize(
    "body",
    [
        "    raise RuntimeError('boom')",
        "    raise SystemExit(1)",
        "    class Crash(BaseException): pass\n    raise Crash()",
        "    return {'not json': object()}",
    ],
)
def test_whatever_ends_an_invocation_badly_is_a_function_error(tmp_path: Path, body: str) -> None:
    invoker = invoker_for(tmp_path, f"def lambda_handler(event, context):\n{body}\n")
    with pytest.raises(FunctionError):
        invoker.invoke("ProbeFunction", {}, "req-2")


def test_an_idle_environment_is_stopped_and_the_next_invocation_starts_a_new_one(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import os, time\n"
        "def lambda_handler(event, context):\n"
        "    time.sleep(event['sleep'])\n"
        "    return os.getpid()\n"
    )
    spec = FunctionSpec("ProbeFunction", "checkout-probe", tmp_path, "app.lambda_handler", 256, 10)
    invoker = Invoker({"ProbeFunction": spec}, layers=[], idle_seconds=1.0)
    try:
        # An invocation longer than the idle time keeps its environment: idle means unused
        first = invoker.invoke("ProbeFunction", {"sleep": 2.5}, "req-1")
        assert invoker.invoke("ProbeFunction", {"sleep": 0}, "req-2") == first
        # When it is left unused, it is stopped
        wait_until(lambda: not processes.alive(first), timeout=30, what="the idle environment to stop")
        # And the next invocation is served by a new one
        assert invoker.invoke("ProbeFunction", {"sleep": 0}, "req-3") != first
    finally:
        invoker.close()


def test_a_function_without_code_is_reported_as_missing(tmp_path: Path) -> None:
    spec = FunctionSpec("GhostFunction", "checkout-ghost", tmp_path / "ghost", "app.lambda_handler", 128, 3)
    with pytest.raises(FunctionCodeMissing):
        Invoker({"GhostFunction": spec}).invoke("GhostFunction", {}, "req-3")


def test_the_pipe_of_the_template_drives_publication() -> None:
    template = cfn.load_template()
    specs = function_specs(template)
    resolver = local_resolver(template, cfn.parameter_defaults(template), specs)
    stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/checkout-sessions/stream/label"
    resolver.attributes["SessionsTable.StreamArn"] = stream_arn
    config = pipe_config(stream_arn, specs, resolver, template)
    assert config.enrichment_id == "PublishEventsFunction"
    assert config.source == "checkout.sessions"
    assert config.detail_type is None  # `$.type`: the Event's own type
    event_item = {"eventName": "INSERT", "dynamodb": {"NewImage": {"entity": {"S": "EVENT"}}}}
    session_item = {"eventName": "INSERT", "dynamodb": {"NewImage": {"entity": {"S": "SESSION"}}}}
    assert config.matches(event_item)
    assert not config.matches(session_item)
    assert not config.matches({**event_item, "eventName": "MODIFY"})
    # A record as moto's stream holds it (a naive datetime, binary) is matched on what the filter names
    raw = {
        **event_item,
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 1, 1),  # naive, as moto keeps it
            "NewImage": {"entity": {"S": "EVENT"}, "blob": {"B": b"\x00\x01"}},
        },
    }
    assert config.matches(raw)
    assert not config.matches({**raw, "eventName": "REMOVE"})
    # A filter of alternatives (`$or`) is matched against the whole record
    either = replace(
        config,
        filters=(
            json.dumps(
                {
                    "$or": [
                        {"eventName": ["REMOVE"]},
                        {"dynamodb": {"NewImage": {"blob": {"B": [{"exists": True}]}}}},
                    ]
                }
            ),
        ),
    )
    assert either.matches(raw)
    assert not either.matches(event_item)
    assert either.matches({**event_item, "eventName": "REMOVE"})
    entry = config.entry({"type": "session.created", "sessionId": "s"}, "checkout")
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        "checkout.sessions",
        "session.created",
        "checkout",
    )


# -- boot -------------------------------------------------------------------------------------------------


def test_boots_from_a_clean_environment_and_prints_the_url_and_the_demo_key(runtime: RunningRuntime) -> None:
    # Given a runtime started with PATH, an empty HOME and PORT only (no AWS account, no Docker)
    assert not any(name.startswith("AWS_") for name in runtime.env)
    # Then it says where it listens (the port the kernel gave it for PORT=0) and which key to use
    assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*", runtime.base_url)  # read from the banner
    assert f"(API key: {DEMO_KEY})" in runtime.stdout
    # And it serves the public routes of the template
    answer = get(runtime.base_url, "/v1/openapi.json")
    assert answer.status_code == 200
    assert answer.json()["openapi"].startswith("3.")


def test_the_banner_names_the_docs_and_the_console_and_its_curl_creates_a_session(
    runtime: RunningRuntime,
) -> None:
    lines = runtime.stdout.splitlines()
    assert f"  API docs:  {runtime.base_url}/v1/docs" in lines
    assert f"  console:   {runtime.base_url}/console" in lines
    (command,) = [line.split("try:", 1)[1].strip() for line in lines if line.strip().startswith("try:")]
    # When the printed command is run as shown, by a shell
    created = subprocess.run(  # noqa: S603 - the runtime's own banner
        ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=60, check=True
    )
    # Then it created a session
    session = json.loads(created.stdout)
    assert session["status"] == "OPEN" and session["sessionId"]


# -- the authorizer in front of /v1/sessions ----------------------------------------------------------------


def test_a_request_without_a_key_is_refused_with_invalid_api_key(base_url: str) -> None:
    assert_invalid_api_key(get(base_url, "/v1/sessions"))
    assert_invalid_api_key(post(base_url, "/v1/sessions", {"amount": 1}))


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer sk_test_not_a_key",
        f"Basic {DEMO_KEY}",
        DEMO_KEY,
        "Bearer",
        f"Bearer {DEMO_KEY} extra",
        "Bearer  ",
    ],
)
def test_a_wrong_or_malformed_key_is_refused_with_invalid_api_key(base_url: str, authorization: str) -> None:
    assert_invalid_api_key(get(base_url, "/v1/sessions", headers={"Authorization": authorization}))


def test_the_demo_key_reaches_the_route_as_its_tenant(base_url: str) -> None:
    # Given a session created with the demo key
    created = create_session(base_url)
    # Then the same tenant reads it back, through the authorizer's context
    answer = get(base_url, f"/v1/sessions/{created['sessionId']}", DEMO_KEY)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sessionId"] == created["sessionId"]


def test_handlers_get_the_local_base_url_for_pay_links(base_url: str) -> None:
    # Given a session created on the local runtime (PUBLIC_BASE_URL defaults to its base URL)
    created = create_session(base_url)
    assert created["url"].startswith(f"{base_url}/pay/")
    # Then its hosted page is served without a key
    page = requests.get(created["url"], timeout=TIMEOUT)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")


def test_routes_with_auth_none_need_no_key(base_url: str) -> None:
    answer = post(base_url, "/v1/providers/sandbox_card/events", {"eventId": "e", "transactionId": "t"})
    # The route is reached (its own signature check answers), not the authorizer
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "invalid_signature"


# -- unknown routes ---------------------------------------------------------------------------------------


def expected_unknown_route() -> tuple[int, str]:
    """The template's MISSING_AUTHENTICATION_TOKEN response when it has one, else 404 not_found."""
    api = next(iter(cfn.resources("AWS::Serverless::Api").values()))
    configured = api["Properties"].get("GatewayResponses", {}).get("MISSING_AUTHENTICATION_TOKEN")
    if configured is None:
        return 404, "not_found"
    return int(configured.get("StatusCode", 403)), json.loads(
        configured["ResponseTemplates"]["application/json"].replace("$context.requestId", "x")
    )["error"]["code"]


def test_the_front_page_leads_to_the_console(base_url: str) -> None:
    answer = requests.get(f"{base_url}/", timeout=TIMEOUT, allow_redirects=False)
    assert (answer.status_code, answer.headers["Location"]) == (302, "/console")
    followed = requests.get(f"{base_url}/", timeout=TIMEOUT)
    assert followed.status_code == 200 and 'type="password"' in followed.text  # the console's sign-in


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/nothing-here"), ("DELETE", "/v1/sessions"), ("GET", "/v1")]
)
def test_an_unknown_route_gets_the_documented_answer(base_url: str, method: str, path: str) -> None:
    answer = requests.request(method, f"{base_url}{path}", timeout=TIMEOUT)
    status, code = expected_unknown_route()
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert answer.headers["X-Request-Id"] == error["requestId"]


# -- concurrency ------------------------------------------------------------------------------------------


def test_concurrent_requests_are_served_together(base_url: str) -> None:
    # Given 16 requests released at once, half of them refused by the authorizer
    def call(index: int) -> int:
        key = DEMO_KEY if index % 2 == 0 else "sk_test_wrong"
        return int(get(base_url, "/v1/sessions?limit=5", key).status_code)

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(call, range(16)))
    # Then every one of them gets its own right answer
    assert statuses == [200 if index % 2 == 0 else 401 for index in range(16)]


def test_fifty_concurrent_requests_each_get_their_own_request_id(runtime: RunningRuntime) -> None:
    # Given 50 requests released at once, each refused with an error body that repeats its request id
    missing = [f"0193f2d4-5b6c-7d8e-9f01-{index:012x}" for index in range(1, 51)]

    def call(session_id: str) -> tuple[int, str, str]:
        answer = get(runtime.base_url, f"/v1/sessions/{session_id}", DEMO_KEY)
        return answer.status_code, answer.headers["X-Request-Id"], answer.json()["error"]["requestId"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(call, missing))
    # Then every answer is the right one, and its body names its own request, no other
    assert {status for status, _, _ in answers} == {404}
    assert all(header == body for _, header, body in answers)
    assert len({header for _, header, _ in answers}) == 50
    # And each request's log lines name the function that served it
    log = runtime.stderr
    for _, request_id, _ in answers:
        assert f"checkout-get-session START RequestId: {request_id}" in log


PROBE_CODE = """
import os, time
from pathlib import Path

invocations = 0


def lambda_handler(event, context):
    global invocations
    invocations += 1
    seen = invocations
    folder = Path(event["folder"])
    (folder / f"started-{context.aws_request_id}").touch()
    deadline = time.monotonic() + 30
    while event.get("hold") and not (folder / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"pid": os.getpid(), "invocations": seen, "afterwards": invocations}
"""


def test_concurrent_invocations_run_in_separate_environments_reused_warm(tmp_path: Path) -> None:
    invoker = invoker_for(tmp_path, PROBE_CODE)
    try:
        # Given three invocations of one function held open at once
        with ThreadPoolExecutor(max_workers=3) as pool:
            held = [
                pool.submit(invoker.invoke, "ProbeFunction", {"folder": str(tmp_path), "hold": True}, f"r{i}")
                for i in range(3)
            ]
            wait_for(lambda: len(list(tmp_path.glob("started-*"))) == 3, "three invocations to be running")
            (tmp_path / "go").touch()
            answers = [future.result(timeout=TIMEOUT) for future in held]
        # Then each ran in an environment of its own, whose module globals no other invocation touched
        assert len({answer["pid"] for answer in answers}) == 3
        assert all(answer["invocations"] == answer["afterwards"] == 1 for answer in answers)
        # And a later invocation reuses a warm environment, globals and all
        warm = invoker.invoke("ProbeFunction", {"folder": str(tmp_path)}, "r4")
        assert warm["pid"] in {answer["pid"] for answer in answers} and warm["invocations"] == 2
    finally:
        invoker.close()


def test_an_environment_that_crashed_is_replaced(tmp_path: Path) -> None:
    invoker = invoker_for(
        tmp_path,
        "import os\n"
        "def lambda_handler(event, context):\n"
        "    if event.get('exit'):\n"
        "        raise SystemExit(1)\n"
        "    return os.getpid()\n",
    )
    try:
        first = invoker.invoke("ProbeFunction", {}, "r1")
        with pytest.raises(FunctionError):
            invoker.invoke("ProbeFunction", {"exit": True}, "r2")
        assert invoker.invoke("ProbeFunction", {}, "r3") != first
    finally:
        invoker.close()


# -- settings, schedules, publication, the state machine ---------------------------------------------------

ACME_KEY = "sk_test_acme"


@pytest.fixture(scope="module")
def acme_runtime() -> Iterator[RunningRuntime]:
    """A runtime whose only tenant is acme, sweeping every second, with sessions as short as one second."""
    running = launch(
        {
            "LOCAL_API_KEYS": f"acme:{ACME_KEY}",
            "LOCAL_RETURN_HOSTS": "shop.acme.test",
            "SWEEP_INTERVAL_SECONDS": "1",
            "SESSION_TTL_MIN_SECONDS": "1",
        }
    )
    yield running
    stop_and_check(running)


def test_local_api_keys_seed_the_tenants(acme_runtime: RunningRuntime) -> None:
    # Given a runtime whose only tenant is acme
    assert f"(API key: {ACME_KEY})" in acme_runtime.stdout
    # Then acme's key works, with acme's return hosts, and the demo key does not exist
    created = create_session(acme_runtime.base_url, ACME_KEY, returnUrl="https://shop.acme.test/back")
    assert created["returnUrl"] == "https://shop.acme.test/back"
    refused = post(
        acme_runtime.base_url,
        "/v1/sessions",
        {"amount": 1, "currency": "USD", "referenceId": "r", "returnUrl": "https://example.com/x"},
        ACME_KEY,
    )
    assert refused.status_code == 400, refused.text
    assert_invalid_api_key(get(acme_runtime.base_url, "/v1/sessions", DEMO_KEY))
    # And only the key's hash is stored
    items = moto_client(acme_runtime, "dynamodb").scan(TableName="checkout-sessions")["Items"]
    keys = [item for item in items if item.get("entity", {}).get("S") == "APIKEY"]
    assert [item["tenant"]["S"] for item in keys] == ["acme"]
    assert ACME_KEY not in json.dumps(keys)


def test_the_expiry_schedule_runs_every_sweep_interval(acme_runtime: RunningRuntime) -> None:
    # Given a runtime sweeping every second and a session that expires after one second
    created = create_session(
        acme_runtime.base_url, ACME_KEY, returnUrl="https://shop.acme.test/back", expiresInSeconds=1
    )
    session_id = created["sessionId"]

    # Then the scheduled job persists the expiry: its event appears in the timeline
    def expired_event() -> bool:
        answer = get(acme_runtime.base_url, f"/v1/sessions/{session_id}/events", ACME_KEY)
        return any(event["type"] == "session.expired" for event in answer.json()["data"])

    wait_for(expired_event, "session.expired from the expiry job")


def test_events_are_published_to_the_bus_in_order(runtime: RunningRuntime) -> None:
    # Given a queue subscribed to the bus from now on
    sqs = moto_client(runtime, "sqs")
    events = moto_client(runtime, "events")
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=name, EventBusName="checkout", EventPattern=json.dumps({"source": ["checkout.sessions"]})
    )
    events.put_targets(Rule=name, EventBusName="checkout", Targets=[{"Id": "q", "Arn": queue_arn}])
    # And a transaction cancelled by its condition (moto then puts back a copy of the table)
    dynamodb = moto_client(runtime, "dynamodb")
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "ConditionCheck": {
                        "TableName": "checkout-sessions",
                        "Key": {"pk": {"S": f"E2E#{name}"}, "sk": {"S": "X"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
            ]
        )
    # When a session is created and cancelled
    session_id = create_session(runtime.base_url)["sessionId"]
    cancelled = post(runtime.base_url, f"/v1/sessions/{session_id}/cancel", {}, DEMO_KEY)
    assert cancelled.status_code == 200, cancelled.text
    # Then its events reach the bus, in sequence, as the contract's Events
    received: list[dict[str, Any]] = []

    def both_events() -> bool:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        received.extend(json.loads(message["Body"]) for message in answer.get("Messages", []))
        return len([e for e in received if e["detail"]["sessionId"] == session_id]) >= 2

    wait_for(both_events, "the session's events on the bus")
    mine = [event for event in received if event["detail"]["sessionId"] == session_id]
    assert [(e["source"], e["detail-type"]) for e in mine] == [
        ("checkout.sessions", "session.created"),
        ("checkout.sessions", "session.cancelled"),
    ]
    assert [e["detail"]["sequence"] for e in mine] == [1, 2]
    timeline = get(runtime.base_url, f"/v1/sessions/{session_id}/events", DEMO_KEY).json()["data"]
    assert [e["detail"] for e in mine] == timeline


def test_conditional_writes_are_atomic_under_concurrency(runtime: RunningRuntime) -> None:
    # Given a table big enough that copying it takes a while (moto copies a table at the start of each
    # transaction and puts the copy back when the transaction is cancelled)
    dynamodb = moto_client(runtime, "dynamodb")
    table = f"e2e-race-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for start in range(0, 2000, 25):
        dynamodb.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {"pk": {"S": f"filler-{n}"}}}} for n in range(start, start + 25)
                ]
            }
        )
    # When 12 clients race, five times over, to create one item only if it does not exist yet
    # Then each time exactly one wins: the losers' cancelled transactions never undo the winner's write
    for _ in range(5):
        assert_one_winner(dynamodb, table)


def assert_one_winner(dynamodb: Any, table: str) -> None:
    key = {"pk": {"S": f"race-{uuid.uuid4()}"}}

    def claim(index: int) -> bool:
        try:
            dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": table,
                            "Item": {**key, "winner": {"N": str(index)}},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                ]
            )
        except dynamodb.exceptions.TransactionCanceledException:
            return False
        return True

    with ThreadPoolExecutor(max_workers=12) as pool:
        wins = list(pool.map(claim, range(12)))
    assert wins.count(True) == 1, wins
    item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert item["winner"]["N"] == str(wins.index(True))


def test_the_cancellation_workflow_really_runs(runtime: RunningRuntime) -> None:
    # Given a session with a bank transfer in flight (its provider cannot cancel in flight)
    session_id = create_session(runtime.base_url)["sessionId"]
    started = post(
        runtime.base_url,
        f"/v1/sessions/{session_id}/transactions",
        {"provider": "sandbox_bank_transfer"},
        DEMO_KEY,
    )
    assert started.status_code == 201, started.text
    transaction_id = started.json()["transactionId"]
    # When the session is cancelled, it waits for the transaction
    cancelled = post(runtime.base_url, f"/v1/sessions/{session_id}/cancel", {}, DEMO_KEY)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "PENDING_CANCELLATION"
    stepfunctions = moto_client(runtime, "stepfunctions")
    machine = stepfunctions.list_state_machines()["stateMachines"][0]["stateMachineArn"]

    def execution() -> dict[str, Any] | None:
        found = stepfunctions.list_executions(stateMachineArn=machine)["executions"]
        return next((e for e in found if session_id in e["name"]), None)

    started_execution = wait_for(execution, "the finaliser to start")
    # And when the provider reports the transfer failed
    raw = json.dumps(
        {"eventId": f"evt_{uuid.uuid4().hex}", "transactionId": transaction_id, "status": "FAILED"}
    )
    reported = requests.post(
        f"{runtime.base_url}/v1/providers/sandbox_bank_transfer/events",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "Provider-Signature": sign("whsec_sandbox", int(time.time()), raw.encode()),
        },
        timeout=TIMEOUT,
    )
    assert reported.status_code == 200, reported.text

    # Then the state machine, running in moto, finalises the cancellation
    def cancelled_for_good() -> bool:
        return bool(
            get(runtime.base_url, f"/v1/sessions/{session_id}", DEMO_KEY).json()["status"] == "CANCELLED"
        )

    wait_for(cancelled_for_good, "the workflow to finalise the cancellation")
    wait_for(
        lambda: (
            stepfunctions.describe_execution(executionArn=started_execution["executionArn"])["status"]
            == "SUCCEEDED"
        ),
        "the execution to succeed",
    )


# -- stop -------------------------------------------------------------------------------------------------


def test_sigterm_stops_the_runtime_cleanly(start_runtime: Callable[..., RunningRuntime]) -> None:
    # Given a running runtime that has served a request
    running = start_runtime()
    assert get(running.base_url, "/v1/sessions", DEMO_KEY).status_code == 200
    # When it gets SIGTERM
    status = running.stop()
    # Then it exits 0, having stopped its server, and the port is free again
    assert status == 0, running.tail()
    assert "SIGTERM received, stopping" in running.stderr
    assert "local: stopped" in running.stderr
    with pytest.raises(requests.ConnectionError):
        get(running.base_url, "/v1/openapi.json")


# -- the gateway's own answers -------------------------------------------------------------------------


def raw_exchange(base_url: str, request: bytes) -> tuple[int, dict[str, str], Any]:
    """One request sent as bytes, exactly as written; the answer's status, headers and JSON body."""
    import socket

    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            received += connection.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        while len(body) < int(headers.get("Content-Length", "0")):
            body += connection.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n", 413),
        (b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", 400),
        (b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"TRACE /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404),
        (b"PROPFIND /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404),
    ],
)
def test_the_gateways_own_answers_use_the_contract_shape(
    base_url: str, request_bytes: bytes, status: int
) -> None:
    answered, headers, body = raw_exchange(base_url, request_bytes)
    assert answered == status
    assert set(body) == {"error"} and body["error"]["requestId"] == headers["X-Request-Id"]
    assert body["error"]["code"] in {"invalid_request", "not_found"}


def test_the_access_log_names_the_route_never_the_pay_token(runtime: RunningRuntime) -> None:
    url = create_session(runtime.base_url)["url"]
    token = url.rsplit("/", 1)[1]
    page = requests.get(f"{runtime.base_url}/pay/{token}", timeout=TIMEOUT)
    assert page.status_code == 200
    wait_for(lambda: "GET /pay/{token} 200" in runtime.stderr, "the access log line of the page")
    assert token not in runtime.stderr


def test_one_tenant_is_throttled_without_starving_another(
    start_runtime: Callable[..., RunningRuntime],
) -> None:
    # Given two tenants, each allowed bursts of 3 requests and almost nothing more
    runtime = start_runtime(
        LOCAL_API_KEYS=f"demo:{DEMO_KEY},acme:{ACME_KEY}",
        TENANT_THROTTLING_RATE_LIMIT="0.001",
        TENANT_THROTTLING_BURST_LIMIT="3",
    )
    # When one tenant sends five requests
    answers = [get(runtime.base_url, "/v1/sessions?limit=1", DEMO_KEY) for _ in range(5)]
    # Then the first three are served and the rest refused with 429 rate_limited and Retry-After
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["requestId"] == refused.headers["X-Request-Id"]
    # And the other tenant is served all the while, as are the routes that need no key
    assert get(runtime.base_url, "/v1/sessions?limit=1", ACME_KEY).status_code == 200
    assert get(runtime.base_url, "/v1/openapi.json").status_code == 200
