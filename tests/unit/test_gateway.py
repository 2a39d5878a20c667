"""The local API Gateway without processes or AWS: routes read from template.yaml, request -> proxy event,
the REQUEST authorizer with its cache and policy, gateway responses, proxy answers, and the HTTP transport."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from local import cfn
from local.functions import FunctionError, function_specs
from local.gateway import (
    FRONT_PAGE,
    Api,
    AuthorizerCache,
    Gateway,
    GatewayHTTPServer,
    Request,
    Route,
    RouteTable,
    build_authorizer_event,
    build_proxy_event,
    gateway_response,
    method_arn,
)
from local.runtime import local_resolver

NOW = datetime(2026, 11, 22, 17, 40, 5, 123000, tzinfo=UTC)


@pytest.fixture(scope="module")
def routes() -> RouteTable:
    template = cfn.load_template()
    specs = function_specs(template)
    resolver = local_resolver(template, cfn.parameter_defaults(template), specs)
    return RouteTable.from_template(specs, resolver, template)


def request(
    method: str, target: str, headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> Request:
    return Request(method, target, [("Host", "127.0.0.1:3000"), *(headers or [])], body, "10.0.0.7")


# -- routes from the template -----------------------------------------------------------------------------


def test_every_api_event_of_the_template_is_a_route(routes: RouteTable) -> None:
    served = {(route.method, route.resource): route.function_id for route in routes.routes}
    assert served[("POST", "/v1/sessions")] == "CreateSessionFunction"
    assert served[("GET", "/v1/sessions")] == "ListSessionsFunction"
    assert served[("GET", "/v1/sessions/{sessionId}")] == "GetSessionFunction"
    assert served[("POST", "/v1/sessions/{sessionId}/cancel")] == "CancelSessionFunction"
    assert served[("POST", "/v1/providers/{provider}/events")] == "ProviderEventsFunction"
    assert served[("GET", "/pay/{token}")] == "PayPageFunction"


def test_routes_take_the_default_authorizer_unless_auth_is_none(routes: RouteTable) -> None:
    authorizers = {(route.method, route.resource): route.authorizer for route in routes.routes}
    guarded = authorizers[("POST", "/v1/sessions")]
    assert guarded is not None
    assert guarded.function_id == "AuthorizerFunction"
    assert guarded.identity_headers == ("Authorization",)
    assert guarded.ttl_seconds == 300
    assert authorizers[("POST", "/v1/providers/{provider}/events")] is None
    assert authorizers[("GET", "/pay/{token}")] is None
    assert authorizers[("GET", "/v1/openapi.json")] is None


def test_the_stage_and_gateway_responses_come_from_the_api(routes: RouteTable) -> None:
    api = routes.routes[0].api
    assert api.stage == "live"
    assert "UNAUTHORIZED" in api.gateway_responses


@pytest.mark.parametrize(
    ("method", "path", "function_id", "params"),
    [
        ("POST", "/v1/sessions", "CreateSessionFunction", {}),
        ("get", "/v1/sessions", "ListSessionsFunction", {}),
        ("GET", "/v1/sessions/0193f2d4-aaaa", "GetSessionFunction", {"sessionId": "0193f2d4-aaaa"}),
        ("POST", "/v1/sessions/abc/cancel", "CancelSessionFunction", {"sessionId": "abc"}),
        ("POST", "/v1/sessions/abc/transactions", "CreateTransactionFunction", {"sessionId": "abc"}),
        ("GET", "/v1/sessions/abc/events", "ListSessionEventsFunction", {"sessionId": "abc"}),
        ("POST", "/v1/providers/sandbox_card/events", "ProviderEventsFunction", {"provider": "sandbox_card"}),
        ("GET", "/pay/t%2Fo%20ken", "PayPageFunction", {"token": "t/o ken"}),
        ("GET", "/v1/openapi.json", "OpenApiFunction", {}),
        ("GET", "/v1/sessions/", "ListSessionsFunction", {}),
    ],
)
def test_a_path_matches_its_route_with_decoded_path_parameters(
    routes: RouteTable, method: str, path: str, function_id: str, params: dict[str, str]
) -> None:
    matched = routes.match(method, path)
    assert matched is not None
    route, found = matched
    assert (route.function_id, found) == (function_id, params)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/sessions"),
        ("GET", "/v1/sessions/a/b"),
        ("GET", "/v2/sessions"),
        ("GET", "/"),
        ("PUT", "/pay/x"),
    ],
)
def test_an_unknown_method_or_path_matches_nothing(routes: RouteTable, method: str, path: str) -> None:
    assert routes.match(method, path) is None


def test_literal_segments_win_over_parameters_and_greedy_paths() -> None:
    api = Api("Api", "live")
    table = RouteTable(
        [
            Route("ANY", "/{proxy+}", "Greedy", api, None),
            Route("GET", "/v1/{thing}", "Param", api, None),
            Route("GET", "/v1/special", "Literal", api, None),
        ]
    )
    assert table.match("GET", "/v1/special")[0].function_id == "Literal"  # type: ignore[index]
    assert table.match("GET", "/v1/other")[0].function_id == "Param"  # type: ignore[index]
    greedy = table.match("POST", "/v1/a/b")
    assert greedy is not None
    assert (greedy[0].function_id, greedy[1]) == ("Greedy", {"proxy": "v1/a/b"})


# -- request -> proxy event -------------------------------------------------------------------------------


def test_the_proxy_event_carries_the_request_as_api_gateway_does(routes: RouteTable) -> None:
    # Given a request with repeated headers and query parameters and a JSON body
    incoming = request(
        "POST",
        "/v1/sessions/s-1/cancel?expand=a&expand=b&flag=&one=1",
        [("Accept", "application/json"), ("X-Tag", "first"), ("X-Tag", "second"), ("User-Agent", "test/1")],
        b'{"reason": "changed mind"}',
    )
    route, params = routes.match(incoming.method, incoming.path)  # type: ignore[misc]
    # When it becomes a proxy event
    event = build_proxy_event(route, params, incoming, "req-1", NOW)
    # Then it is payload 1.0
    assert event["resource"] == "/v1/sessions/{sessionId}/cancel"
    assert event["path"] == "/v1/sessions/s-1/cancel"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"sessionId": "s-1"}
    assert event["stageVariables"] is None
    assert event["body"] == '{"reason": "changed mind"}'
    assert event["isBase64Encoded"] is False
    # with the last value of a repeated header / parameter single, and all of them multi
    assert event["headers"]["X-Tag"] == "second"
    assert event["multiValueHeaders"]["X-Tag"] == ["first", "second"]
    assert event["headers"]["X-Forwarded-For"] == "10.0.0.7"
    assert event["queryStringParameters"] == {"expand": "b", "flag": "", "one": "1"}
    assert event["multiValueQueryStringParameters"] == {"expand": ["a", "b"], "flag": [""], "one": ["1"]}
    # and the request context of the stage
    context = event["requestContext"]
    assert context["requestId"] == "req-1"
    assert context["resourcePath"] == "/v1/sessions/{sessionId}/cancel"
    assert context["httpMethod"] == "POST"
    assert context["path"] == "/live/v1/sessions/s-1/cancel"
    assert context["stage"] == "live"
    assert context["identity"]["sourceIp"] == "10.0.0.7"
    assert context["identity"]["userAgent"] == "test/1"
    assert context["requestTimeEpoch"] == int(NOW.timestamp() * 1000)
    assert context["requestTime"] == "22/Nov/2026:17:40:05 +0000"
    json.dumps(event)


def test_absent_parts_are_null_as_in_api_gateway(routes: RouteTable) -> None:
    incoming = request("GET", "/v1/sessions")
    route, params = routes.match("GET", "/v1/sessions")  # type: ignore[misc]
    event = build_proxy_event(route, params, incoming, "req-2", NOW)
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["body"] is None


def test_a_body_that_is_not_utf8_is_passed_base64_encoded(routes: RouteTable) -> None:
    incoming = request("POST", "/v1/sessions", body=b"\xff\xfe\x00")
    route, params = routes.match("POST", "/v1/sessions")  # type: ignore[misc]
    event = build_proxy_event(route, params, incoming, "req-3", NOW)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00"


def test_the_authorizer_event_is_a_request_authorizer_event(routes: RouteTable) -> None:
    incoming = request("GET", "/v1/sessions/s-9?x=1", [("Authorization", "Bearer k")])
    route, params = routes.match("GET", "/v1/sessions/s-9")  # type: ignore[misc]
    event = build_authorizer_event(build_proxy_event(route, params, incoming, "req-4", NOW), "live")
    assert event["type"] == "REQUEST"
    assert event["methodArn"] == "arn:aws:execute-api:us-east-1:123456789012:local/live/GET/v1/sessions/s-9"
    assert event["headers"]["Authorization"] == "Bearer k"
    assert event["queryStringParameters"] == {"x": "1"}
    assert event["pathParameters"] == {"sessionId": "s-9"}
    assert "authorizer" not in event["requestContext"]


# -- the gateway: authorizer, cache, answers --------------------------------------------------------------


def allow_all(principal: str = "demo", **context: Any) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": ["arn:aws:execute-api:us-east-1:123456789012:local/live/*/*"],
                }
            ],
        },
        "context": context,
        "usageIdentifierKey": f"usage-key-{principal}",
    }


class FakeFunctions:
    """Stands in for the invoker: records each call and answers from a table of callables."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, function_id: str, event: Any, request_id: str) -> Any:
        with self.lock:
            self.calls.append((function_id, event))
        answer = self.answers[function_id]
        if isinstance(answer, BaseException):
            raise FunctionError(f"{function_id} raised", type(answer).__name__, str(answer))
        return answer(event) if callable(answer) else answer

    def called(self, function_id: str) -> list[Any]:
        return [event for called, event in self.calls if called == function_id]


