"""template.yaml is fit to deploy: least privilege, arm64, logs kept, failures caught and alarmed.

Each rule is a function returning the problems it finds, so that every test also shows, on a mutated copy
of the template, that the rule does catch what it is about.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.cfn import ROOT, load_template, resources

Template = dict[str, Any]

FUNCTION = "AWS::Serverless::Function"
READ_ONLY_FUNCTIONS = {
    "AuthorizerFunction",
    "GetSessionFunction",
    "ListSessionsFunction",
    "ListSessionEventsFunction",
}
NO_PERMISSION_FUNCTIONS = {"OpenApiFunction", "PublishEventsFunction"}
READ_ACTIONS = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
# Actions that support no resource-level permissions: the only ones allowed on Resource "*".
UNSCOPED_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "dynamodb:ListStreams",  # names no stream; AWS's reference allows only "*"
}
SAMPLE_EVENTS = {
    "AuthorizerFunction": "authorizer.json",
    "CreateSessionFunction": "create_session.json",
    "GetSessionFunction": "get_session.json",
    "ListSessionsFunction": "list_sessions.json",
    "CreateTransactionFunction": "create_transaction.json",
    "CancelSessionFunction": "cancel_session.json",
    "ListSessionEventsFunction": "list_session_events.json",
    "ProviderEventsFunction": "provider_event.json",
    "PayPageFunction": "pay_page.json",
    "OpenApiFunction": "openapi.json",
    "ExpireSessionsFunction": "expire_sessions.json",
    "PublishEventsFunction": "publish_events.json",
    "WebhookEndpointsFunction": "webhook_endpoints.json",
    "WebhookFanoutFunction": "webhook_fanout.json",
    "WebhookDeliveryFunction": "webhook_delivery.json",
    "RequeueWebhooksFunction": "requeue_webhooks.json",
    "ConsoleFunction": "console.json",
}


API_EVENTS = [
    name
    for logical_id, name in SAMPLE_EVENTS.items()
    if logical_id
    not in {
        "AuthorizerFunction",
        "ExpireSessionsFunction",
        "PublishEventsFunction",
        "WebhookFanoutFunction",
        "WebhookDeliveryFunction",
        "RequeueWebhooksFunction",
    }
]


@pytest.fixture
def template() -> Template:
    """A private copy: tests may mutate it."""
    return copy.deepcopy(load_template())


# ------------------------------------------------------------------------------------------- helpers


def tag(value: Any) -> tuple[str, Any] | None:
    """(`Ref` | `GetAtt` | `Sub`, argument) of an intrinsic, whether written as a YAML tag or as a mapping."""
    if hasattr(value, "tag") and hasattr(value, "value"):
        return value.tag, value.value
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key in ("Ref", "Fn::GetAtt", "Fn::Sub"):
            return key.removeprefix("Fn::"), inner
    return None


def is_ref(value: Any, name: str) -> bool:
    return tag(value) == ("Ref", name)


def is_get_att(value: Any, name: str, attribute: str) -> bool:
    found = tag(value)
    if found is None or found[0] != "GetAtt":
        return False
    argument = found[1]
    return argument in (f"{name}.{attribute}", [name, attribute])


def names_resource(value: Any, name: str) -> bool:
    """Whether a Resource entry is (or is derived from) the logical id `name`."""
    found = tag(value)
    if found is None:
        return False
    kind, argument = found
    if kind == "Ref":
        return argument == name
    if kind == "GetAtt":
        return (argument if isinstance(argument, str) else ".".join(argument)).split(".")[0] == name
    text = argument if isinstance(argument, str) else argument[0]
    return "${" + name + "}" in text or "${" + name + "." in text


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_statements(properties: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in properties.get("Policies") or []:
        if isinstance(policy, dict) and "Statement" in policy:
            statements.extend(as_list(policy["Statement"]))
    return statements


def all_statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement the template writes itself: functions, state machines and plain roles."""
    for kind in (FUNCTION, "AWS::Serverless::StateMachine"):
        for logical_id, resource in resources(kind, template).items():
            for statement in function_statements(resource["Properties"]):
                yield logical_id, statement
    for logical_id, resource in resources("AWS::IAM::Role", template).items():
        for policy in resource["Properties"].get("Policies", []):
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                yield logical_id, statement


def actions_of(statement: dict[str, Any]) -> list[str]:
    return [str(action) for action in as_list(statement.get("Action", []))]


def alarms(template: Template) -> dict[str, dict[str, Any]]:
    return {
        name: alarm["Properties"] for name, alarm in resources("AWS::CloudWatch::Alarm", template).items()
    }


