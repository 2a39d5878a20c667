"""Cold import time of the cancel handler against a bare Powertools REST handler, fresh interpreters.

Each run is a new `python -c` that times `import app` (functions/cancel_session on the path, with the
layer, as Lambda lays them out: /var/task and /opt/python) or `import bare_handler` (bench/bare_handler.py).
Runs alternate so that machine noise hits both alike; the first run of each is a warm-up (it writes
the .pyc files) and is not counted. A third module, bench/bare_validated_handler.py (the bare handler with
Powertools request validation on), is timed in the same rotation to show what part of the gap that
feature alone makes; it is not part of the ratio.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from typing import Any

from bench import harness

SNIPPET = "import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"

# What a deployed function sees, minus the Lambda markers: with AWS_LAMBDA_FUNCTION_NAME set, the
# Tracer would also patch botocore at import, the same constant cost on both sides.
IMPORT_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "checkout-sessions",
    "POWERTOOLS_METRICS_NAMESPACE": "CheckoutSessions",
    "AWS_DEFAULT_REGION": harness.REGION,
}


def _time_import(module: str, path: list[str], cwd: str) -> float:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "AWS_LAMBDA"))}
    env.update(IMPORT_ENVIRONMENT)
    env["PYTHONPATH"] = os.pathsep.join(path)
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET.format(module=module)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(runs: int = 7) -> dict[str, Any]:
    cancel_dir = str(harness.FUNCTIONS / "cancel_session")
    bench_dir = str(harness.ROOT / "bench")
    layer = str(harness.LAYER)

    def cancel() -> float:
        return _time_import("app", [cancel_dir, layer], cancel_dir)

    def bare() -> float:
        return _time_import("bare_handler", [bench_dir], bench_dir)

    def bare_validated() -> float:
        return _time_import("bare_validated_handler", [bench_dir], bench_dir)

    cancel()
    bare()
    bare_validated()
    cancel_times: list[float] = []
    bare_times: list[float] = []
    validated_times: list[float] = []
    for _ in range(runs):
        cancel_times.append(cancel())
        bare_times.append(bare())
        validated_times.append(bare_validated())
    cancel_median = statistics.median(cancel_times)
    bare_median = statistics.median(bare_times)
    validated_median = statistics.median(validated_times)
    return {
        "ratio": cancel_median / bare_median,
        "cancel_ms": cancel_median * 1000,
        "bare_ms": bare_median * 1000,
        "bare_validated_ms": validated_median * 1000,
        "validated_ratio": validated_median / bare_median,
        "runs": runs,
    }
