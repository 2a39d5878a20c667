"""Forks execution environments: `python -m local.zygote`, started once by local/functions.py.

It imports the libraries every handler needs (boto3, pydantic, Powertools) once, then forks a worker for each
request on stdin (`{"spec", "requests", "answers"}`: two FIFOs) and answers its pid on stdout. A forked
environment then imports its own handler, as a cold start does, but no longer pays for the shared libraries:
an environment costs milliseconds instead of a second of CPU. Of checkout_core only `aws` (botocore's data
files, parsed once: each environment's clients then cost milliseconds too) and `models` (pydantic's schemas,
built once; it reads no setting) are imported, from the layers named on the command line. No other module
of the service is imported before the fork, and each environment is a process of its own.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any


def _preload(layers: list[str]) -> None:
    import boto3  # noqa: F401

    if layers:  # functions with the service's layer (a probe in the tests has none)
        for path in reversed(layers):  # as an environment puts them on its path
            if path not in sys.path:
                sys.path.insert(0, path)
        from checkout_core import aws, models  # noqa: F401 - models: pydantic's schemas, built once

        aws.preload()  # the data files every client loads, parsed once
    import aws_lambda_powertools.event_handler
    import aws_lambda_powertools.logging
    import aws_lambda_powertools.metrics
    import aws_lambda_powertools.tracing
    import aws_lambda_powertools.utilities.idempotency  # noqa: F401
    import pydantic  # noqa: F401


def _become_worker(request: dict[str, Any], launcher: int) -> None:
    from local import processes, worker

    processes.die_with_parent(launcher)

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    requests = open(str(request["requests"]), encoding="utf-8")  # noqa: SIM115 - the worker's whole life
    answers = open(str(request["answers"]), "w", encoding="utf-8")  # noqa: SIM115
    os.dup2(
        sys.stderr.fileno(), sys.stdout.fileno()
    )  # the handler's prints are its log, not the control pipe
    spec = request["spec"]
    os.environ.update({str(key): str(value) for key, value in spec.get("environment", {}).items()})
    code = 1
    try:
        code = worker.serve(spec, requests, answers)
    finally:
        sys.stderr.flush()
        os._exit(code)


def main() -> int:
    _preload(sys.argv[1:])
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # exited environments are reaped by the kernel
    control = sys.stdout
    launcher = os.getpid()
    for line in sys.stdin:  # ends when the runtime closes the pipe (or dies)
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become_worker(request, launcher)
        control.write(json.dumps({"pid": pid}) + "\n")
        control.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