def alarm_metrics(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm watches: its own, or those of its metric math."""
    if "MetricName" in properties:
        return [properties]
    return [query["MetricStat"]["Metric"] for query in properties.get("Metrics", []) if "MetricStat" in query]


# --------------------------------------------------------------------------------------------- rules


def policy_shape_problems(template: Template) -> list[str]:
    problems = []
    for logical_id, resource in resources(FUNCTION, template).items():
        properties = resource["Properties"]
        if "Role" in properties:
            problems.append(f"{logical_id}: uses a shared Role instead of its own")
        if "Policies" not in properties:
            problems.append(f"{logical_id}: declares no Policies (say `Policies: []` when it needs none)")
            continue
        for policy in properties["Policies"] or []:
            if not (isinstance(policy, dict) and set(policy) == {"Statement"}):
                problems.append(f"{logical_id}: {policy!r} is not an explicit Statement policy")
        statements = function_statements(properties)
        if logical_id in NO_PERMISSION_FUNCTIONS and statements:
            problems.append(f"{logical_id}: needs no AWS permission but has {statements}")
        if logical_id not in NO_PERMISSION_FUNCTIONS and not statements:
            problems.append(f"{logical_id}: has no statements of its own")
    return problems


def wildcard_problems(template: Template) -> list[str]:
    problems = []
    for owner, statement in all_statements(template):
        for action in actions_of(statement):
            if "*" in action:
                problems.append(f"{owner}: wildcard action {action}")
        if statement.get("Effect") != "Allow":
            continue
        if any(resource == "*" for resource in as_list(statement.get("Resource"))):
            unscoped = set(actions_of(statement)) - UNSCOPED_ACTIONS
            if unscoped:
                problems.append(f"{owner}: Resource '*' for {sorted(unscoped)}")
    return problems


def read_only_problems(template: Template) -> list[str]:
    problems = []
    functions = resources(FUNCTION, template)
    for logical_id in READ_ONLY_FUNCTIONS:
        for statement in function_statements(functions[logical_id]["Properties"]):
            writes = set(actions_of(statement)) - READ_ACTIONS
            if writes:
                problems.append(f"{logical_id}: read-only function allowed {sorted(writes)}")
    return problems


def log_group_problems(template: Template) -> list[str]:
    groups = resources("AWS::Logs::LogGroup", template)
    problems = []
    for name, group in groups.items():
        if "RetentionInDays" not in group["Properties"]:
            problems.append(f"{name}: log group keeps logs forever")
    for logical_id in resources(FUNCTION, template):
        expected = "/aws/lambda/${" + logical_id + "}"
        if not any(tag(g["Properties"].get("LogGroupName")) == ("Sub", expected) for g in groups.values()):
            problems.append(f"{logical_id}: no log group {expected}")
    return problems


# ---------------------------------------------------------------------------------------------- IAM


def test_every_function_has_its_own_explicit_statements(template: Template) -> None:
    assert policy_shape_problems(template) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t["Resources"]["GetSessionFunction"]["Properties"].update(
            Policies=[{"DynamoDBReadPolicy": {"TableName": "x"}}]
        ),
        lambda t: t["Resources"]["CreateSessionFunction"]["Properties"]["Policies"].append(
            "AmazonDynamoDBFullAccess"
        ),
        lambda t: t["Resources"]["CancelSessionFunction"]["Properties"].pop("Policies"),
        lambda t: t["Resources"]["PayPageFunction"]["Properties"].update(Role="arn:aws:iam::1:role/shared"),
        lambda t: t["Resources"]["OpenApiFunction"]["Properties"].update(
            Policies=[{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "x"}]}]
        ),
    ],
)
def test_policy_shape_rule_catches(template: Template, mutate: Callable[[Template], None]) -> None:
    mutate(template)
    assert policy_shape_problems(template)


def test_no_crud_policy_template_anywhere(template: Template) -> None:
    text = (ROOT / "template.yaml").read_text()
    for sam_template in ("DynamoDBCrudPolicy", "DynamoDBWritePolicy", "DynamoDBReadPolicy", "AWSLambdaRole"):
        assert sam_template not in text


def test_no_wildcard_actions_and_no_unscoped_resources(template: Template) -> None:
    assert wildcard_problems(template) == []


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:dynamodb:::table/x"},
        {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "arn:aws:dynamodb:::table/x"},
        {"Effect": "Allow", "Action": ["dynamodb:Get*"], "Resource": "arn:aws:dynamodb:::table/x"},
        {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"},
    ],
)
def test_wildcard_rule_catches(template: Template, statement: dict[str, Any]) -> None:
    template["Resources"]["CreateTransactionFunction"]["Properties"]["Policies"][0]["Statement"].append(
        statement
    )
    assert wildcard_problems(template)


def test_wildcard_rule_also_reads_plain_roles(template: Template) -> None:
    role = template["Resources"]["EventsPipeRole"]["Properties"]
    role["Policies"][0]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "events:*", "Resource": "x"}
    )
    assert wildcard_problems(template)


def test_read_only_functions_cannot_write(template: Template) -> None:
    assert read_only_problems(template) == []


@pytest.mark.parametrize("action", ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"])
def test_read_only_rule_catches(template: Template, action: str) -> None:
    template["Resources"]["GetSessionFunction"]["Properties"]["Policies"][0]["Statement"][0]["Action"].append(
        action
    )
    assert read_only_problems(template)


def test_write_access_is_where_the_code_needs_it(template: Template) -> None:
    functions = resources(FUNCTION, template)

    def granted(logical_id: str, resource: str) -> set[str]:
        return {
            action
            for statement in function_statements(functions[logical_id]["Properties"])
            if any(names_resource(r, resource) for r in as_list(statement["Resource"]))
            for action in actions_of(statement)
        }

    session_writes = {"dynamodb:PutItem", "dynamodb:UpdateItem"}
    idempotency = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert granted("CreateSessionFunction", "SessionsTable") == {"dynamodb:PutItem"}
    for logical_id in ("CreateSessionFunction", "CreateTransactionFunction", "CancelSessionFunction"):
        assert granted(logical_id, "IdempotencyTable") == idempotency
    for logical_id in (
        "CreateTransactionFunction",
        "CancelSessionFunction",
        "ProviderEventsFunction",
        "PayPageFunction",
    ):
        assert session_writes <= granted(logical_id, "SessionsTable")
    # The hosted page cancels (may start the finaliser) and settles a test payment (may wake it).
    assert granted("PayPageFunction", "CancellationFinaliser") == {
        "states:StartExecution",
        "states:SendTaskSuccess",
    }
    assert granted("PayPageFunction", "IdempotencyTable") == set()
    assert granted("CancelSessionFunction", "CancellationFinaliser") == {"states:StartExecution"}
    assert granted("ProviderEventsFunction", "CancellationFinaliser") == {"states:SendTaskSuccess"}
    assert "secretsmanager:GetSecretValue" in granted("ProviderEventsFunction", "ProviderSecretsName")
    assert {"states:StartExecution", "states:DescribeExecution", "states:SendTaskSuccess"} <= granted(
        "ExpireSessionsFunction", "CancellationFinaliser"
    )
    assert granted("ListSessionsFunction", "SessionsTable") == {"dynamodb:Query", "dynamodb:BatchGetItem"}
    assert granted("ExpireSessionsFunction", "IdempotencyTable") == set()


def test_finaliser_role_only_touches_the_sessions_table(template: Template) -> None:
    machine = template["Resources"]["CancellationFinaliser"]["Properties"]
    data_actions = {
        action
        for statement in function_statements(machine)
        if statement["Resource"] != "*"
        for action in actions_of(statement)
    }
    assert data_actions == {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"}
    for statement in function_statements(machine):
        if statement["Resource"] != "*":
            assert is_get_att(statement["Resource"], "SessionsTable", "Arn")


def test_pipe_role_reads_the_stream_invokes_the_enricher_and_publishes_to_the_bus(template: Template) -> None:
    [policy] = template["Resources"]["EventsPipeRole"]["Properties"]["Policies"]
    grants = {
        action: statement["Resource"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in actions_of(statement)
    }
    for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
        assert is_get_att(grants[action], "SessionsTable", "StreamArn")
    assert is_get_att(grants["lambda:InvokeFunction"], "PublishEventsFunction", "Arn")
    assert is_get_att(grants["events:PutEvents"], "EventBus", "Arn")
    assert is_get_att(grants["sqs:SendMessage"], "EventsPipeDeadLetterQueue", "Arn")
    assert grants["dynamodb:ListStreams"] == "*"


# ------------------------------------------------------------------------------------- runtime, build


def test_globals_fix_python_311_on_arm64_with_tracing(template: Template) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.11"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    for logical_id, resource in resources(FUNCTION, template).items():
        for key in ("Runtime", "Architectures", "Tracing"):
            assert key not in resource["Properties"], f"{logical_id} overrides {key}"


def test_layer_is_built_by_sam_for_arm64(template: Template) -> None:
    layer = template["Resources"]["CheckoutCoreLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["ContentUri"] == "layers/checkout_core/"
    requirements = (ROOT / "layers" / "checkout_core" / "requirements.txt").read_text().lower()
    assert "boto3" not in requirements, "the runtime provides boto3"


def referenced(values: list[Any]) -> set[str]:
    """The names a list of `!Ref name` (or `{"Ref": name}`) refers to."""
    return {
        value["Ref"] if isinstance(value, dict) else value.value
        for value in values
        if (isinstance(value, dict) and "Ref" in value) or getattr(value, "tag", None) == "Ref"
    }


def provider_layer_problems(template: Template) -> list[str]:
    """Each provider SDK layer is built for arm64, and carried by exactly the functions that call a provider
    (the ones given the providers' secret): no other function pays for its cold start."""
    problems = []
    callers = {
        logical_id
        for logical_id, function in resources(FUNCTION, template).items()
        if "PROVIDER_SECRETS_NAME"
        in ((function["Properties"].get("Environment") or {}).get("Variables") or {})
    }
    for layer, folder in (("StripeLayer", "stripe"), ("AdyenLayer", "adyen")):
        resource = template["Resources"].get(layer)
        if resource is None:
            problems.append(f"{layer} is missing")
            continue
        if resource["Metadata"] != {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}:
            problems.append(f"{layer} is not built by make for arm64")
        if resource["Properties"]["ContentUri"] != f"layers/{folder}/":
            problems.append(f"{layer} is not built from layers/{folder}/")
        carriers = {
            logical_id
            for logical_id, function in resources(FUNCTION, template).items()
            if layer in referenced(function["Properties"].get("Layers") or [])
        }
        problems += [f"{name} calls a provider without {layer}" for name in sorted(callers - carriers)]
        problems += [f"{name} carries {layer} and calls no provider" for name in sorted(carriers - callers)]
    return problems


def test_provider_sdk_layers_are_carried_exactly_where_a_provider_is_called(template: Template) -> None:
    assert provider_layer_problems(template) == []
    assert (ROOT / "layers" / "adyen" / "requirements.txt").read_text().strip().startswith("Adyen==")


def test_provider_layer_rule_catches(template: Template) -> None:
    functions = template["Resources"]
    functions["CancelSessionFunction"]["Properties"]["Layers"] = [{"Ref": "StripeLayer"}]
    functions["GetSessionFunction"]["Properties"]["Layers"] = [{"Ref": "AdyenLayer"}]
    problems = provider_layer_problems(template)
    assert "CancelSessionFunction calls a provider without AdyenLayer" in problems
    assert "GetSessionFunction carries AdyenLayer and calls no provider" in problems


# ---------------------------------------------------------------------------------------- data, logs


@pytest.mark.parametrize("table", ["SessionsTable", "IdempotencyTable"])
def test_tables_have_pitr_deletion_protection_and_are_retained(template: Template, table: str) -> None:
    resource = template["Resources"][table]
    properties = resource["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["DeletionProtectionEnabled"] is True
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"


def test_every_function_has_a_log_group_with_retention(template: Template) -> None:
    assert log_group_problems(template) == []


def test_log_group_rule_catches(template: Template) -> None:
    del template["Resources"]["PayPageFunctionLogGroup"]
    template["Resources"]["AuthorizerFunctionLogGroup"]["Properties"].pop("RetentionInDays")
    problems = log_group_problems(template)
    assert any("PayPageFunction" in problem for problem in problems)
    assert any("AuthorizerFunctionLogGroup" in problem for problem in problems)


def test_state_machine_logs_and_traces(template: Template) -> None:
    machine = template["Resources"]["CancellationFinaliser"]["Properties"]
    assert machine["Tracing"] == {"Enabled": True}
    assert machine["DefinitionUri"] == "statemachines/cancellation_finaliser.asl.json"
    assert set(machine["DefinitionSubstitutions"]) >= {"TableName", "CancellationRecheckSeconds"}
    [destination] = machine["Logging"]["Destinations"]
    group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert is_get_att(group, "CancellationFinaliserLogGroup", "Arn")
    assert machine["Logging"]["IncludeExecutionData"] is False  # task tokens stay out of the logs


# ------------------------------------------------------------------------------------------------ API


def test_api_logs_access_throttles_and_traces_no_url(template: Template) -> None:
    api = template["Resources"]["Api"]["Properties"]
    # The stage's trace segment records the request URL: /pay/{token} would put the pay token in X-Ray.
    assert api["TracingEnabled"] is False
    access = api["AccessLogSetting"]
    assert is_get_att(access["DestinationArn"], "ApiAccessLogGroup", "Arn")
    assert '"requestId":"$context.requestId"' in access["Format"]
    assert "$context.path" not in access["Format"], "the path of /pay/{token} carries a secret"
    [settings] = api["MethodSettings"]
    assert settings["ResourcePath"] == "/*" and settings["HttpMethod"] == "*"
    assert is_ref(settings["ThrottlingRateLimit"], "ApiThrottlingRateLimit")
    assert is_ref(settings["ThrottlingBurstLimit"], "ApiThrottlingBurstLimit")


def test_access_log_format_is_json_once_filled_in(template: Template) -> None:
    text = template["Resources"]["Api"]["Properties"]["AccessLogSetting"]["Format"]
    record = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "0", text))
    assert set(record) >= {"requestId", "status", "resourcePath", "httpMethod"}


def test_routes_and_auth_are_as_the_contract_says(template: Template) -> None:
    api = template["Resources"]["Api"]["Properties"]
    assert template["Parameters"]["StageName"]["Default"] == "live"
    authorizer = api["Auth"]["Authorizers"][api["Auth"]["DefaultAuthorizer"]]
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["Identity"] == {"Headers": ["Authorization"], "ReauthorizeEvery": 300}
    assert set(api["GatewayResponses"]) >= {"UNAUTHORIZED", "ACCESS_DENIED", "THROTTLED", "DEFAULT_5XX"}
    # Per-tenant throttling: the authorizer names each tenant's usage plan key
    assert api["ApiKeySourceType"] == "AUTHORIZER" and api["Auth"]["ApiKeyRequired"] is True
    assert set(api["Auth"]["UsagePlan"]["Throttle"]) == {"RateLimit", "BurstLimit"}
    assert api["GatewayResponses"]["THROTTLED"]["ResponseParameters"]["Headers"]["Retry-After"] == "'1'"
    routes = {}
    for logical_id, resource in resources(FUNCTION, template).items():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                properties = event["Properties"]
                public = properties.get("Auth", {}).get("Authorizer") == "NONE"
                routes[(properties["Method"].upper(), properties["Path"])] = (logical_id, public)
    assert routes == {
        ("POST", "/v1/sessions"): ("CreateSessionFunction", False),
        ("GET", "/v1/sessions"): ("ListSessionsFunction", False),
        ("GET", "/v1/sessions/{sessionId}"): ("GetSessionFunction", False),
        ("POST", "/v1/sessions/{sessionId}/transactions"): ("CreateTransactionFunction", False),
        ("POST", "/v1/sessions/{sessionId}/cancel"): ("CancelSessionFunction", False),
        ("GET", "/v1/sessions/{sessionId}/events"): ("ListSessionEventsFunction", False),
        ("POST", "/v1/providers/{provider}/events"): ("ProviderEventsFunction", True),
        ("GET", "/pay/{token}"): ("PayPageFunction", True),
        ("HEAD", "/pay/{token}"): ("PayPageFunction", True),
        ("POST", "/pay/{token}/cancel"): ("PayPageFunction", True),
        ("POST", "/pay/{token}/pay"): ("PayPageFunction", True),
        ("GET", "/pay/{token}/return"): ("PayPageFunction", True),
        ("GET", "/v1/openapi.json"): ("OpenApiFunction", True),
        ("GET", "/v1/docs"): ("OpenApiFunction", True),
        ("GET", "/v1/docs/{asset}"): ("OpenApiFunction", True),
        **{
            (method, path): ("ConsoleFunction", True)
            for method, path in [
                ("GET", "/console"),
                ("POST", "/console/sign-in"),
                ("POST", "/console/sign-out"),
                ("GET", "/console/sessions"),
                ("GET", "/console/sessions/{sessionId}"),
                ("POST", "/console/sessions/{sessionId}/cancel"),
                ("GET", "/console/webhooks"),
                ("POST", "/console/webhooks"),
                ("GET", "/console/webhooks/{endpointId}"),
                ("POST", "/console/webhooks/{endpointId}"),
                ("POST", "/console/webhooks/{endpointId}/status"),
                ("POST", "/console/webhooks/{endpointId}/rotate-secret"),
                ("POST", "/console/webhooks/{endpointId}/delete"),
                ("POST", "/console/webhooks/{endpointId}/test"),
                ("POST", "/console/webhooks/{endpointId}/deliveries/{deliveryId}/resend"),
                ("POST", "/console/webhooks/{endpointId}/recover"),
            ]
        },
        **{
            (method, path): ("WebhookEndpointsFunction", False)
            for method, path in [
                ("POST", "/v1/webhook-endpoints"),
                ("GET", "/v1/webhook-endpoints"),
                ("GET", "/v1/webhook-endpoints/{endpointId}"),
                ("PATCH", "/v1/webhook-endpoints/{endpointId}"),
                ("DELETE", "/v1/webhook-endpoints/{endpointId}"),
                ("POST", "/v1/webhook-endpoints/{endpointId}/rotate-secret"),
                ("POST", "/v1/webhook-endpoints/{endpointId}/test"),
                ("GET", "/v1/webhook-endpoints/{endpointId}/deliveries"),
                ("POST", "/v1/webhook-endpoints/{endpointId}/deliveries/{deliveryId}/resend"),
                ("POST", "/v1/webhook-endpoints/{endpointId}/recover"),
            ]
        },
    }


# ----------------------------------------------------------------------------------- schedule, outbox


def test_schedule_retries_then_dead_letters_and_failed_runs_land_in_a_queue(template: Template) -> None:
    function = template["Resources"]["ExpireSessionsFunction"]["Properties"]
    [schedule] = [
        event["Properties"] for event in function["Events"].values() if event["Type"] == "ScheduleV2"
    ]
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    assert schedule["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert is_get_att(schedule["DeadLetterConfig"]["Arn"], "ExpirySweepDeadLetterQueue", "Arn")
    on_failure = function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert is_get_att(on_failure["Destination"], "ExpirySweepDeadLetterQueue", "Arn")


def test_pipe_publishes_new_timeline_events_to_the_bus(template: Template) -> None:
    assert set(resources("AWS::Pipes::Pipe", template)) == {"EventsPipe", "WebhookEventsPipe"}
    properties = template["Resources"]["EventsPipe"]["Properties"]
    assert is_get_att(properties["Source"], "SessionsTable", "StreamArn")
    assert is_get_att(properties["Enrichment"], "PublishEventsFunction", "Arn")
    assert is_get_att(properties["Target"], "EventBus", "Arn")
    stream = properties["SourceParameters"]["DynamoDBStreamParameters"]
    assert stream["StartingPosition"] in ("TRIM_HORIZON", "LATEST")
    assert 1 <= stream["BatchSize"] <= 10
    assert is_get_att(stream["DeadLetterConfig"]["Arn"], "EventsPipeDeadLetterQueue", "Arn")
    [pattern] = [
        json.loads(f["Pattern"]) for f in properties["SourceParameters"]["FilterCriteria"]["Filters"]
    ]
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"entity": {"S": ["EVENT"]}}}}
    bus = properties["TargetParameters"]["EventBridgeEventBusParameters"]
    assert bus == {"Source": "checkout.sessions", "DetailType": "$.type"}


