"""The template's functions and how the embedded runtime invokes them in-process.

Each `AWS::Serverless::Function` is imported from `<CodeUri>/<module>.py` (all handlers are `app.py`, so each
module gets a unique name) on its first invocation, as Lambda does on a cold start; a module that fails to
import is retried on the next invocation. Events and answers go through JSON, as they do between Lambda and
its callers, so a handler that returns something Lambda could not serialise fails here too.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local import cfn
from local.lambda_context import LambdaContext
from local.naming import function_arn, local_name

log = logging.getLogger("local.functions")

FUNCTION_TYPE = "AWS::Serverless::Function"


class FunctionCodeMissing(Exception):
    """The template names a function whose code is not there (yet)."""


class FunctionError(Exception):
    """The handler failed: import error, exception (the `__cause__`, for the caller to log), or an answer
    that is not JSON."""


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


class Invoker:
    """Invokes the template's functions in this process, importing each on first use."""

    def __init__(self, specs: dict[str, FunctionSpec]) -> None:
        self.specs = specs
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._import_lock = threading.Lock()

    def has_code(self, logical_id: str) -> bool:
        return self.specs[logical_id].has_code()

    def invoke(self, logical_id: str, event: Any, request_id: str | None = None) -> Any:
        spec = self.specs[logical_id]
        handler = self._handler(spec)
        context = LambdaContext(
            function_name=spec.name, memory_limit_in_mb=spec.memory_mb, timeout_seconds=spec.timeout_s
        )
        if request_id:
            context.aws_request_id = request_id
        started = time.monotonic()
        try:
            result = handler(to_json_value(event), context)
        except BaseException as exc:  # whatever ends an invocation (even SystemExit) is a failed invocation
            raise FunctionError(f"{logical_id} raised {type(exc).__name__}: {exc}") from exc
        finally:
            elapsed = time.monotonic() - started
            if elapsed > spec.timeout_s:
                log.warning(
                    "%s took %.1f s, longer than its Timeout of %d s: Lambda would have stopped it",
                    logical_id,
                    elapsed,
                    spec.timeout_s,
                )
        try:
            return to_json_value(result)
        except (TypeError, ValueError) as exc:
            log.error("%s returned an answer Lambda cannot serialise: %s", logical_id, exc)
            raise FunctionError(f"{logical_id} returned a value that is not JSON") from exc

    def _handler(self, spec: FunctionSpec) -> Callable[[Any, Any], Any]:
        handler = self._handlers.get(spec.logical_id)
        if handler is not None:
            return handler
        with self._import_lock:
            handler = self._handlers.get(spec.logical_id)
            if handler is not None:
                return handler
            path = spec.module_path
            if not path.is_file():
                shown = path.relative_to(cfn.ROOT) if path.is_relative_to(cfn.ROOT) else path
                raise FunctionCodeMissing(f"{spec.logical_id} has no code at {shown}")
            module_name = f"_local_function_{spec.logical_id}"
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            if module_spec is None or module_spec.loader is None:
                raise FunctionError(f"cannot load {path}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            try:
                module_spec.loader.exec_module(module)
                handler = getattr(module, spec.handler_attribute)
            except BaseException as exc:
                sys.modules.pop(module_name, None)
                log.exception("%s failed to initialise (%s)", spec.logical_id, spec.handler)
                raise FunctionError(f"{spec.logical_id} failed to initialise") from exc
            self._handlers[spec.logical_id] = handler
            return handler
