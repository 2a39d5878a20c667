"""A local API Gateway (REST API, Lambda proxy integration, payload 1.0) built from template.yaml.

Routes are the `Type: Api` events of the template's functions. A route without `Auth: {Authorizer: NONE}` is
guarded by its Api's `DefaultAuthorizer` (a REQUEST Lambda authorizer). What API Gateway does, this does:

- identity sources missing from the request: 401 (gateway response UNAUTHORIZED), no authorizer call;
- the authorizer raising `Exception("Unauthorized")`: UNAUTHORIZED; returning a policy that does not allow
  `execute-api:Invoke` on the method ARN, or that denies it: ACCESS_DENIED; failing otherwise or returning a
  malformed answer (no principalId / policyDocument, a `context` value that is not a string, number or
  boolean): AUTHORIZER_FAILURE / AUTHORIZER_CONFIGURATION_ERROR (500);
- the authorizer's answer is cached per identity source values for `ReauthorizeEvery` seconds, and the cached
  policy is evaluated against each request's method ARN;
- `context` values reach the integration as strings in `requestContext.authorizer`, with `principalId`;
- a handler that raises or answers with a malformed proxy response: 502 (DEFAULT_5XX);
- error answers use the Api's `GatewayResponses` (status, headers, `application/json` template with
  `$context.*` variables), falling back to DEFAULT_4XX / DEFAULT_5XX, then to API Gateway's own bodies.

A request that matches no route gets the template's MISSING_AUTHENTICATION_TOKEN gateway response, as on
AWS (the template answers 404 `not_found` in the API's error shape); without one, the same 404 rather
than API Gateway's built-in 403 `{"message": "Missing Authentication Token"}`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from local import cfn
from local.functions import FunctionCodeMissing, FunctionError, FunctionSpec, RuntimeStopping
from local.naming import ACCOUNT_ID, REGION

log = logging.getLogger("local.gateway")

API_TYPE = "AWS::Serverless::Api"
LOCAL_API_ID = "local"
USAGE_KEY = "_usageIdentifierKey"  # carried from the authorizer's answer to the usage plan check
MAX_BODY_BYTES = 10 * 1024 * 1024

Invoke = Callable[[str, Any, str], Any]
"""(function logical id, event, request id) -> its answer; raises FunctionError / FunctionCodeMissing."""


# --------------------------------------------------------------------------------------------- the template


@dataclass(frozen=True)
class Authorizer:
    name: str
    function_id: str
    identity_headers: tuple[str, ...] = ()
    identity_query_strings: tuple[str, ...] = ()
    ttl_seconds: int = 300


@dataclass(frozen=True)
class Throttle:
    """A usage plan's allowance per API key: `rate_limit` requests a second, bursts up to `burst_limit`."""

    rate_limit: float
    burst_limit: int


@dataclass(frozen=True)
class Api:
    logical_id: str
    stage: str
    authorizers: dict[str, Authorizer] = field(default_factory=dict)
    default_authorizer: str | None = None
    gateway_responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_key_required: bool = False
    key_from_authorizer: bool = False
    usage_plan: Throttle | None = None


class TokenBuckets:
    """API Gateway's token bucket per API key of a usage plan (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, throttle: Throttle) -> bool:
        """One request's token for `key`; False when the allowance is spent (the request is throttled)."""
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(key, (float(throttle.burst_limit), now))
            tokens = min(float(throttle.burst_limit), tokens + (now - then) * throttle.rate_limit)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1, now)
            return True


_GREEDY = re.compile(r"^\{(\w+)\+\}$")
_PARAM = re.compile(r"^\{(\w+)\}$")