def fan_out_lane_problems(template: Template) -> list[str]:
    """The webhook fan-out's queue is fed in one message group per session, never in one fixed group, and
    both FIFO queues of the webhooks run in high-throughput mode (the quota is per group)."""
    problems = []
    for logical_id, rule in resources("AWS::Events::Rule", template).items():
        for target in rule["Properties"].get("Targets", []):
            if is_get_att(target["Arn"], "WebhookEventsQueue", "Arn"):
                problems.append(f"{logical_id} sends every event to the fan-out in one message group")
    feeds = [
        pipe["Properties"]
        for pipe in resources("AWS::Pipes::Pipe", template).values()
        if is_get_att(pipe["Properties"]["Target"], "WebhookEventsQueue", "Arn")
    ]
    if not feeds:
        problems.append("nothing feeds the fan-out's queue")
    for properties in feeds:
        group = properties["TargetParameters"]["SqsQueueParameters"]["MessageGroupId"]
        if group != "$.sessionId":
            problems.append(f"the fan-out's message group is {group!r}, not the session")
    for queue in ("WebhookEventsQueue", "WebhookDeliveryQueue"):
        queue_properties = template["Resources"][queue]["Properties"]
        if queue_properties.get("FifoThroughputLimit") != "perMessageGroupId":
            problems.append(f"{queue} is not a high-throughput FIFO queue")
        if queue_properties.get("DeduplicationScope") != "messageGroup":
            problems.append(f"{queue} deduplicates across the whole queue")
    return problems


