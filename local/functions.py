"""The template's functions and how the embedded runtime invokes them, as Lambda does.

Each function runs in execution environments of its own: worker processes (`local/worker.py`) that import
`<CodeUri>/<module>.py` once (the cold start) and then serve one invocation at a time. Concurrent invocations
of a function run in separate environments, created on demand up to a cap and reused warm, so module globals
are never shared by two running invocations. An environment whose handler ends the process (SystemExit, a
crash) or outlives its Timeout is discarded, and an init failure is retried on the next invocation. Events
and answers cross as JSON, so a handler that returns something Lambda could not serialise fails here too.
Each invocation logs START and END lines naming its function and request, and whether it was a cold start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local import cfn, processes
from local.naming import function_arn, local_name

log = logging.getLogger("local.functions")

FUNCTION_TYPE = "AWS::Serverless::Function"
DEFAULT_MAX_ENVIRONMENTS = 6
# An environment no invocation has used for this long is stopped, as Lambda reclaims idle ones: an idle
# runtime holds the launcher and little else. The next invocation cold-starts a new one.
DEFAULT_IDLE_SECONDS = 30.0
INIT_TIMEOUT_SECONDS = 30.0
TIMEOUT_GRACE_SECONDS = 1.0


class FunctionCodeMissing(Exception):
    """The template names a function whose code is not there (yet)."""


class FunctionError(Exception):
    """The invocation failed: init error, exception, or an answer that is not JSON. Like Lambda's error
    answer, it carries the error's type and message and the handler's stack trace when there is one."""

    def __init__(self, message: str, error_type: str = "", error_message: str = "", stack: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.error_message = error_message
        self.stack = stack


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, Any] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    layers: tuple[Any, ...] = ()

    @property
    def arn(self) -> str:
        return function_arn(self.name)

    @property
    def module_path(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def handler_attribute(self) -> str:
        return self.handler.rpartition(".")[2]

    def has_code(self) -> bool:
        return self.module_path.is_file()


def function_specs(template: dict[str, Any] | None = None) -> dict[str, FunctionSpec]:
    """Every function of the template with the Globals applied, keyed by logical id."""
    template = template or cfn.load_template()
    defaults = template.get("Globals", {}).get("Function", {})
    specs: dict[str, FunctionSpec] = {}
    for logical_id, resource in cfn.resources(FUNCTION_TYPE, template).items():
        properties = resource.get("Properties", {})
        environment = {
            **defaults.get("Environment", {}).get("Variables", {}),
            **properties.get("Environment", {}).get("Variables", {}),
        }
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=local_name(logical_id, FUNCTION_TYPE),
            code_dir=cfn.ROOT / properties.get("CodeUri", defaults.get("CodeUri", "")),
            handler=properties.get("Handler", defaults.get("Handler", "app.lambda_handler")),
            memory_mb=int(properties.get("MemorySize", defaults.get("MemorySize", 128))),
            timeout_s=int(properties.get("Timeout", defaults.get("Timeout", 3))),
            environment=environment,
            events=dict(properties.get("Events", {})),
            layers=tuple(properties.get("Layers", defaults.get("Layers", []))),
        )
    return specs


def layer_paths(template: dict[str, Any] | None = None) -> list[Path]:
    """The directories of the template's layers: what a function finds on its `sys.path` in Lambda."""
    layers = cfn.resources("AWS::Serverless::LayerVersion", template)
    return [cfn.ROOT / layer["Properties"]["ContentUri"] for layer in layers.values()]


def to_json_value(value: Any) -> Any:
    """A deep copy through JSON, as Lambda makes of every event and answer; raises TypeError/ValueError."""
    return json.loads(json.dumps(value))


class RuntimeStopping(FunctionError):
    """The runtime stopped while the invocation waited or ran: not the function's failure, nothing to log."""


class FunctionTimedOut(FunctionError):
    """The invocation outlived the function's Timeout; its environment was stopped, as Lambda does."""


