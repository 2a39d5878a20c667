"""One Lambda execution environment, forked by local/zygote.py for local/functions.py.

It imports the function's handler once (the cold start), then serves one invocation at a time: a JSON line
on its requests FIFO (`{"event", "requestId", "remainingMs"}`), a JSON line back on its answers FIFO
(`{"result"}` or `{"errorType", "errorMessage", "stackTrace"}`). Whatever the handler prints goes to the
log (stderr), so the answers carry nothing else. Whatever ends an invocation badly is reported as an error;
one that ends the process in Lambda (SystemExit, a crash) ends this environment too.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import traceback
from typing import Any


def serve(spec: dict[str, Any], requests: Any, protocol: Any) -> int:
    """Imports the handler, then answers each request line of `requests` with a line on `protocol`."""
    for path in reversed([spec["root"], *spec["layers"]]):
        if path not in sys.path:
            sys.path.insert(0, path)
    from local.lambda_context import LambdaContext

    started = time.monotonic()
    try:
        module_spec = importlib.util.spec_from_file_location(f"_function_{spec['logicalId']}", spec["module"])
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {spec['module']}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        handler = getattr(module, spec["handlerAttribute"])
    except BaseException as exc:  # reported; the next invocation tries a new environment
        _send(protocol, {"initError": f"{type(exc).__name__}: {exc}", "stackTrace": traceback.format_exc()})
        return 1
    _send(protocol, {"ready": True, "initMs": round((time.monotonic() - started) * 1000)})
    for line in requests:
        request = json.loads(line)
        context = LambdaContext(
            function_name=spec["name"],
            memory_limit_in_mb=spec["memoryMb"],
            timeout_seconds=spec["timeoutSeconds"],
            aws_request_id=request["requestId"],
        )
        context._deadline = time.monotonic() + request["remainingMs"] / 1000
        try:
            result = handler(request["event"], context)
        except Exception as exc:
            _send(protocol, _error(exc))
            continue
        except BaseException as exc:  # SystemExit, an injected crash: this environment is gone
            _send(protocol, {**_error(exc), "fatal": True})
            return 1
        try:
            _send(protocol, {"result": result})
        except (TypeError, ValueError) as exc:
            _send(protocol, {"errorType": "Runtime.MarshalError", "errorMessage": f"not JSON: {exc}"})
    return 0


def _error(exc: BaseException) -> dict[str, Any]:
    return {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": traceback.format_exc()}


def _send(protocol: Any, message: dict[str, Any]) -> None:
    protocol.write(json.dumps(message) + "\n")
    protocol.flush()