def test_the_fan_out_has_no_single_lane(template: Template) -> None:
    assert fan_out_lane_problems(template) == []
    pipe = template["Resources"]["WebhookEventsPipe"]["Properties"]
    assert is_get_att(pipe["Source"], "SessionsTable", "StreamArn")
    assert is_get_att(pipe["Enrichment"], "PublishEventsFunction", "Arn")
    assert pipe["TargetParameters"]["SqsQueueParameters"]["MessageDeduplicationId"] == "$.eventId"
    assert pipe["TargetParameters"]["InputTemplate"] == '{"detail": <aws.pipes.event.json>}'
    events_pipe = template["Resources"]["EventsPipe"]["Properties"]["SourceParameters"]
    assert pipe["SourceParameters"]["FilterCriteria"] == events_pipe["FilterCriteria"]
    stream = pipe["SourceParameters"]["DynamoDBStreamParameters"]
    assert is_get_att(stream["DeadLetterConfig"]["Arn"], "EventsPipeDeadLetterQueue", "Arn")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t["Resources"]["WebhookEventsPipe"]["Properties"]["TargetParameters"][
            "SqsQueueParameters"
        ].update(MessageGroupId="events"),
        lambda t: t["Resources"].update(
            Rule={
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Targets": [
                        {
                            "Id": "x",
                            "Arn": {"Fn::GetAtt": ["WebhookEventsQueue", "Arn"]},
                            "SqsParameters": {"MessageGroupId": "events"},
                        }
                    ]
                },
            }
        ),
        lambda t: t["Resources"]["WebhookDeliveryQueue"]["Properties"].pop("FifoThroughputLimit"),
        lambda t: t["Resources"].pop("WebhookEventsPipe"),
    ],
)
def test_fan_out_lane_rule_catches(template: Template, mutate: Callable[[Template], None]) -> None:
    mutate(template)
    assert fan_out_lane_problems(template)