def echo(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"authorizer": event["requestContext"]["authorizer"]}),
    }


def test_an_allowed_request_reaches_the_route_with_the_authorizer_context(routes: RouteTable) -> None:
    # Given an authorizer that allows and adds a tenant and return hosts
    functions = FakeFunctions(
        {
            "AuthorizerFunction": allow_all(
                tenantId="demo", returnHosts="example.com,localhost", vip=True, n=2
            ),
            "ListSessionsFunction": echo,
        }
    )
    gateway = Gateway(routes, functions)
    # When a request comes with a key
    response = gateway.handle(request("GET", "/v1/sessions", [("Authorization", "Bearer sk_test_demo")]))
    # Then the route sees the context as strings, with principalId
    assert response.status == 200
    seen = response.json()["authorizer"]
    assert seen["principalId"] == "demo"
    assert seen["tenantId"] == "demo"
    assert seen["returnHosts"] == "example.com,localhost"
    assert (seen["vip"], seen["n"]) == ("true", "2")
    authorizer_event = functions.called("AuthorizerFunction")[0]
    assert authorizer_event["methodArn"].endswith("/live/GET/v1/sessions")
    assert response.header("x-amzn-RequestId")


def test_the_authorizer_answer_is_cached_per_authorization_header(routes: RouteTable) -> None:
    clock = [1000.0]
    functions = FakeFunctions(
        {"AuthorizerFunction": allow_all(tenantId="demo"), "ListSessionsFunction": echo}
    )
    gateway = Gateway(routes, functions, AuthorizerCache(clock=lambda: clock[0]))
    key_a = [("Authorization", "Bearer a")]
    key_b = [("Authorization", "Bearer b")]
    for _ in range(3):
        assert gateway.handle(request("GET", "/v1/sessions", key_a)).status == 200
    assert gateway.handle(request("GET", "/v1/sessions", key_b)).status == 200
    assert len(functions.called("AuthorizerFunction")) == 2
    # After ReauthorizeEvery (300 s) the authorizer is asked again
    clock[0] += 301
    assert gateway.handle(request("GET", "/v1/sessions", key_a)).status == 200
    assert len(functions.called("AuthorizerFunction")) == 3


