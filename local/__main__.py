"""`python -m local` (`make run`): serves the API of template.yaml on http://127.0.0.1:$PORT with DynamoDB,
EventBridge and Step Functions emulated in-process by moto's server. No AWS account, no Docker.

Settings are the README's table (PORT, LOCAL_API_KEYS, LOCAL_RETURN_HOSTS, SANDBOX_WEBHOOK_SECRET,
SWEEP_INTERVAL_SECONDS, SESSION_TTL_*, CANCELLATION_*, PUBLIC_BASE_URL); LOCAL_LOG_LEVEL sets the runtime's
own log level (default INFO). It prints the base URL and the API key on stdout, logs the moto endpoint on
stderr (with LOCAL_EVENTS_TAP=1, events published on the bus are copied to the SQS queue `checkout-events-tap`
there: a queue nobody reads grows without end, so it is off by default), and stops on
Ctrl-C or SIGTERM with exit status 0; SIGUSR1 prints every thread's stack on stderr.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading

from local.runtime import EVENTS_TAP_QUEUE, PortUnavailable, Runtime, Settings, SettingsError


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOCAL_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for chatty in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    log = logging.getLogger("local")
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"checkout-sessions: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: every thread's stack

    runtime = Runtime(settings)
    try:
        runtime.start()
    except PortUnavailable as exc:
        print(f"checkout-sessions: {exc}", file=sys.stderr)
        return 1
    tap = f" (bus events copied to SQS queue {EVENTS_TAP_QUEUE})" if settings.events_tap else ""
    log.info("AWS emulated by moto at %s%s", runtime.moto_url, tap)
    print(runtime.banner(), flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        runtime.stop()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is saved by now; threads still parked in moto's workflow engine would hold the exit
    # for minutes, and nothing of theirs is worth waiting for.
    os._exit(status)