def test_webhook_pipe_role_reads_the_stream_invokes_the_enricher_and_sends_to_the_fan_out(
    template: Template,
) -> None:
    [policy] = template["Resources"]["WebhookEventsPipeRole"]["Properties"]["Policies"]
    statements = policy["PolicyDocument"]["Statement"]

    def granted(action: str, name: str, attribute: str) -> bool:
        return any(
            action in actions_of(statement) and is_get_att(statement["Resource"], name, attribute)
            for statement in statements
        )

    for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
        assert granted(action, "SessionsTable", "StreamArn")
    assert granted("lambda:InvokeFunction", "PublishEventsFunction", "Arn")
    assert granted("sqs:SendMessage", "WebhookEventsQueue", "Arn")
    assert granted("sqs:SendMessage", "EventsPipeDeadLetterQueue", "Arn")
    assert not any(a.startswith("events:") for statement in statements for a in actions_of(statement))


def test_pipe_filter_matches_the_sample_batch() -> None:
    # The filter keeps exactly the INSERTs of EVENT items: the sample enrichment batch is made of those.
    records = json.loads((ROOT / "events" / "publish_events.json").read_text())
    assert records and all(r["eventName"] == "INSERT" for r in records)
    assert all(r["dynamodb"]["NewImage"]["entity"] == {"S": "EVENT"} for r in records)