class Zygote:
    """The process that forks execution environments (local/zygote.py), started on first use."""

    def __init__(self, layers: list[Path]) -> None:
        self.layers = layers
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.folder = Path(tempfile.mkdtemp(prefix="checkout-environments-"))
        self._count = 0

    def start(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = processes.spawn(
                [sys.executable, "-m", "local.zygote", *[str(path) for path in self.layers]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=cfn.ROOT,
                text=True,
            )
        return self._process

    def fork(self, spec: dict[str, Any]) -> tuple[int, Path, Path]:
        """A new environment's pid and the FIFOs it reads requests from and writes answers to."""
        with self._lock:
            process = self._start()
            self._count += 1
            requests, answers = self.folder / f"{self._count}.in", self.folder / f"{self._count}.out"
            os.mkfifo(requests)
            os.mkfifo(answers)
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(
                json.dumps({"spec": spec, "requests": str(requests), "answers": str(answers)}) + "\n"
            )
            process.stdin.flush()
            line = process.stdout.readline()
            if not line:
                raise FunctionError("the environment launcher exited")
            return int(json.loads(line)["pid"]), requests, answers

    def close(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)


class Environment:
    """One execution environment: a worker process that imported the handler once and serves one
    invocation at a time."""

    def __init__(self, spec: FunctionSpec, layers: list[Path], zygote: Zygote) -> None:
        self.spec = spec
        worker_spec = {
            "logicalId": spec.logical_id,
            "name": spec.name,
            "module": str(spec.module_path),
            "handlerAttribute": spec.handler_attribute,
            "memoryMb": spec.memory_mb,
            "timeoutSeconds": spec.timeout_s,
            "root": str(cfn.ROOT),
            "layers": [str(path) for path in layers],
            "environment": {
                **os.environ,
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
                # As `sam local` sets them: the X-Ray SDK then samples locally instead of building a client
                # of the X-Ray API at each cold start, and Powertools' Tracer knows it is not in AWS.
                "LAMBDA_TASK_ROOT": str(spec.module_path.parent),
                "AWS_SAM_LOCAL": "true",
            },
        }
        self.pid, requests, answers = zygote.fork(worker_spec)
        # Opened in the order the worker opens them, so neither waits on the other forever.
        self._requests = open(requests, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the environment
        self._answers = open(answers, encoding="utf-8")  # noqa: SIM115
        requests.unlink()
        answers.unlink()
        self.invocations = 0
        self.init_ms: int | None = None
        self.idle_since = time.monotonic()
        self._stopped = False

    def start(self) -> None:
        """Waits for the cold start: the handler imported, or the reason it could not be."""
        message = self._receive(INIT_TIMEOUT_SECONDS)
        if "initError" in message:
            self.stop()
            raise FunctionError(
                f"{self.spec.logical_id} failed to initialise: {message['initError']}",
                stack=message.get("stackTrace", ""),
            )
        self.init_ms = int(message.get("initMs", 0))

    def invoke(self, event: Any, request_id: str) -> Any:
        try:
            self._requests.write(
                json.dumps(
                    {"event": event, "requestId": request_id, "remainingMs": self.spec.timeout_s * 1000}
                )
                + "\n"
            )
            self._requests.flush()
        except BrokenPipeError as exc:
            self.stop()
            raise FunctionError(f"{self.spec.logical_id}: its environment is gone") from exc
        self.invocations += 1
        message = self._receive(self.spec.timeout_s + TIMEOUT_GRACE_SECONDS)
        if "errorType" in message:
            if message.get("fatal"):
                self.stop()
            raise FunctionError(
                f"{self.spec.logical_id} raised {message['errorType']}: {message['errorMessage']}",
                message["errorType"],
                message["errorMessage"],
                message.get("stackTrace", ""),
            )
        return message["result"]

    def _receive(self, timeout: float) -> dict[str, Any]:
        ready, _, _ = select.select([self._answers], [], [], timeout)
        if not ready:
            self.stop()
            raise FunctionTimedOut(f"{self.spec.logical_id} timed out after {timeout:.0f} s")
        line = self._answers.readline()
        if not line:
            self.stop()
            raise FunctionError(f"{self.spec.logical_id}: its environment exited")
        message: dict[str, Any] = json.loads(line)
        return message

    @property
    def alive(self) -> bool:
        if self._stopped:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            for stream in (self._requests, self._answers):
                with contextlib.suppress(OSError):
                    stream.close()


class FunctionPool:
    """A function's execution environments: reused warm, created on demand up to `max_environments`;
    an invocation waits for a free one beyond that (as a function at its concurrency limit would)."""

    def __init__(self, spec: FunctionSpec, layers: list[Path], max_environments: int, zygote: Zygote) -> None:
        self.spec = spec
        self.layers = layers
        self.zygote = zygote
        self.max_environments = max_environments
        self._idle: list[Environment] = []
        self._count = 0
        self._closed = False
        self._free = threading.Condition()

    def invoke(self, event: Any, request_id: str) -> Any:
        environment, cold = self._acquire()
        healthy = False
        started = time.monotonic()
        start_kind = f"cold start, init {environment.init_ms} ms" if cold else "warm"
        log.info("%s START RequestId: %s (%s)", self.spec.name, request_id, start_kind)
        try:
            result = environment.invoke(event, request_id)
            healthy = True
            return result
        except FunctionError as exc:
            healthy = environment.alive
            if self._closed:  # its environment was ended by the stop, not by the function
                raise RuntimeStopping(f"{self.spec.logical_id}: the runtime is stopping") from exc
            raise
        finally:
            log.info(
                "%s END RequestId: %s Duration: %.0f ms",
                self.spec.name,
                request_id,
                (time.monotonic() - started) * 1000,
            )
            self._release(environment, healthy)

    def warm(self) -> None:
        """Starts one environment ahead of the first invocation, unless one is idle or none may start."""
        with self._free:
            if self._closed or self._idle or self._count >= self.max_environments:
                return
            self._count += 1
        try:
            environment = Environment(self.spec, self.layers, self.zygote)
            environment.start()
        except BaseException:
            with self._free:
                self._count -= 1
                self._free.notify()
            raise
        self._release(environment, healthy=True)

    def _acquire(self) -> tuple[Environment, bool]:
        with self._free:
            while True:
                if self._closed:
                    raise RuntimeStopping(f"{self.spec.logical_id}: the runtime is stopping")
                if self._idle:
                    return self._idle.pop(), False
                if self._count < self.max_environments:
                    self._count += 1
                    break
                self._free.wait()
        try:
            environment = Environment(self.spec, self.layers, self.zygote)
            environment.start()
        except BaseException:
            with self._free:
                self._count -= 1
                self._free.notify()
            raise
        return environment, True

    def _release(self, environment: Environment, healthy: bool) -> None:
        with self._free:
            if healthy and environment.alive and not self._closed:
                environment.idle_since = time.monotonic()
                self._idle.append(environment)
            else:
                environment.stop()
                self._count -= 1
            self._free.notify()

    def stop_idle(self, idle_seconds: float) -> int:
        """Stops the environments unused for `idle_seconds`; returns how many."""
        deadline = time.monotonic() - idle_seconds
        with self._free:
            stale = [environment for environment in self._idle if environment.idle_since <= deadline]
            self._idle = [environment for environment in self._idle if environment.idle_since > deadline]
            self._count -= len(stale)
            self._free.notify_all()
        for environment in stale:
            environment.stop()
        return len(stale)

    def close(self) -> None:
        with self._free:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._free.notify_all()
        for environment in idle:
            environment.stop()


class Invoker:
    """Invokes the template's functions as Lambda does: each in its own execution environments (worker
    processes), one invocation at a time per environment; module globals are never shared by two running
    invocations. Events and answers cross as JSON."""

    def __init__(
        self,
        specs: dict[str, FunctionSpec],
        layers: list[Path] | None = None,
        max_environments: int = DEFAULT_MAX_ENVIRONMENTS,
        idle_seconds: float | None = DEFAULT_IDLE_SECONDS,
    ) -> None:
        self.specs = specs
        self.layers = layer_paths() if layers is None else layers
        self.max_environments = max_environments
        self.idle_seconds = idle_seconds
        self._pools: dict[str, FunctionPool] = {}
        self._lock = threading.Lock()
        self._zygote = Zygote(self.layers)
        self._closing = threading.Event()
        self._reaper: threading.Thread | None = None

    def start_launcher(self) -> None:
        """Starts the environment launcher now, in the background, rather than on the first invocation."""
        threading.Thread(target=self._zygote.start, name="zygote-start", daemon=True).start()

    def has_code(self, logical_id: str) -> bool:
        return self.specs[logical_id].has_code()

    def invoke(self, logical_id: str, event: Any, request_id: str | None = None) -> Any:
        spec = self.specs[logical_id]
        if not spec.has_code():
            path = spec.module_path
            shown = path.relative_to(cfn.ROOT) if path.is_relative_to(cfn.ROOT) else path
            raise FunctionCodeMissing(f"{logical_id} has no code at {shown}")
        try:
            payload = to_json_value(event)
        except (TypeError, ValueError) as exc:
            raise FunctionError(f"the event for {logical_id} is not JSON") from exc
        return self._pool(spec).invoke(payload, request_id or str(uuid.uuid4()))

    def warm(self, logical_ids: list[str]) -> None:
        """One environment of each function started now, one after the other, so that its first invocation
        finds it warm; a function without code, or whose init fails, is left to its first invocation."""
        for logical_id in logical_ids:
            spec = self.specs[logical_id]
            if self._closing.is_set():
                return
            if not spec.has_code():
                continue
            try:
                self._pool(spec).warm()
            except Exception as exc:  # a stop meanwhile ends the launcher under it
                if not self._closing.is_set():
                    log.warning("%s was not started ahead: %s", logical_id, exc)

    def _pool(self, spec: FunctionSpec) -> FunctionPool:
        with self._lock:
            pool = self._pools.get(spec.logical_id)
            if pool is None:
                pool = self._pools[spec.logical_id] = FunctionPool(
                    spec, self.layers, self.max_environments, self._zygote
                )
            if self._reaper is None and self.idle_seconds is not None:
                self._reaper = threading.Thread(target=self._stop_idle, name="idle-environments", daemon=True)
                self._reaper.start()
            return pool

    def _stop_idle(self) -> None:
        assert self.idle_seconds is not None
        while not self._closing.wait(min(5.0, self.idle_seconds / 4)):
            with self._lock:
                pools = list(self._pools.values())
            stopped = sum(pool.stop_idle(self.idle_seconds) for pool in pools)
            if stopped:
                log.debug("%d idle environments stopped", stopped)

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()
        self._zygote.close()