@dataclass(frozen=True)
class Route:
    method: str
    resource: str
    function_id: str
    api: Api
    authorizer: Authorizer | None
    api_key_required: bool = False

    @property
    def segments(self) -> tuple[str, ...]:
        return _split(self.resource)

    def specificity(self) -> tuple[int, ...]:
        """Literal segments before `{param}` before `{proxy+}`, position by position, as API Gateway does."""
        ranks = tuple(2 if _GREEDY.match(s) else 1 if _PARAM.match(s) else 0 for s in self.segments)
        return (*ranks, 1 if self.method == "ANY" else 0)

    def match(self, method: str, segments: list[str]) -> dict[str, str] | None:
        if self.method not in (method, "ANY"):
            return None
        params: dict[str, str] = {}
        for index, template in enumerate(self.segments):
            greedy = _GREEDY.match(template)
            if greedy:
                rest = segments[index:]
                if not rest:
                    return None
                params[greedy.group(1)] = unquote("/".join(rest))
                return params
            if index >= len(segments):
                return None
            param = _PARAM.match(template)
            if param:
                params[param.group(1)] = unquote(segments[index])
            elif template != segments[index]:
                return None
        return params if len(segments) == len(self.segments) else None


def _split(path: str) -> tuple[str, ...]:
    return tuple(segment for segment in path.split("/") if segment)


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=Route.specificity)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        segments = list(_split(path))
        for route in self.routes:
            params = route.match(method.upper(), segments)
            if params is not None:
                return route, params
        return None

    @classmethod
    def from_template(
        cls,
        specs: dict[str, FunctionSpec],
        resolver: cfn.Resolver,
        template: dict[str, Any] | None = None,
    ) -> RouteTable:
        """The `Type: Api` events of every function. `resolver` resolves `!GetAtt <Function>.Arn` to the ARNs
        of `specs`, and the Api's `StageName`."""
        template = template or cfn.load_template()
        by_arn = {spec.arn: spec.logical_id for spec in specs.values()}
        apis = {
            logical_id: _api(logical_id, resource.get("Properties", {}), resolver, by_arn)
            for logical_id, resource in cfn.resources(API_TYPE, template).items()
        }
        routes: list[Route] = []
        for spec in specs.values():
            for event_name, event in spec.events.items():
                if event.get("Type") != "Api":
                    continue
                properties = event.get("Properties", {})
                api_ref = properties.get("RestApiId")
                api_id = _ref_target(api_ref) if api_ref is not None else None
                if api_id is None:
                    if len(apis) != 1:
                        raise ValueError(f"{spec.logical_id}.{event_name}: which Api? set RestApiId")
                    api_id = next(iter(apis))
                api = apis[api_id]
                route_auth = properties.get("Auth", {})
                auth = route_auth.get("Authorizer", api.default_authorizer)
                authorizer = None if auth in (None, "NONE") else api.authorizers[auth]
                key_required = bool(route_auth.get("ApiKeyRequired", api.api_key_required))
                routes.append(
                    Route(
                        method=str(properties["Method"]).upper(),
                        resource=str(properties["Path"]),
                        function_id=spec.logical_id,
                        api=api,
                        authorizer=authorizer,
                        api_key_required=key_required,
                    )
                )
        return cls(routes)


def _ref_target(value: Any) -> str | None:
    if isinstance(value, cfn._Tag) and value.tag == "Ref":
        return str(value.value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    return None


def _api(logical_id: str, properties: dict[str, Any], resolver: cfn.Resolver, by_arn: dict[str, str]) -> Api:
    auth = properties.get("Auth", {})
    authorizers: dict[str, Authorizer] = {}
    for name, spec in auth.get("Authorizers", {}).items():
        arn = resolver.resolve(spec["FunctionArn"])
        if arn not in by_arn:
            raise ValueError(f"authorizer {name}: {arn} is not a function of the template")
        payload = spec.get("FunctionPayloadType", "TOKEN")
        if payload != "REQUEST":
            raise ValueError(f"authorizer {name}: only REQUEST authorizers are served locally, not {payload}")
        identity = spec.get("Identity", {})
        authorizers[name] = Authorizer(
            name=name,
            function_id=by_arn[arn],
            identity_headers=tuple(identity.get("Headers", [])),
            identity_query_strings=tuple(identity.get("QueryStrings", [])),
            ttl_seconds=int(identity.get("ReauthorizeEvery", 300)),
        )
    default = auth.get("DefaultAuthorizer")
    if default not in (None, "NONE") and default not in authorizers:
        raise ValueError(f"DefaultAuthorizer {default} is not among the Api's Authorizers")
    plan = auth.get("UsagePlan", {})
    throttle = plan.get("Throttle") if plan.get("CreateUsagePlan", "NONE") != "NONE" else None
    return Api(
        logical_id=logical_id,
        stage=str(resolver.resolve(properties.get("StageName", "Prod"))),
        authorizers=authorizers,
        default_authorizer=None if default in (None, "NONE") else default,
        gateway_responses=dict(properties.get("GatewayResponses", {})),
        api_key_required=bool(auth.get("ApiKeyRequired", False)),
        key_from_authorizer=properties.get("ApiKeySourceType", "HEADER") == "AUTHORIZER",
        usage_plan=(
            Throttle(
                rate_limit=float(resolver.resolve(throttle["RateLimit"])),
                burst_limit=int(resolver.resolve(throttle["BurstLimit"])),
            )
            if throttle
            else None
        ),
    )


# ---------------------------------------------------------------------------------------- request -> event


@dataclass
class Request:
    method: str
    target: str  # path and query string, as in the request line
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    source_ip: str = "127.0.0.1"

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0] or "/"

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        found = [value for key, value in self.headers if key.lower() == name.lower()]
        return found[-1] if found else None