def assert_invalid_api_key(response: Any) -> None:
    assert response.status == 401
    body = response.json()
    assert body["error"]["code"] == "invalid_api_key"
    assert (
        body["error"]["requestId"] == response.header("X-Request-Id") == response.header("x-amzn-RequestId")
    )


def test_a_missing_identity_header_is_401_without_calling_the_authorizer(routes: RouteTable) -> None:
    functions = FakeFunctions({"AuthorizerFunction": allow_all(), "ListSessionsFunction": echo})
    response = Gateway(routes, functions).handle(request("GET", "/v1/sessions"))
    assert_invalid_api_key(response)
    assert functions.calls == []


def test_an_authorizer_raising_unauthorized_is_401_and_not_cached(routes: RouteTable) -> None:
    functions = FakeFunctions({"AuthorizerFunction": Exception("Unauthorized"), "ListSessionsFunction": echo})
    gateway = Gateway(routes, functions)
    for _ in range(2):
        assert_invalid_api_key(
            gateway.handle(request("GET", "/v1/sessions", [("Authorization", "Bearer x")]))
        )
    assert len(functions.called("AuthorizerFunction")) == 2
    assert functions.called("ListSessionsFunction") == []


def test_a_deny_policy_is_refused_with_the_access_denied_response(routes: RouteTable) -> None:
    deny = allow_all()
    deny["policyDocument"]["Statement"][0]["Effect"] = "Deny"
    functions = FakeFunctions({"AuthorizerFunction": deny, "ListSessionsFunction": echo})
    response = Gateway(routes, functions).handle(
        request("GET", "/v1/sessions", [("Authorization", "Bearer x")])
    )
    assert_invalid_api_key(response)  # the template maps ACCESS_DENIED to 401 invalid_api_key
    assert functions.called("ListSessionsFunction") == []