# ---------------------------------------------------------------------------------------------- alarms


def watched(template: Template) -> list[tuple[str, str, list[Any]]]:
    return [
        (metric["Namespace"], metric["MetricName"], metric.get("Dimensions", []))
        for properties in alarms(template).values()
        for metric in alarm_metrics(properties)
    ]


def alarm_problems(template: Template) -> list[str]:
    metrics = watched(template)
    problems = []
    for name in ("ExecutionsFailed", "ExecutionsTimedOut"):
        if not any(
            ns == "AWS/States" and metric == name and is_ref(dims[0]["Value"], "CancellationFinaliser")
            for ns, metric, dims in metrics
        ):
            problems.append(f"no alarm on the finaliser's {name}")
    if not any(ns == "AWS/ApiGateway" and metric == "5XXError" for ns, metric, _ in metrics):
        problems.append("no alarm on API 5xx")
    if not any(metric == "ApiThrottledRequests" for _, metric, _ in metrics):
        problems.append("no alarm on API 429 answers")
    throttled = {
        str(tag(dims[0]["Value"])[1])  # type: ignore[index]
        for ns, metric, dims in metrics
        if ns == "AWS/Lambda" and metric == "Throttles"
    }
    for logical_id in sorted(set(resources(FUNCTION, template)) - throttled):
        problems.append(f"no alarm on Throttles of {logical_id}")
    for queue in ("ExpirySweepDeadLetterQueue", "EventsPipeDeadLetterQueue"):
        if not any(
            ns == "AWS/SQS" and is_get_att(dims[0]["Value"], queue, "QueueName") for ns, _, dims in metrics
        ):
            problems.append(f"no alarm on messages in {queue}")
    return problems