def _multi(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for key, value in pairs:
        result.setdefault(key, []).append(value)
    return result


def _forwarded_headers(request: Request, host_port: str) -> list[tuple[str, str]]:
    headers = list(request.headers)
    names = {key.lower() for key, _ in headers}
    forwarded_for = request.header("X-Forwarded-For")
    headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
    headers.append(
        ("X-Forwarded-For", f"{forwarded_for}, {request.source_ip}" if forwarded_for else request.source_ip)
    )
    if "x-forwarded-port" not in names:
        headers.append(("X-Forwarded-Port", host_port))
    if "x-forwarded-proto" not in names:
        headers.append(("X-Forwarded-Proto", "http"))
    return headers


def build_proxy_event(
    route: Route,
    path_parameters: dict[str, str],
    request: Request,
    request_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The API Gateway REST proxy event (payload 1.0) for `request`, without `requestContext.authorizer`."""
    now = now or datetime.now(UTC)
    host = request.header("Host") or "127.0.0.1"
    port = host.rsplit(":", 1)[1] if ":" in host else "80"
    headers = _forwarded_headers(request, port)
    multi_headers = _multi(headers)
    query = parse_qsl(request.query, keep_blank_values=True)
    multi_query = _multi(query)
    body: str | None = None
    base64_encoded = False
    if request.body:
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            body, base64_encoded = base64.b64encode(request.body).decode("ascii"), True
    stage = route.api.stage
    return {
        "resource": route.resource,
        "path": request.path,
        "httpMethod": request.method.upper(),
        "headers": {key: values[-1] for key, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {key: values[-1] for key, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": uuid.uuid5(uuid.NAMESPACE_URL, route.resource).hex[:6],
            "resourcePath": route.resource,
            "httpMethod": request.method.upper(),
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{request.path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": request.source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": request.header("User-Agent"),
                "user": None,
            },
            "domainName": host,
            "apiId": LOCAL_API_ID,
        },
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def method_arn(stage: str, method: str, path: str) -> str:
    resource = path.lstrip("/")
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{LOCAL_API_ID}/{stage}/{method.upper()}/{resource}"


def build_authorizer_event(proxy_event: dict[str, Any], stage: str) -> dict[str, Any]:
    """The REQUEST authorizer event API Gateway sends before the integration of `proxy_event`."""
    return {
        "type": "REQUEST",
        "methodArn": method_arn(stage, proxy_event["httpMethod"], proxy_event["path"]),
        **{
            key: proxy_event[key]
            for key in (
                "resource",
                "path",
                "httpMethod",
                "headers",
                "multiValueHeaders",
                "queryStringParameters",
                "multiValueQueryStringParameters",
                "pathParameters",
                "stageVariables",
                "requestContext",
            )
        },
    }


# ------------------------------------------------------------------------------------------- authorization


class AuthorizerConfigurationError(Exception):
    """The authorizer answered something API Gateway cannot use."""


@dataclass(frozen=True)
class AuthorizerResult:
    principal_id: str
    statements: tuple[dict[str, Any], ...]
    context: dict[str, str]
    usage_identifier_key: str | None = None

    @classmethod
    def parse(cls, answer: Any) -> AuthorizerResult:
        if not isinstance(answer, dict):
            raise AuthorizerConfigurationError("the answer is not an object")
        principal_id = answer.get("principalId")
        policy = answer.get("policyDocument")
        if not isinstance(principal_id, str) or not principal_id:
            raise AuthorizerConfigurationError("principalId is missing or not a string")
        if not isinstance(policy, dict) or "Statement" not in policy:
            raise AuthorizerConfigurationError("policyDocument with a Statement is missing")
        statements = policy["Statement"]
        statements = [statements] if isinstance(statements, dict) else statements
        if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
            raise AuthorizerConfigurationError("policyDocument.Statement is not a list of statements")
        context = answer.get("context") or {}
        if not isinstance(context, dict):
            raise AuthorizerConfigurationError("context is not an object")
        strings: dict[str, str] = {}
        for key, value in context.items():
            if isinstance(value, bool):
                strings[key] = "true" if value else "false"
            elif isinstance(value, int | float | str):
                strings[key] = str(value)
            else:
                raise AuthorizerConfigurationError(
                    f"context.{key} is a {type(value).__name__}; "
                    "only strings, numbers and booleans are allowed"
                )
        usage_key = answer.get("usageIdentifierKey")
        if usage_key is not None and not isinstance(usage_key, str):
            raise AuthorizerConfigurationError("usageIdentifierKey is not a string")
        return cls(principal_id, tuple(statements), strings, usage_key)

    def allows(self, arn: str) -> bool:
        """IAM evaluation of the policy for `execute-api:Invoke` on `arn`: an explicit Deny wins."""
        allowed = False
        for statement in self.statements:
            if not _matches_any(statement.get("Action", []), "execute-api:Invoke", ignore_case=True):
                continue
            if not _matches_any(statement.get("Resource", []), arn):
                continue
            effect = str(statement.get("Effect", "")).capitalize()
            if effect == "Deny":
                return False
            allowed = allowed or effect == "Allow"
        return allowed


def _matches_any(patterns: Any, value: str, ignore_case: bool = False) -> bool:
    patterns = [patterns] if isinstance(patterns, str) else patterns
    for pattern in patterns:
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in str(pattern))
        if re.fullmatch(regex, value, flags=re.IGNORECASE if ignore_case else 0):
            return True
    return False


class AuthorizerCache:
    """API Gateway's authorizer cache: answers kept per identity source values for the authorizer's TTL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, ...], tuple[float, AuthorizerResult]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> AuthorizerResult | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, result = entry
            if self._clock() >= expires:
                del self._entries[key]
                return None
            return result

    def put(self, key: tuple[str, ...], result: AuthorizerResult, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock() + ttl_seconds, result)


# ------------------------------------------------------------------------------------------------ answers


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        found = [value for key, value in self.headers if key.lower() == name.lower()]
        return found[-1] if found else None

    def json(self) -> Any:
        return json.loads(self.body)


# type -> (status, message of API Gateway's own body)
_BUILT_IN_RESPONSES: dict[str, tuple[int, str | None]] = {
    "UNAUTHORIZED": (401, "Unauthorized"),
    "ACCESS_DENIED": (403, "User is not authorized to access this resource with an explicit deny"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "AUTHORIZER_FAILURE": (500, None),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, None),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "BAD_REQUEST_BODY": (400, "Invalid request body"),
    "INTEGRATION_FAILURE": (502, "Internal server error"),
    "INVALID_API_KEY": (403, "Forbidden"),
    "THROTTLED": (429, "Too Many Requests"),
}

_CONTEXT_VARIABLE = re.compile(
    r"\$\{context\.([A-Za-z0-9_.]+)\}|\$context\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)"
)


def gateway_response(
    api: Api | None, response_type: str, request_id: str, request: Request | None = None
) -> Response:
    """The answer API Gateway makes itself (not the integration), shaped by the Api's GatewayResponses."""
    status, message = _BUILT_IN_RESPONSES[response_type]
    configured = (api.gateway_responses if api else {}).get(response_type)
    if configured is None and api is not None:
        configured = api.gateway_responses.get("DEFAULT_4XX" if status < 500 else "DEFAULT_5XX")
    variables = {
        "requestId": request_id,
        "extendedRequestId": request_id,
        "error.message": message or "",
        "error.messageString": json.dumps(message),
        "error.responseType": response_type,
        "stage": api.stage if api else "",
        "apiId": LOCAL_API_ID,
        "httpMethod": request.method.upper() if request else "",
        "path": request.path if request else "",
    }
    headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    if configured is None:
        body = json.dumps({"message": message})
    else:
        status = int(configured.get("StatusCode", status))
        templates = configured.get("ResponseTemplates", {})
        template = templates.get("application/json")
        if template is None:
            body = json.dumps({"message": message})
        else:
            body = _CONTEXT_VARIABLE.sub(lambda m: str(variables.get(m.group(1) or m.group(2), "")), template)
        for name, expression in configured.get("ResponseParameters", {}).get("Headers", {}).items():
            value = _header_expression(str(expression), variables, request)
            if value is not None:
                headers.append((name, value))
    return Response(status, headers, body.encode("utf-8"))


def _header_expression(expression: str, variables: dict[str, str], request: Request | None) -> str | None:
    if len(expression) >= 2 and expression[0] == expression[-1] == "'":
        return expression[1:-1]
    if expression.startswith("context."):
        return variables.get(expression.removeprefix("context."))
    if expression.startswith("method.request.header.") and request is not None:
        return request.header(expression.removeprefix("method.request.header."))
    return None


def not_found(request: Request, request_id: str) -> Response:
    body = {
        "error": {
            "code": "not_found",
            "message": f"No route for {request.method.upper()} {request.path}.",
            "param": None,
            "requestId": request_id,
        }
    }
    return Response(
        404,
        [("Content-Type", "application/json"), ("X-Request-Id", request_id)],
        json.dumps(body).encode("utf-8"),
    )


class MalformedProxyResponse(Exception):
    pass


_PROXY_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}