def test_a_cached_policy_for_one_method_denies_the_others_as_api_gateway_does(routes: RouteTable) -> None:
    # Given an authorizer that allows only the method ARN it was asked about
    def only_this_method(event: dict[str, Any]) -> dict[str, Any]:
        answer = allow_all()
        answer["policyDocument"]["Statement"][0]["Resource"] = event["methodArn"]
        return answer

    functions = FakeFunctions(
        {"AuthorizerFunction": only_this_method, "ListSessionsFunction": echo, "GetSessionFunction": echo}
    )
    gateway = Gateway(routes, functions)
    key = [("Authorization", "Bearer x")]
    assert gateway.handle(request("GET", "/v1/sessions", key)).status == 200
    # Then the same key on another route is refused from the cache
    assert_invalid_api_key(gateway.handle(request("GET", "/v1/sessions/s-1", key)))


@pytest.mark.parametrize(
    "answer",
    [
        {"policyDocument": {"Statement": []}},
        {"principalId": "p"},
        {**allow_all(), "context": {"returnHosts": ["example.com"]}},
        "not an object",
    ],
)
def test_an_authorizer_answer_api_gateway_rejects_is_a_500(routes: RouteTable, answer: Any) -> None:
    functions = FakeFunctions({"AuthorizerFunction": answer, "ListSessionsFunction": echo})
    response = Gateway(routes, functions).handle(
        request("GET", "/v1/sessions", [("Authorization", "Bearer x")])
    )
    assert response.status == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert functions.called("ListSessionsFunction") == []


def test_a_handler_that_raises_is_a_502_with_the_internal_error_body(routes: RouteTable) -> None:
    functions = FakeFunctions({"OpenApiFunction": RuntimeError("secret internals at line 42")})
    response = Gateway(routes, functions).handle(request("GET", "/v1/openapi.json"))
    assert response.status == 502
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["requestId"] == response.header("X-Request-Id")
    assert b"secret internals" not in response.body


