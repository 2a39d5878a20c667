"""The embedded runtime: template.yaml served on one machine, AWS emulated in-process by moto's server.

Start order: bind the API port (fail fast), start moto's server on a free port with Step Functions execution
on, point this process at it (the handlers run in this process, so its environment is theirs), create the
tables, bus and state machines of the template under local names, set the functions' environment variables,
seed the API keys, then serve routes, schedules and the stream -> bus publication.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import sys
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local import atomic_dynamodb, cfn, in_process, moto_models, moto_queues
from local.functions import (
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MAX_ENVIRONMENTS,
    FUNCTION_TYPE,
    FunctionSpec,
    Invoker,
    function_specs,
    layer_paths,
)
from local.gateway import LOCAL_API_ID, Gateway, GatewayHTTPServer, RouteTable
from local.naming import (
    ACCOUNT_ID,
    REGION,
    STACK_NAME,
    event_bus_arn,
    function_arn,
    local_name,
    state_machine_arn,
    table_arn,
)
from local.queues import (
    QUEUE_TYPE,
    QueuePoller,
    create_queues,
    create_rules,
    event_sources,
    install_wake_ups,
    queue_arn,
    queue_name,
)
from local.scheduler import Scheduler, schedules
from local.state import JOURNAL, SNAPSHOT, StateStore, server_key_hex
from local.streams import MotoStreams, StreamPublisher, pipe_configs
from local.streams import install_wake_ups as install_stream_wake_ups

log = logging.getLogger("local.runtime")

HOST = "127.0.0.1"
SESSIONS_TABLE = "SessionsTable"
EVENTS_TAP_QUEUE = "checkout-events-tap"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Read from the environment of the process, which is also the handlers' environment: drop what could point a
# handler at a real account.
_AWS_VARIABLES_TO_DROP = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# Template variables that stay unset locally: with no PROVIDER_SECRETS_NAME the handlers read the sandbox
# providers' secret from SANDBOX_WEBHOOK_SECRET.
LOCALLY_UNSET = ("PROVIDER_SECRETS_NAME", "SERVER_KEY_SECRET_NAME", "ENDPOINT_SECRETS_KMS_KEY_ID")
LISTENING_ON = "checkout-sessions listening on "  # the banner's first line, then the URL it serves
BANNER_URL = re.compile(re.escape(LISTENING_ON) + r"(http://\S+)")
DROPPED_WEBHOOKS_URL = "http://127.0.0.1:9/dropped"  # the discard port: nothing listens
QUEUE_WORKERS = 4
STREAM_WAIT_SECONDS = 1.0  # a reader is woken by each record added; this is the fallback
WEBHOOK_EVENTS_QUEUE = "WebhookEventsQueue"
CATCH_UP_SECONDS = 3 * 24 * 3600


class SettingsError(ValueError):
    pass


class PortUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    """The settings of `make run` (the README's table)."""

    port: int = 3000
    api_keys: tuple[tuple[str, str], ...] = (("demo", "sk_test_demo"),)
    return_hosts: tuple[str, ...] = ("example.com", "localhost")
    sandbox_webhook_secret: str = "whsec_sandbox"  # noqa: S105 - the documented sandbox default
    sweep_interval_seconds: float = 60.0
    session_ttl_min_seconds: int = 1800
    session_ttl_max_seconds: int = 86400
    session_ttl_default_seconds: int = 1800
    cancellation_recheck_seconds: int = 3600
    cancellation_deadline_seconds: int = 259200
    public_base_url: str | None = None
    environments_per_function: int = DEFAULT_MAX_ENVIRONMENTS
    environment_idle_seconds: float = DEFAULT_IDLE_SECONDS
    state_dir: str | None = ".local/state"
    reset: bool = False
    events_tap: bool = False
    tenant_rate_limit: float | None = None
    tenant_burst_limit: int | None = None
    hosted_test_payments: bool = True
    webhook_allow_private_urls: bool = True
    webhook_requeue_grace_seconds: int | None = None
    merchant_name: str = "Demo Store"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        defaults = cls()

        def number(name: str, default: float | None, kind: type = int, minimum: float = 0) -> Any:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a {kind.__name__}") from None
            if value < minimum:
                raise SettingsError(f"{name}={raw!r} is below {minimum}")
            return value

        keys = parse_api_keys(env.get("LOCAL_API_KEYS", "").strip() or "demo:sk_test_demo")
        hosts_raw = env.get("LOCAL_RETURN_HOSTS")
        hosts = (
            defaults.return_hosts
            if hosts_raw is None
            else tuple(host.strip() for host in hosts_raw.split(",") if host.strip())
        )
        port = number("PORT", defaults.port)
        if port > 65535:
            raise SettingsError(f"PORT={port} is not a port")
        settings = cls(
            port=port,
            api_keys=keys,
            return_hosts=hosts,
            sandbox_webhook_secret=env.get("SANDBOX_WEBHOOK_SECRET") or defaults.sandbox_webhook_secret,
            merchant_name=" ".join(env.get("LOCAL_MERCHANT_NAME", "").split()) or defaults.merchant_name,
            sweep_interval_seconds=number(
                "SWEEP_INTERVAL_SECONDS", defaults.sweep_interval_seconds, float, 0.01
            ),
            session_ttl_min_seconds=number(
                "SESSION_TTL_MIN_SECONDS", defaults.session_ttl_min_seconds, int, 1
            ),
            session_ttl_max_seconds=number(
                "SESSION_TTL_MAX_SECONDS", defaults.session_ttl_max_seconds, int, 1
            ),
            session_ttl_default_seconds=number(
                "SESSION_TTL_DEFAULT_SECONDS", defaults.session_ttl_default_seconds, int, 1
            ),
            cancellation_recheck_seconds=number(
                "CANCELLATION_RECHECK_SECONDS", defaults.cancellation_recheck_seconds, int, 1
            ),
            cancellation_deadline_seconds=number(
                "CANCELLATION_DEADLINE_SECONDS", defaults.cancellation_deadline_seconds, int, 1
            ),
            public_base_url=(env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
            environments_per_function=number(
                "LOCAL_ENVIRONMENTS_PER_FUNCTION", defaults.environments_per_function, int, 1
            ),
            environment_idle_seconds=number(
                "LOCAL_ENVIRONMENT_IDLE_SECONDS", defaults.environment_idle_seconds, float, 0.1
            ),
            state_dir=env.get("LOCAL_STATE_DIR", defaults.state_dir or "").strip() or None,
            reset=env.get("LOCAL_RESET", "").strip().lower() in ("1", "true", "yes"),
            events_tap=env.get("LOCAL_EVENTS_TAP", "").strip().lower() in ("1", "true", "yes"),
            tenant_rate_limit=number("TENANT_THROTTLING_RATE_LIMIT", None, float, 0.001),
            tenant_burst_limit=number("TENANT_THROTTLING_BURST_LIMIT", None, int, 1),
            hosted_test_payments=env.get("HOSTED_TEST_PAYMENTS", "true").strip().lower()
            not in ("0", "false", "no"),
            webhook_allow_private_urls=env.get("WEBHOOK_ALLOW_PRIVATE_URLS", "true").strip().lower()
            not in ("0", "false", "no"),
            webhook_requeue_grace_seconds=number("WEBHOOK_REQUEUE_GRACE_SECONDS", None, int, 1),
        )
        if not (
            settings.session_ttl_min_seconds
            <= settings.session_ttl_default_seconds
            <= settings.session_ttl_max_seconds
        ):
            raise SettingsError(
                "SESSION_TTL_MIN_SECONDS <= SESSION_TTL_DEFAULT_SECONDS <= SESSION_TTL_MAX_SECONDS"
            )
        return settings

    def parameter_overrides(self, base_url: str) -> dict[str, str]:
        """The template parameters these settings stand for."""
        return {
            "SessionTtlMinSeconds": str(self.session_ttl_min_seconds),
            "SessionTtlMaxSeconds": str(self.session_ttl_max_seconds),
            "SessionTtlDefaultSeconds": str(self.session_ttl_default_seconds),
            "CancellationRecheckSeconds": str(self.cancellation_recheck_seconds),
            "CancellationDeadlineSeconds": str(self.cancellation_deadline_seconds),
            "PublicBaseUrl": self.public_base_url or base_url,
            "HostedTestPayments": "true" if self.hosted_test_payments else "false",
            "WebhookAllowPrivateUrls": "true" if self.webhook_allow_private_urls else "false",
            **({"TenantThrottlingRateLimit": str(self.tenant_rate_limit)} if self.tenant_rate_limit else {}),
            **(
                {"TenantThrottlingBurstLimit": str(self.tenant_burst_limit)}
                if self.tenant_burst_limit
                else {}
            ),
        }

    def handler_environment(self, base_url: str) -> dict[str, str]:
        """The settings the handlers read, whatever the template says."""
        return {
            "LOCAL_RUNTIME": "true",
            "SESSION_TTL_MIN_SECONDS": str(self.session_ttl_min_seconds),
            "SESSION_TTL_MAX_SECONDS": str(self.session_ttl_max_seconds),
            "SESSION_TTL_DEFAULT_SECONDS": str(self.session_ttl_default_seconds),
            "CANCELLATION_RECHECK_SECONDS": str(self.cancellation_recheck_seconds),
            "CANCELLATION_DEADLINE_SECONDS": str(self.cancellation_deadline_seconds),
            "PUBLIC_BASE_URL": self.public_base_url or base_url,
            "SANDBOX_WEBHOOK_SECRET": self.sandbox_webhook_secret,
            "HOSTED_TEST_PAYMENTS": "true" if self.hosted_test_payments else "false",
            "WEBHOOK_ALLOW_PRIVATE_URLS": "true" if self.webhook_allow_private_urls else "false",
            # Stands for the deployed Secrets Manager secret and KMS key: a file beside the kept state.
            "SERVER_KEY": server_key_hex(Path(self.state_dir) if self.state_dir else None),
            **(
                {"WEBHOOK_REQUEUE_GRACE_SECONDS": str(self.webhook_requeue_grace_seconds)}
                if self.webhook_requeue_grace_seconds
                else {}
            ),
        }


def parse_api_keys(raw: str) -> tuple[tuple[str, str], ...]:
    """`tenant:key,tenant:key` -> ((tenant, key), ...)."""
    pairs: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        tenant, sep, key = item.partition(":")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not tenant or not key:
            raise SettingsError(f"LOCAL_API_KEYS: {item!r} is not tenant:key")
        if seen.get(key, tenant) != tenant:
            raise SettingsError("LOCAL_API_KEYS: one key is given to two tenants")
        seen[key] = tenant
        pairs.append((tenant, key))
    if not pairs:
        raise SettingsError("LOCAL_API_KEYS has no tenant:key pair")
    return tuple(pairs)


def hash_api_key(key: str) -> str:
    """The domain's hash when the domain package has one, else SHA-256 hex (what the data model specifies)."""
    try:
        from checkout_core.api_keys import hash_api_key as domain_hash
    except ImportError:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()
    return str(domain_hash(key))


def memoise_moto_routing() -> None:
    """moto's server finds the backend of each request by listing its own package directory (a stat for
    each of ~175 services) and trying its URL patterns, inside a lock every request takes: about a
    millisecond of the runtime's one core per request, and more waiting for the disk on a busy machine.
    A host's backend never changes, so it is found once."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatcher: Any = DomainDispatcherApplication
    if getattr(dispatcher, "_checkout_memoised", False):
        return
    find = dispatcher.get_backend_for_host
    found: dict[str, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host is None:
            return None
        if host not in found:
            found[host] = find(self, host)
        return found[host]

    dispatcher.get_backend_for_host = get_backend_for_host
    dispatcher._checkout_memoised = True


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local_resolver(
    template: dict[str, Any], parameters: dict[str, str], specs: dict[str, FunctionSpec], sqs_url: str = ""
) -> cfn.Resolver:
    """What `!Ref` / `!GetAtt` of each resource resolve to under the local names."""
    refs: dict[str, str] = {
        **parameters,
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::StackName": STACK_NAME,
        "AWS::URLSuffix": "amazonaws.com",
    }
    attributes: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        kind = resource["Type"]
        name = local_name(logical_id, kind)
        if kind == "AWS::DynamoDB::Table":
            refs[logical_id] = name
            attributes[f"{logical_id}.Arn"] = table_arn(name)
        elif kind == "AWS::Events::EventBus":
            refs[logical_id] = name
            attributes[f"{logical_id}.Arn"] = event_bus_arn(name)
            attributes[f"{logical_id}.Name"] = name
        elif kind == "AWS::Serverless::StateMachine":
            refs[logical_id] = state_machine_arn(name)
            attributes[f"{logical_id}.Arn"] = state_machine_arn(name)
            attributes[f"{logical_id}.Name"] = name
        elif kind == FUNCTION_TYPE:
            refs[logical_id] = specs[logical_id].name
            attributes[f"{logical_id}.Arn"] = function_arn(specs[logical_id].name)
        elif kind == "AWS::Serverless::Api":
            refs[logical_id] = LOCAL_API_ID
            attributes[f"{logical_id}.RootResourceId"] = "root"
        elif kind == QUEUE_TYPE:
            queue = queue_name(name, resource.get("Properties", {}))
            refs[logical_id] = f"{sqs_url}/{ACCOUNT_ID}/{queue}"
            attributes[f"{logical_id}.Arn"] = queue_arn(queue)
            attributes[f"{logical_id}.QueueName"] = queue
        elif kind == "AWS::Serverless::LayerVersion":
            refs[logical_id] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{name}:1"
        else:
            refs[logical_id] = name
            attributes[f"{logical_id}.Arn"] = f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{name}"
    return cfn.Resolver(refs=refs, attributes=attributes)


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def environment_parameter_overrides(
    specs: dict[str, FunctionSpec], template: dict[str, Any], env: Mapping[str, str]
) -> dict[str, str]:
    """Parameters set from the environment: a function variable `NAME: !Ref Parameter` makes `$NAME`, when
    set, the value of `Parameter` (so `CANCELLATION_RECHECK_SECONDS` also reaches the state machine)."""
    parameters = set(template.get("Parameters", {}))
    overrides: dict[str, str] = {}
    for spec in specs.values():
        for key, raw in spec.environment.items():
            target = raw.value if isinstance(raw, cfn._Tag) and raw.tag == "Ref" else None
            if isinstance(raw, dict) and set(raw) == {"Ref"}:
                target = raw["Ref"]
            if target in parameters and env.get(key) and key not in LOCALLY_UNSET:
                overrides[str(target)] = env[key]
    return overrides


def template_environment(specs: dict[str, FunctionSpec], resolver: cfn.Resolver) -> dict[str, str]:
    """Every function's `Environment.Variables` (Globals included), resolved. All functions share this
    process, so a name given two different values by two functions is reported: one of them wins."""
    env: dict[str, str] = {}
    for spec in specs.values():
        for key, raw in spec.environment.items():
            try:
                value = _env_text(resolver.resolve(raw))
            except (KeyError, ValueError) as exc:
                log.warning("%s: %s is not set locally (%s)", spec.logical_id, key, exc)
                continue
            if key in env and env[key] != value:
                log.warning(
                    "%s=%r of %s replaces %r of another function", key, value, spec.logical_id, env[key]
                )
            env[key] = value
    for key in LOCALLY_UNSET:
        env.pop(key, None)
    return env


@dataclass
class Runtime:
    settings: Settings
    template: dict[str, Any] = field(default_factory=cfn.load_template)
    base_url: str = ""
    moto_url: str = ""
    handler_env: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._moto: Any = None
        self._http: GatewayHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._scheduler: Scheduler | None = None
        self._publishers: list[StreamPublisher] = []
        self._stream_positions: dict[str, int] = {}
        self._stream_read_lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._invoker: Invoker | None = None
        self._state: StateStore | None = None
        self._stripe: Any = None
        self._adyen: Any = None
        self._pollers: list[QueuePoller] = []
        self.queue_urls: dict[str, str] = {}

    # ----------------------------------------------------------------------------------------------- start

    def start(self) -> None:
        try:
            self._http = GatewayHTTPServer((HOST, self.settings.port))
        except OSError as exc:
            raise PortUnavailable(f"cannot serve on {HOST}:{self.settings.port}: {exc}") from exc
        self.base_url = f"http://{HOST}:{self._http.server_address[1]}"
        try:
            self._launch_stripe()
            self._start_moto()
            self._point_process_at_moto()
            specs = function_specs(self.template)
            invoker = self._invoker = Invoker(
                specs,
                layer_paths(self.template),
                self.settings.environments_per_function,
                self.settings.environment_idle_seconds,
            )
            invoker.start_launcher()  # loads the shared libraries on the other core while moto is set up
            parameters = {
                **cfn.parameter_defaults(self.template),
                **environment_parameter_overrides(specs, self.template, os.environ),
                **self.settings.parameter_overrides(self.base_url),
            }
            resolver = local_resolver(self.template, parameters, specs, self.moto_url)
            self._create_resources(resolver, parameters)
            self.handler_env = {
                **template_environment(specs, resolver),
                **self.settings.handler_environment(self.base_url),
                **self._stripe_environment(),
                **self._adyen_environment(),
            }
            for key in LOCALLY_UNSET:
                os.environ.pop(key, None)
            os.environ.update(self.handler_env)
            for path in reversed(layer_paths(self.template)):
                if str(path) not in sys.path:
                    sys.path.insert(0, str(path))
            restored = self._restore_state()
            self._seed_api_keys()
            missing = sorted(spec.logical_id for spec in specs.values() if not spec.has_code())
            if missing:
                log.warning(
                    "functions without code yet (they answer 502 / are skipped): %s", ", ".join(missing)
                )
            self._http.gateway = Gateway(
                RouteTable.from_template(specs, resolver, self.template), invoker.invoke
            )
            self._scheduler = Scheduler(
                schedules(specs), invoker.invoke, self.settings.sweep_interval_seconds
            )
            self._publishers = self._stream_publishers(specs, resolver, invoker)
            self._pollers = self._queue_pollers(specs, resolver, invoker)
            self._scheduler.start()
            for publisher in self._publishers:
                publisher.start()
            for poller in self._pollers:
                poller.start()
            self._warm_event_consumers()
            if restored:
                self._resume_pending_work()
            self._http_thread = threading.Thread(
                target=self._http.serve_forever, kwargs={"poll_interval": 0.2}, name="gateway", daemon=True
            )
            self._http_thread.start()
        except BaseException:
            self.stop()
            raise

    def _launch_stripe(self) -> None:
        """Starts the local Stripe (unless a real test-mode key is set: STRIPE_API_KEY without
        STRIPE_API_BASE), first thing, so that it loads on the other core while moto is set up."""
        if os.environ.get("STRIPE_API_KEY", "") and not os.environ.get("STRIPE_API_BASE", ""):
            return
        from local.stripe_emulator import LocalStripe

        secret = os.environ.get("STRIPE_WEBHOOK_SECRET") or "whsec_" + secrets.token_hex(16)
        webhook_url = f"{self.base_url}/v1/providers/stripe/events"
        if os.environ.get("LOCAL_STRIPE_WEBHOOKS", "").strip().lower() in ("0", "off", "false"):
            webhook_url = DROPPED_WEBHOOKS_URL  # for tests of lost webhooks: the emulator's sends all fail
        self._stripe = LocalStripe(webhook_url, secret, wait=False)

    def _stripe_environment(self) -> dict[str, str]:
        """The `stripe` provider's settings: a real test-mode key talks to Stripe; otherwise the provider
        is pointed at the local emulator, once it answers."""
        if self._stripe is None:
            key = os.environ.get("STRIPE_API_KEY", "")
            return {
                "STRIPE_API_KEY": key,
                "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
            }
        self._stripe.wait_until_ready()
        log.info("Stripe emulated by localstripe at %s", self._stripe.api_base)
        return {
            "STRIPE_API_KEY": self._stripe.API_KEY,
            "STRIPE_WEBHOOK_SECRET": self._stripe.webhook_secret,
            "STRIPE_API_BASE": self._stripe.api_base,
        }

    def _adyen_environment(self) -> dict[str, str]:
        """The `adyen` provider's settings: as the user set them where they name an API base or a real
        test key (ADYEN_API_KEY without ADYEN_API_BASE talks to Adyen's test environment); otherwise the
        local Adyen is started, notifying this runtime, and the provider pointed at it."""
        names = ("ADYEN_API_KEY", "ADYEN_MERCHANT_ACCOUNT", "ADYEN_HMAC_KEY", "ADYEN_API_BASE")
        if os.environ.get("ADYEN_API_KEY") or os.environ.get("ADYEN_API_BASE"):
            return {name: os.environ[name] for name in names if name in os.environ}
        from local.adyen.process import LocalAdyen

        hmac_key = os.environ.get("ADYEN_HMAC_KEY") or secrets.token_hex(32)
        merchant_account = os.environ.get("ADYEN_MERCHANT_ACCOUNT") or LocalAdyen.MERCHANT_ACCOUNT
        self._adyen = LocalAdyen(
            f"{self.base_url}/v1/providers/adyen/events", hmac_key, merchant_account=merchant_account
        )
        log.info("Adyen emulated at %s", self._adyen.api_base)
        return {
            "ADYEN_API_KEY": LocalAdyen.API_KEY,
            "ADYEN_MERCHANT_ACCOUNT": merchant_account,
            "ADYEN_HMAC_KEY": hmac_key,
            "ADYEN_API_BASE": self._adyen.api_base,
        }

    def _start_moto(self) -> None:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        atomic_dynamodb.install()
        install_wake_ups()  # moto's queues, in this process, tell the pollers of their changes
        install_stream_wake_ups()  # and its tables' streams tell the pipe readers of new records
        memoise_moto_routing()
        moto_queues.install()
        moto_models.install()
        self._moto = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
        self._moto.start()
        port = self._moto.get_host_and_port()[1]
        self.moto_url = f"http://{HOST}:{port}"
        # moto's Step Functions engine calls http://localhost:$MOTO_PORT for aws-sdk:* tasks in server mode.
        os.environ["MOTO_PORT"] = str(port)
        # Server mode's switch for really executing state machines (mock_aws(config=...) in decorator mode).
        request = urllib.request.Request(  # noqa: S310 - our own local server
            f"{self.moto_url}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - our own local server
            answer.read()
        if not default_user_config.get("stepfunctions", {}).get("execute_state_machine"):
            raise RuntimeError("moto did not enable Step Functions execution")

    def _restore_state(self) -> int:
        """Loads what the last run kept (LOCAL_STATE_DIR) and journals every write from here on; returns how
        many items were restored. LOCAL_RESET (make run RESET=1) starts empty."""
        if self.settings.state_dir is None:
            return 0
        from moto.dynamodb.models import dynamodb_backends

        directory = Path(self.settings.state_dir)
        if self.settings.reset:
            for name in (SNAPSHOT, JOURNAL):
                (directory / name).unlink(missing_ok=True)
        self._state = StateStore(directory, dynamodb_backends[ACCOUNT_ID][REGION])
        restored = self._state.restore()
        atomic_dynamodb.on_commit(self._state.record)
        log.info("state kept in %s: %d items restored", directory, restored)
        return restored

    def _resume_pending_work(self) -> None:
        """What waited in a workflow or a queue died with the last process: pending cancellations and waiting
        webhook deliveries are made due, and the scheduled jobs run now rather than one interval from now."""
        table = self.names[SESSIONS_TABLE]
        pending = self._make_due(table, "pendingShard", "recheckAt")
        waiting = self._make_due(table, "deliveryShard", "checkAt")
        lagging = self._catch_up_fan_out(table)
        resumed = len(pending) + len(waiting)
        log.info(
            "resuming after a restart: %d pending cancellations made due; %d webhook deliveries made due; "
            "%d sessions' events fanned out again",
            len(pending),
            len(waiting),
            lagging,
        )
        scheduler = self._scheduler
        if scheduler is not None and resumed:
            threading.Thread(target=scheduler.run_all_once, name="resume", daemon=True).start()

    def _make_due(self, table: str, shard: str, due: str) -> list[dict[str, Any]]:
        """Every restored item of a sparse index (`shard`) made due now (`due` = 0); their keys."""
        assert self._state is not None
        # Read from the restored items directly: moto answers an index query by reading the whole table.
        keys = self._state.items_with(table, shard)
        for key in keys:
            self.client("dynamodb").update_item(
                TableName=table,
                Key=key,
                UpdateExpression=f"SET {due} = :now",
                ConditionExpression=f"attribute_exists({shard})",
                ExpressionAttributeValues={":now": {"N": "0"}},
            )
        return keys

    def _catch_up_fan_out(self, table: str) -> int:
        """The webhook events queue lives in moto's memory: what it held when the last process stopped is
        gone. Sessions changed in the last three days, of tenants that have webhook endpoints, whose fan-out
        watermark is behind their timeline are handed to the fan-out again (in the background: serving
        does not wait), which reads the missing events from the timeline."""
        assert self._state is not None
        url = self.queue_urls.get(WEBHOOK_EVENTS_QUEUE)
        if url is None:
            return 0
        with_endpoints = {
            pk.removeprefix("TENANT#")
            for pk, count in self._state.attribute_values(table, "endpointCount").items()
            if int(count) > 0
        }
        if not with_endpoints:
            return 0
        since = datetime.now(UTC).timestamp() - CATCH_UP_SECONDS
        fanned = {
            pk.removeprefix("WEBHOOKS#"): int(value)
            for pk, value in self._state.attribute_values(table, "fannedOut").items()
        }
        changed = self._state.attribute_values(table, "updatedAt")
        tenants = self._state.attribute_values(table, "tenantId")
        lagging = []
        for pk, seq in self._state.attribute_values(table, "seq").items():
            session_id = pk.removeprefix("SESSION#")
            if tenants.get(pk) not in with_endpoints or int(seq) <= fanned.get(session_id, 0):
                continue
            try:
                updated = datetime.fromisoformat(str(changed.get(pk, "")).replace("Z", "+00:00"))
            except ValueError:
                continue
            if updated.timestamp() >= since:
                lagging.append((session_id, int(seq)))
        sqs = self.client("sqs")

        def send() -> None:
            for start in range(0, len(lagging), 10):
                sqs.send_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {
                            "Id": str(index),
                            "MessageBody": json.dumps({"catchUp": session_id}),
                            "MessageGroupId": session_id,  # the pipe's group: one per session
                            "MessageDeduplicationId": f"catch-up-{session_id}-{seq}",
                        }
                        for index, (session_id, seq) in enumerate(lagging[start : start + 10])
                    ],
                )

        threading.Thread(target=send, name="fan-out-catch-up", daemon=True).start()
        return len(lagging)

    def _point_process_at_moto(self) -> None:
        for key in _AWS_VARIABLES_TO_DROP:
            os.environ.pop(key, None)
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_")]:
            os.environ.pop(key)
        os.environ.update(
            {
                **FAKE_CREDENTIALS,
                "AWS_ENDPOINT_URL": self.moto_url,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
            }
        )

    def client(self, service: str) -> Any:
        """The client of moto's server for `service`, made once; one session, so they share loaded models."""
        if service in self._clients:
            return self._clients[service]
        if self._session is None:
            self._session = boto3.session.Session()
        self._clients[service] = self._session.client(
            service,
            endpoint_url=self.moto_url,
            region_name=REGION,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        if self._moto is not None:
            in_process.attach(self._clients[service], self._moto._server.app)
        return self._clients[service]

    def _create_resources(self, resolver: cfn.Resolver, parameters: dict[str, str]) -> None:
        dynamodb = self.client("dynamodb")
        tables = {
            logical_id: resolver.refs[logical_id]
            for logical_id in cfn.resources("AWS::DynamoDB::Table", self.template)
        }
        cfn.create_tables(dynamodb, tables, self.template)
        for logical_id, name in tables.items():
            description = dynamodb.describe_table(TableName=name)["Table"]
            if "LatestStreamArn" in description:
                resolver.attributes[f"{logical_id}.StreamArn"] = description["LatestStreamArn"]
            self.names[logical_id] = name

        events = self.client("events")
        for logical_id in cfn.resources("AWS::Events::EventBus", self.template):
            name = resolver.refs[logical_id]
            events.create_event_bus(Name=name)
            self.names[logical_id] = name
            if self.settings.events_tap:
                self._tap(events, name)
        self.queue_urls = create_queues(self.client("sqs"), self.template, resolver)
        self.names.update(self.queue_urls)
        for logical_id in cfn.resources("AWS::Events::EventBus", self.template):
            create_rules(events, self.template, resolver, resolver.refs[logical_id])

        stepfunctions = self.client("stepfunctions")
        for logical_id, resource in cfn.resources("AWS::Serverless::StateMachine", self.template).items():
            name = resolver.attributes[f"{logical_id}.Name"]
            definition = cfn.state_machine_definition(logical_id, resolver, parameters, self.template)
            arn = stepfunctions.create_state_machine(
                name=name,
                definition=definition,
                roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{name}",
                type=resource.get("Properties", {}).get("Type", "STANDARD"),
            )["stateMachineArn"]
            if arn != resolver.refs[logical_id]:
                raise RuntimeError(
                    f"{logical_id}: moto made {arn}, the handlers were told {resolver.refs[logical_id]}"
                )
            self.names[logical_id] = arn

    def _tap(self, events: Any, bus_name: str) -> None:
        """Copies every event of the bus to an SQS queue, so that a developer or a test can see what was
        published (`aws --endpoint-url <moto> sqs receive-message`)."""
        sqs = self.client("sqs")
        queue_name = EVENTS_TAP_QUEUE if bus_name == "checkout" else f"{bus_name}-tap"
        queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name=f"{bus_name}-tap", EventBusName=bus_name, EventPattern=json.dumps({"account": [ACCOUNT_ID]})
        )
        events.put_targets(
            Rule=f"{bus_name}-tap", EventBusName=bus_name, Targets=[{"Id": "tap", "Arn": queue_arn}]
        )
        self.names[f"{bus_name}-tap"] = queue_url

    def _seed_api_keys(self) -> None:
        table = self.names[SESSIONS_TABLE]
        dynamodb = self.client("dynamodb")
        now = iso_now()
        for tenant, key in self.settings.api_keys:
            dynamodb.put_item(
                TableName=table,
                Item={
                    "pk": {"S": f"APIKEY#{hash_api_key(key)}"},
                    "sk": {"S": "APIKEY"},
                    "entity": {"S": "APIKEY"},
                    "tenant": {"S": tenant},
                    "usageKey": {"S": f"local-{tenant}"},
                    "returnHosts": {"L": [{"S": host} for host in self.settings.return_hosts]},
                    "merchantName": {"S": self.settings.merchant_name},
                    "createdAt": {"S": now},
                },
            )

    def _stream_publishers(
        self, specs: dict[str, FunctionSpec], resolver: cfn.Resolver, invoker: Invoker
    ) -> list[StreamPublisher]:
        """One reader per Pipe of the table's stream (to the bus, to the webhook fan-out's queue)."""
        stream_arn = resolver.attributes[f"{SESSIONS_TABLE}.StreamArn"]
        bus_names = [resolver.refs[b] for b in cfn.resources("AWS::Events::EventBus", self.template)]
        if len(bus_names) != 1:
            raise RuntimeError(f"expected one event bus in the template, found {len(bus_names)}")
        publishers = []
        for config in pipe_configs(stream_arn, specs, resolver, self.template):
            self._stream_positions[config.name] = 0

            def consumed(sequence: str, name: str = config.name) -> None:
                self._trim_stream(name, sequence)

            publishers.append(
                StreamPublisher(
                    MotoStreams(ACCOUNT_ID, REGION),
                    self.client("events"),
                    stream_arn,
                    bus_names[0],
                    config,
                    lambda function_id, records: invoker.invoke(function_id, records),
                    consumed=consumed,
                    sqs_client=self.client("sqs"),
                    read_lock=self._stream_read_lock,
                    poll_interval=STREAM_WAIT_SECONDS,
                )
            )
        return publishers

    def _queue_pollers(
        self, specs: dict[str, FunctionSpec], resolver: cfn.Resolver, invoker: Invoker
    ) -> list[QueuePoller]:
        """One poller per SQS event source; a FIFO queue gets several, so its message groups (one per
        webhook endpoint + session) are worked side by side as Lambda scales over groups."""
        pollers = []
        for source in event_sources(specs, resolver):
            url = self.queue_urls[source.queue_logical_id]
            workers = QUEUE_WORKERS if url.endswith(".fifo") else 1
            pollers.append(
                QueuePoller(
                    self.client("sqs"),
                    source,
                    url,
                    lambda function_id, event: invoker.invoke(function_id, event),
                    workers=workers,
                )
            )
        return pollers

    def _warm_event_consumers(self) -> None:
        """The functions the pipes and the queues invoke get an environment each before their first event,
        in the background: their cold starts (seconds on a busy machine) would otherwise hold every event
        behind the first one, hop after hop."""
        invoker = self._invoker
        assert invoker is not None
        functions = [p.config.enrichment_id for p in self._publishers if p.config.enrichment_id]
        functions += [poller.source.function_id for poller in self._pollers]
        threading.Thread(
            target=invoker.warm, args=(list(dict.fromkeys(functions)),), name="warm-consumers", daemon=True
        ).start()

    def _trim_stream(self, reader: str, through_sequence: str) -> None:
        """Drops the stream records every reader has handled."""
        from moto.dynamodb.models import dynamodb_backends

        self._stream_positions[reader] = max(self._stream_positions.get(reader, 0), int(through_sequence))
        handled = min(self._stream_positions.values())
        if handled == 0:
            return
        table = dynamodb_backends[ACCOUNT_ID][REGION].tables.get(self.names[SESSIONS_TABLE])
        if table is not None:
            with self._stream_read_lock:
                atomic_dynamodb.trim_stream(table, str(handled))

    # ------------------------------------------------------------------------------------------------ stop

    def stop(self) -> None:
        if self._http is not None:
            if self._http_thread is not None:
                self._http.shutdown()
                self._http_thread.join(10)
            self._http.server_close()
            self._http = None
        for poller in self._pollers:
            poller.signal_stop()
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        for publisher in self._publishers:
            publisher.stop()
        self._publishers = []
        for poller in self._pollers:  # all at once: each may be in a long poll
            poller.signal_stop()
        for poller in self._pollers:
            poller.stop()
        self._pollers = []
        if self._invoker is not None:
            self._invoker.close()
            self._invoker = None
        if self._stripe is not None:
            self._stripe.stop()
            self._stripe = None
        if self._adyen is not None:
            self._adyen.stop()
            self._adyen = None
        if self._moto is not None:
            self._stop_executions()
            if self._state is not None:
                atomic_dynamodb.on_commit(None)
                self._state.close()
                self._state = None
            self._moto.stop()
            self._moto = None

    def _stop_executions(self) -> None:
        """Executions waiting on a callback hold threads of moto's engine; the state dies with the process."""
        try:
            stepfunctions = self.client("stepfunctions")
            for machine in stepfunctions.list_state_machines()["stateMachines"]:
                running = stepfunctions.list_executions(
                    stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING"
                )["executions"]
                for execution in running:
                    with contextlib.suppress(Exception):
                        stepfunctions.stop_execution(executionArn=execution["executionArn"])
        except Exception:
            log.exception("could not stop the running executions")

    def banner(self) -> str:
        """What `make run` prints once it serves: where to read, where to look, and a first request."""
        keys = self.settings.api_keys
        if len(keys) == 1:
            key_text = f"API key: {keys[0][1]}"
        else:
            key_text = "API keys: " + ", ".join(f"{tenant} {key}" for tenant, key in keys)
        return_host = next(iter(self.settings.return_hosts), "example.com")
        body = json.dumps(
            {
                "amount": 5000,
                "currency": "USD",
                "referenceId": "order-1",
                "returnUrl": f"https://{return_host}/return",
            }
        )
        return "\n".join(
            [
                f"{LISTENING_ON}{self.base_url}  ({key_text})",
                f"  API docs:  {self.base_url}/v1/docs",
                f"  console:   {self.base_url}/console",
                f"  try:       curl -s -X POST {self.base_url}/v1/sessions"
                f" -H 'Authorization: Bearer {keys[0][1]}' -H 'Content-Type: application/json' -d '{body}'",
            ]
        )