def test_alarms_watch_the_finaliser_the_api_throttles_and_dead_letters(template: Template) -> None:
    assert alarm_problems(template) == []


@pytest.mark.parametrize(
    "alarm",
    [
        "FinaliserFailedAlarm",
        "FinaliserTimedOutAlarm",
        "Api5xxRateAlarm",
        "ApiThrottledAlarm",
        "ExpirySweepDeadLetterAlarm",
        "EventsPipeDeadLetterAlarm",
    ],
)
def test_alarm_rule_catches_a_missing_alarm(template: Template, alarm: str) -> None:
    del template["Resources"][alarm]
    assert alarm_problems(template)


def test_alarm_rule_catches_a_function_without_throttle_alarm(template: Template) -> None:
    template["Resources"]["ApiFunctionsThrottlesAlarm"]["Properties"]["Metrics"].pop(0)
    assert alarm_problems(template) == ["no alarm on Throttles of AuthorizerFunction"]


def test_every_alarm_notifies_the_operations_topic(template: Template) -> None:
    found = alarms(template)
    assert len(found) >= 6
    for name, properties in found.items():
        assert any(is_ref(action, "OperationsTopic") for action in properties["AlarmActions"]), name
        assert properties["TreatMissingData"] == "notBreaching", name


def test_attention_required_events_reach_the_operations_topic(template: Template) -> None:
    rule = template["Resources"]["AttentionRequiredRule"]["Properties"]
    assert is_ref(rule["EventBusName"], "EventBus")
    assert rule["EventPattern"] == {
        "source": ["checkout.sessions"],
        "detail-type": ["session.attention_required"],
    }
    [target] = rule["Targets"]
    assert is_ref(target["Arn"], "OperationsTopic")
    statements = template["Resources"]["OperationsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Principal"] == {"Service": "events.amazonaws.com"}
        and is_get_att(s["Condition"]["ArnEquals"]["aws:SourceArn"], "AttentionRequiredRule", "Arn")
        for s in statements
    )