@pytest.mark.parametrize(
    "answer",
    [None, {"body": "{}"}, {"statusCode": "two hundred"}, {"statusCode": 200, "body": {"not": "a string"}}],
)
def test_a_malformed_proxy_answer_is_a_502(routes: RouteTable, answer: Any) -> None:
    response = Gateway(routes, FakeFunctions({"OpenApiFunction": answer})).handle(
        request("GET", "/v1/openapi.json")
    )
    assert response.status == 502
    assert response.json()["error"]["code"] == "internal_error"


def test_the_proxy_answer_is_written_back_with_its_headers() -> None:
    answer = {
        "statusCode": 201,
        "headers": {"Content-Type": "text/html", "X-Request-Id": "r-1", "Set-Cookie": "ignored-for-multi"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(b"<p>hi</p>").decode(),
        "isBase64Encoded": True,
    }
    api = Api("Api", "live")
    table = RouteTable([Route("GET", "/page", "Page", api, None)])
    response = Gateway(table, FakeFunctions({"Page": answer})).handle(request("GET", "/page"))
    assert response.status == 201
    assert response.body == b"<p>hi</p>"
    assert response.header("Content-Type") == "text/html"
    assert response.header("X-Request-Id") == "r-1"
    assert [value for name, value in response.headers if name == "Set-Cookie"] == ["a=1", "b=2"]


def test_an_unknown_route_is_404_not_found_in_the_contract_shape(routes: RouteTable) -> None:
    response = Gateway(routes, FakeFunctions({})).handle(request("GET", "/nowhere"))
    assert response.status == 404
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "not_found"
    assert body["error"]["requestId"] == response.header("X-Request-Id")


def test_a_gateway_response_renders_context_variables_and_headers() -> None:
    api = Api(
        "Api",
        "live",
        gateway_responses={
            "DEFAULT_4XX": {
                "StatusCode": 418,
                "ResponseParameters": {"Headers": {"X-Request-Id": "context.requestId", "X-Static": "'yes'"}},
                "ResponseTemplates": {
                    "application/json": '{"id": "$context.requestId", "type": "${context.error.responseType}"}'
                },
            }
        },
    )
    response = gateway_response(api, "UNAUTHORIZED", "rid-7")
    assert response.status == 418
    assert response.json() == {"id": "rid-7", "type": "UNAUTHORIZED"}
    assert response.header("X-Request-Id") == "rid-7"
    assert response.header("X-Static") == "yes"
    assert gateway_response(None, "UNAUTHORIZED", "r").json() == {"message": "Unauthorized"}


def test_method_arn() -> None:
    assert method_arn("live", "post", "/v1/sessions") == (
        "arn:aws:execute-api:us-east-1:123456789012:local/live/POST/v1/sessions"
    )


# -- the HTTP transport -----------------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[GatewayHTTPServer, FakeFunctions]]:
    api = Api("Api", "live")
    functions = FakeFunctions(
        {
            "Echo": lambda event: {
                "statusCode": 200,
                "body": json.dumps(event),
                "headers": {"X-Request-Id": "e"},
            }
        }
    )
    server = GatewayHTTPServer(
        ("127.0.0.1", 0), Gateway(RouteTable([Route("ANY", "/echo/{id}", "Echo", api, None)]), functions)
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server, functions
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_requests_become_events_with_every_header_and_query_value(
    served: tuple[GatewayHTTPServer, FakeFunctions],
) -> None:
    server, _ = served
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    connection.putrequest("POST", "/echo/a%20b?q=1&q=2")
    connection.putheader("X-Multi", "one")
    connection.putheader("X-Multi", "two")
    connection.putheader("Content-Length", "2")
    connection.endheaders(b"{}")
    answer = connection.getresponse()
    event = json.loads(answer.read())
    assert answer.status == 200
    assert event["pathParameters"] == {"id": "a b"}
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"]}
    assert event["multiValueHeaders"]["X-Multi"] == ["one", "two"]
    assert event["body"] == "{}"
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    # The connection stays open for a second request (HTTP/1.1 keep-alive), with a chunked body
    connection.putrequest("PUT", "/echo/2")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    connection.send(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    second = connection.getresponse()
    assert json.loads(second.read())["body"] == "abcde"
    connection.close()


def test_the_front_page_redirects_to_the_docs_and_other_paths_stay_unknown(
    served: tuple[GatewayHTTPServer, FakeFunctions],
) -> None:
    server, functions = served
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    connection.request("GET", "/")
    front = connection.getresponse()
    front.read()
    assert (front.status, front.getheader("Location")) == (302, FRONT_PAGE)
    connection.request("POST", "/")
    posted = connection.getresponse()
    assert posted.status == 404 and json.loads(posted.read())["error"]["code"] == "not_found"
    connection.close()
    assert functions.calls == []


def test_http_server_serves_requests_concurrently(served: tuple[GatewayHTTPServer, FakeFunctions]) -> None:
    server, functions = served
    release = threading.Event()
    inside = threading.Semaphore(0)

    def slow(event: dict[str, Any]) -> dict[str, Any]:
        inside.release()
        assert release.wait(10)
        return {"statusCode": 200, "body": event["pathParameters"]["id"]}

    functions.answers["Echo"] = slow
    results: dict[int, str] = {}

    def call(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=20)
        connection.request("GET", f"/echo/{index}")
        results[index] = connection.getresponse().read().decode()

    threads = [threading.Thread(target=call, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    # All 12 are inside the handler at the same time before any is released
    for _ in range(12):
        assert inside.acquire(timeout=10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == {index: str(index) for index in range(12)}


# -- usage plans: per-tenant throttling ------------------------------------------------------------------


def test_each_tenant_is_throttled_on_its_own_allowance(routes: RouteTable) -> None:
    import dataclasses

    from local.gateway import Route, Throttle, TokenBuckets

    # Given the template's routes with a usage plan of 1 request a second, bursts of 2, and a frozen clock
    plan = Throttle(rate_limit=1.0, burst_limit=2)
    throttled = RouteTable(
        [
            dataclasses.replace(route, api=dataclasses.replace(route.api, usage_plan=plan))
            for route in routes.routes
        ]
    )
    assert all(isinstance(route, Route) for route in throttled.routes)
    clock = [1000.0]
    answers = {"AuthorizerFunction": lambda event: allow_all(event["headers"]["Authorization"][-1])}
    gateway = Gateway(throttled, FakeFunctions({**answers, "ListSessionsFunction": echo}))
    gateway.buckets = TokenBuckets(clock=lambda: clock[0])
    tenant_a, tenant_b = [("Authorization", "Bearer a")], [("Authorization", "Bearer b")]
    # When tenant a sends three requests at once
    statuses = [gateway.handle(request("GET", "/v1/sessions", tenant_a)).status for _ in range(3)]
    # Then the third is refused with 429 rate_limited, Retry-After and its request id
    assert statuses == [200, 200, 429]
    refused = gateway.handle(request("GET", "/v1/sessions", tenant_a))
    assert refused.status == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert refused.header("Retry-After") == "1"
    assert refused.json()["error"]["requestId"] == refused.header("X-Request-Id")
    # And tenant b is not affected, and a second later tenant a may send one more
    assert gateway.handle(request("GET", "/v1/sessions", tenant_b)).status == 200
    clock[0] += 1.0
    assert gateway.handle(request("GET", "/v1/sessions", tenant_a)).status == 200
    assert gateway.handle(request("GET", "/v1/sessions", tenant_a)).status == 429


def test_a_route_requiring_a_key_refuses_an_authorizer_that_names_none(routes: RouteTable) -> None:
    no_key = {key: value for key, value in allow_all().items() if key != "usageIdentifierKey"}
    gateway = Gateway(routes, FakeFunctions({"AuthorizerFunction": no_key, "ListSessionsFunction": echo}))
    answer = gateway.handle(request("GET", "/v1/sessions", [("Authorization", "Bearer a")]))
    assert answer.status == 403


def test_the_template_meters_every_tenant_route_and_no_public_one(routes: RouteTable) -> None:
    for route in routes.routes:
        assert route.api.key_from_authorizer and route.api.usage_plan is not None
        assert route.api_key_required is (route.authorizer is not None), route.resource
