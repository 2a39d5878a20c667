"""`python -m bench [--fast] [--out DIR]`: runs every measure, writes results.json and RESULTS.md.

`--fast` shrinks every measure (tiny tables, two rechecks, a few runs) to check the output's shape
quickly; its numbers are not the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from bench import harness

FULL = {
    "expiry_n": 1000,
    "rechecks": 24,
    "import_runs": 15,
    "overhead_iterations": 40,
    "runtime_sessions": 10_000,
    "runtime_sample": 200,
    "stripe_runs": 5,
    "webhook_sessions_per_client": 10,
    "capacity_one_tenant_sessions": 200,
    "capacity_sessions": 1000,
    "console_sessions": 1000,
    "idle_seconds": 30,  # the runtime's default
}
FAST = {
    "expiry_n": 200,
    "rechecks": 1,
    "import_runs": 1,
    "overhead_iterations": 3,
    "runtime_sessions": 150,
    "runtime_sample": 20,
    "stripe_runs": 1,
    "webhook_sessions_per_client": 1,
    "capacity_one_tenant_sessions": 10,
    "capacity_sessions": 32,
    "console_sessions": 20,
    "idle_seconds": 2,
}


def machine() -> str:
    return f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def run(settings: dict[str, int]) -> dict[str, Any]:
    from bench import (
        adyen,
        capacity,
        console,
        ddb_calls,
        expiry,
        imports,
        layer,
        overhead,
        runtime,
        stripe,
        transitions,
        webhooks,
    )

    measures: dict[str, Any] = {}
    started = time.monotonic()

    def step(name: str) -> None:
        harness.say(f"bench: {name} ({time.monotonic() - started:.0f} s)")

    step("DynamoDB calls per request")
    measures["ddb"] = ddb_calls.measure()
    step("items read by the expiry sweep")
    measures["expiry"] = expiry.measure(settings["expiry_n"])
    step("handler overhead")
    measures["overhead"] = overhead.measure(settings["overhead_iterations"])
    step("import time")
    measures["imports"] = imports.measure(settings["import_runs"])
    step("Step Functions transitions")
    measures["sfn"] = transitions.measure(rechecks=settings["rechecks"])
    measures["sfn"]["polling_1min_per_24h"] = transitions.POLLING_PER_MINUTE_PER_DAY
    measures["layer"] = layer.measure()
    step("the stripe provider's cancel, against the local Stripe")
    measures["stripe"] = stripe.measure(settings["stripe_runs"])
    step("the adyen provider's cancel and notification, against the local Adyen")
    measures["adyen"] = adyen.measure()
    step("webhooks: calls per first attempt, and the local delivery path")
    measures["webhooks"] = webhooks.measure(settings["webhook_sessions_per_client"])
    step("capacity: partition keys and message groups at contract rates")
    measures["capacity"] = capacity.measure(
        settings["capacity_one_tenant_sessions"], settings["capacity_sessions"]
    )
    step("the console's overview page at N and 10N sessions")
    measures["console"] = console.measure(settings["console_sessions"])
    step("the embedded runtime over HTTP")
    measures["runtime"] = runtime.measure(
        settings["runtime_sessions"], settings["runtime_sample"], settings["idle_seconds"]
    )
    step("done")
    return measures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="tiny sizes: checks the shape, not the numbers")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)

    harness.prepare_environment()
    harness.silence_stdout()
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    from bench import report

    measures = run(FAST if args.fast else FULL)
    where = machine()
    results = report.results_json(measures, where)
    rows = report.rows(measures)
    mode = " **Fast mode: shape check only, not results.**" if args.fast else ""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    results_md = args.out / "RESULTS.md"
    loops = report.kept_loops(results_md.read_text()) if results_md.exists() else ""
    results_md.write_text(report.markdown(rows, where, load, mode, report.notes(measures), loops))
    for row in rows:
        status = "n/a " if row.met is None else ("met " if row.met else "MISS")
        harness.say(f"  {status} {row.measure}: {row.value}")
    harness.say(f"wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