# --------------------------------------------------------------------------------------- sample events


@pytest.mark.parametrize(("logical_id", "file_name"), sorted(SAMPLE_EVENTS.items()))
def test_every_function_has_a_sample_event(template: Template, logical_id: str, file_name: str) -> None:
    assert logical_id in resources(FUNCTION, template)
    event = json.loads((ROOT / "events" / file_name).read_text())
    assert event


def test_sample_events_cover_every_function(template: Template) -> None:
    assert set(SAMPLE_EVENTS) == set(resources(FUNCTION, template))


@pytest.mark.parametrize("file_name", API_EVENTS)
def test_api_sample_events_match_their_route(template: Template, file_name: str) -> None:
    event = json.loads((ROOT / "events" / file_name).read_text())
    routes = {
        (props["Method"].upper(), props["Path"]): props.get("Auth", {}).get("Authorizer") != "NONE"
        for resource in resources(FUNCTION, template).values()
        for props in (
            e["Properties"] for e in resource["Properties"].get("Events", {}).values() if e["Type"] == "Api"
        )
    }
    authorised = routes[(event["httpMethod"], event["resource"])]
    assert event["requestContext"]["resourcePath"] == event["resource"]
    assert event["requestContext"]["requestId"]
    assert event["headers"]["Content-Type"] == "application/json"
    path = event["resource"]
    for name, value in (event["pathParameters"] or {}).items():
        path = path.replace("{" + name + "}", value)
    assert path == event["path"]
    if authorised:
        assert event["requestContext"]["authorizer"] == {
            "principalId": "demo",
            "tenantId": "demo",
            "returnHosts": "example.com,localhost",
        }
    else:
        assert "authorizer" not in event["requestContext"]
    if event["httpMethod"] == "POST":
        assert isinstance(json.loads(event["body"]), dict)


def test_pay_page_requests_are_never_traced(template: Template) -> None:
    # API Gateway's segments record the URL, and /pay/{token} carries the token.
    [rule] = [
        r["Properties"]["SamplingRule"] for r in resources("AWS::XRay::SamplingRule", template).values()
    ]
    assert rule["FixedRate"] == 0 and rule["ReservoirSize"] == 0
    assert rule["URLPath"] == "*/pay/*"
    assert rule["ServiceType"] == "AWS::ApiGateway::Stage"
    assert "${Api}" in tag(rule["ResourceARN"])[1]  # type: ignore[index]


def test_metric_math_alarms_stay_within_cloudwatch_limits(template: Template) -> None:
    # An alarm's metric math may retrieve at most 10 metrics.
    for name, properties in alarms(template).items():
        queries = properties.get("Metrics", [])
        assert sum("MetricStat" in query for query in queries) <= 10, name
        assert sum(bool(query.get("ReturnData")) for query in queries) in ((1,) if queries else (0,)), name


def test_cfn_lint_with_the_serverless_rules_finds_nothing() -> None:
    # cfn-lint expands the SAM transform first, so the rules see the functions, rules and queues it makes.
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(ROOT / "template.yaml", config=ManualArgs(append_rules=["cfn_lint_serverless.rules"]))
    assert [str(match) for match in matches] == []