def proxy_response(answer: Any) -> Response:
    """What API Gateway sends for a Lambda proxy integration's answer; raises MalformedProxyResponse."""
    if not isinstance(answer, dict):
        raise MalformedProxyResponse("the answer is not an object")
    extra = set(answer) - _PROXY_KEYS
    if extra:
        log.warning("proxy response has keys API Gateway ignores or rejects: %s", sorted(extra))
    status = answer.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResponse(f"statusCode {status!r} is not an HTTP status")
    single = answer.get("headers") or {}
    multi = answer.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedProxyResponse("headers / multiValueHeaders are not objects")
    headers: list[tuple[str, str]] = []
    multi_names = {name.lower() for name in multi}
    for name, value in single.items():
        if isinstance(value, dict | list):
            raise MalformedProxyResponse(f"header {name} is not a scalar")
        if name.lower() not in multi_names:
            headers.append((name, _header_text(value)))
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResponse(f"multiValueHeaders.{name} is not a list")
        headers.extend((name, _header_text(value)) for value in values)
    body = answer.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedProxyResponse("body is not a string")
    if answer.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body or "", validate=True)
        except binascii.Error as exc:
            raise MalformedProxyResponse("body is not valid base64") from exc
    else:
        raw = (body or "").encode("utf-8")
    headers = [
        (k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding", "connection")
    ]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return Response(status, headers, raw)


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ------------------------------------------------------------------------------------------------ gateway


class Gateway:
    """Transport-free API Gateway: a Request in, a Response out."""

    def __init__(
        self,
        routes: RouteTable,
        invoke: Invoke,
        cache: AuthorizerCache | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.routes = routes
        self.invoke = invoke
        self.cache = cache or AuthorizerCache()
        self.buckets = TokenBuckets()
        self.clock = clock

    def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        response = self._handle(request, request_id)
        response.headers.append(("x-amzn-RequestId", request_id))
        return response

    @property
    def api(self) -> Api | None:
        """The template's one Api, whose gateway responses shape answers given before any route matched."""
        apis = {route.api.logical_id: route.api for route in self.routes.routes}
        return next(iter(apis.values())) if len(apis) == 1 else None

    def refuse(self, response_type: str, request: Request | None = None) -> Response:
        """An answer of the gateway itself (body too large, malformed framing), in the Api's shape."""
        request_id = str(uuid.uuid4())
        response = gateway_response(self.api, response_type, request_id, request)
        response.headers.append(("x-amzn-RequestId", request_id))
        return response

    def resource(self, request: Request) -> str:
        """The route template a request matched (what API Gateway's access log records), never the raw path:
        a hosted-page path carries a secret."""
        matched = self.routes.match(request.method, request.path)
        return matched[0].resource if matched else "(no route)"

    def _handle(self, request: Request, request_id: str) -> Response:
        matched = self.routes.match(request.method, request.path)
        if matched is None:
            api = self.api
            if api is not None and "MISSING_AUTHENTICATION_TOKEN" in api.gateway_responses:
                return gateway_response(api, "MISSING_AUTHENTICATION_TOKEN", request_id, request)
            return not_found(request, request_id)
        route, params = matched
        if len(request.body) > MAX_BODY_BYTES:
            return gateway_response(route.api, "REQUEST_TOO_LARGE", request_id, request)
        event = build_proxy_event(route, params, request, request_id, self.clock())
        authorizer_context: dict[str, Any] | None = None
        usage_key: str | None = None
        if route.authorizer is not None:
            outcome = self._authorize(route, event, request, request_id)
            if isinstance(outcome, Response):
                return outcome
            usage_key = outcome.pop(USAGE_KEY, None)
            authorizer_context = outcome
        if route.api_key_required:
            refused = self._meter(route, request, request_id, usage_key)
            if refused is not None:
                return refused
        event["requestContext"]["authorizer"] = authorizer_context
        try:
            answer = self.invoke(route.function_id, event, request_id)
            return proxy_response(answer)
        except FunctionCodeMissing as exc:
            log.error("%s %s: %s", request.method, self.resource(request), exc)
        except RuntimeStopping as exc:
            log.info("%s %s: %s", request.method, self.resource(request), exc)
        except FunctionError as exc:
            log.error("%s %s: %s\n%s", request.method, self.resource(request), exc, exc.stack)
        except MalformedProxyResponse as exc:
            log.error("%s answered a malformed proxy response: %s", route.function_id, exc)
        return gateway_response(route.api, "INTEGRATION_FAILURE", request_id, request)

    def _meter(
        self, route: Route, request: Request, request_id: str, usage_key: str | None
    ) -> Response | None:
        """The API key a route requires (named by the authorizer, or the x-api-key header) and its usage
        plan's allowance: 403 without a key, 429 once the key's bucket is empty."""
        api = route.api
        key = usage_key if api.key_from_authorizer else request.header("x-api-key")
        if not key:
            return gateway_response(api, "INVALID_API_KEY", request_id, request)
        if api.usage_plan is not None and not self.buckets.take(key, api.usage_plan):
            return gateway_response(api, "THROTTLED", request_id, request)
        return None

    def _authorize(
        self, route: Route, event: dict[str, Any], request: Request, request_id: str
    ) -> dict[str, Any] | Response:
        authorizer = route.authorizer
        assert authorizer is not None
        identity: list[str] = []
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        for name in authorizer.identity_headers:
            value = request.header(name)
            if not value:
                return gateway_response(route.api, "UNAUTHORIZED", request_id, request)
            identity.append(value)
        for name in authorizer.identity_query_strings:
            if not query.get(name):
                return gateway_response(route.api, "UNAUTHORIZED", request_id, request)
            identity.append(query[name])
        key = (authorizer.name, *identity)
        arn = method_arn(route.api.stage, event["httpMethod"], event["path"])
        started = time.monotonic()
        result = self.cache.get(key) if identity else None
        if result is None:
            try:
                answer = self.invoke(
                    authorizer.function_id, build_authorizer_event(event, route.api.stage), request_id
                )
                result = AuthorizerResult.parse(answer)
            except FunctionError as exc:
                if exc.error_message == "Unauthorized":
                    return gateway_response(route.api, "UNAUTHORIZED", request_id, request)
                (log.info if isinstance(exc, RuntimeStopping) else log.error)(
                    "%s %s: %s\n%s", request.method, self.resource(request), exc, exc.stack
                )
                return gateway_response(route.api, "AUTHORIZER_FAILURE", request_id, request)
            except FunctionCodeMissing as exc:
                log.error("%s %s: %s", request.method, self.resource(request), exc)
                return gateway_response(route.api, "AUTHORIZER_FAILURE", request_id, request)
            except AuthorizerConfigurationError as exc:
                log.error("%s answered what API Gateway rejects: %s", authorizer.function_id, exc)
                return gateway_response(route.api, "AUTHORIZER_CONFIGURATION_ERROR", request_id, request)
            if identity:
                self.cache.put(key, result, authorizer.ttl_seconds)
        if not result.allows(arn):
            return gateway_response(route.api, "ACCESS_DENIED", request_id, request)
        return {
            **result.context,
            "principalId": result.principal_id,
            "integrationLatency": int((time.monotonic() - started) * 1000),
            USAGE_KEY: result.usage_identifier_key,
        }


# --------------------------------------------------------------------------------------------- HTTP server


# Where `GET /` of the local server sends a browser (the runtime's own: API Gateway has no such route).
FRONT_PAGE = "/console"


class GatewayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], gateway: Gateway | None = None) -> None:
        """Binds at once; serves (with `gateway`, set by then) from `serve_forever()`."""
        self.gateway = gateway
        super().__init__(address, _GatewayRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.debug("client %s went away: %s", client_address[0], error)
            return
        log.exception("error while serving %s", client_address[0])


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "checkout-sessions-local"
    sys_version = ""
    server: GatewayHTTPServer

    def _serve(self) -> None:
        started = time.monotonic()
        body = self._read_body()
        if body is None:
            return
        request = Request(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
        )
        gateway = self.server.gateway
        try:
            assert gateway is not None, "serving before the gateway is set"
            if self._is_front_page(request, gateway):
                response = Response(302, [("Location", FRONT_PAGE)], b"")
            else:
                response = gateway.handle(request)
        except Exception:
            log.exception("the local gateway failed on %s %s", self.command, self._resource(request))
            response = gateway_response(None, "INTEGRATION_FAILURE", str(uuid.uuid4()), request)
        self._write(response)
        log.info(
            "%s %s %d %.0fms %s",
            self.command,
            self._resource(request),
            response.status,
            (time.monotonic() - started) * 1000,
            response.header("x-amzn-RequestId") or "",
        )

    @staticmethod
    def _is_front_page(request: Request, gateway: Gateway) -> bool:
        """`GET /` (or HEAD) when the template has no route of its own there."""
        return (
            request.method in ("GET", "HEAD")
            and request.path == "/"
            and gateway.routes.match(request.method, "/") is None
        )

    def _resource(self, request: Request) -> str:
        gateway = self.server.gateway
        return gateway.resource(request) if gateway is not None else "(no route)"

    def _refuse(self, response_type: str) -> None:
        """Answers before the request could be read whole; the connection cannot be reused after that."""
        self.close_connection = True
        gateway = self.server.gateway
        if gateway is not None:
            self._write(gateway.refuse(response_type))
        else:
            self._write(gateway_response(None, response_type, str(uuid.uuid4())))

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            try:
                return self._read_chunks()
            except ValueError:
                self._refuse("BAD_REQUEST_BODY")
                return None
        length_header = (self.headers.get("Content-Length") or "0").strip()
        if not length_header.isdigit():
            self._refuse("BAD_REQUEST_BODY")
            return None
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self._refuse("REQUEST_TOO_LARGE")
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunks(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(64).split(b";", 1)[0].strip() or b"0", 16)
            if size < 0:
                raise ValueError("negative chunk size")
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                self._refuse("REQUEST_TOO_LARGE")
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _write(self, response: Response) -> None:
        self.send_response_only(response.status)
        self.send_header("Date", formatdate(usegmt=True))
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, PROPFIND, ...) is answered like an unknown route, not http.server's 501.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # its request line holds the path (/pay/{token} carries a secret): _serve logs the route

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)
