"""The local Adyen's HTTP side: Adyen's Checkout paths, checked against its document, and the control
routes. `python -m local.adyen --port N --api-key K --merchant-account M [--notification-url U]`, with the
HMAC key in ADYEN_HMAC_KEY (`--listen-fd F` instead of `--port`: a listening socket its parent bound)."""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import logging
import os
import re
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local import processes
from local.adyen.openapi_check import VERSION_PREFIX, OpenApiCheck
from local.adyen.platform import Adyen, ApiError, Settings

log = logging.getLogger("local.adyen")


ISSUER_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Issuer authentication (local Adyen)</title></head><body>
<h1>3-D Secure: authenticate this payment?</h1><p>Local Adyen test issuer, payment {psp}.</p>
<form method="post"><button name="outcome" value="authenticated">Authenticate</button>
<button name="outcome" value="failed">Fail authentication</button>
<button name="outcome" value="cancelled">Cancel</button></form></body></html>"""

_MODIFICATION = re.compile(
    rf"^{VERSION_PREFIX}/payments/(?P<psp>[^/]+)/(?P<kind>cancels|captures|refunds|reversals)$"
)
_KINDS = {"cancels": "cancel", "captures": "capture", "refunds": "refund", "reversals": "reversal"}


class Handler(BaseHTTPRequestHandler):
    server: AdyenServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: Any,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        adyen = self.server.adyen
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_emulator/stats":
            self._send(200, adyen.stats())
        elif path == "/_emulator/violations":
            with adyen._lock:
                self._send(200, {"violations": list(adyen.violations)})
        elif path == "/_emulator/notifications":
            self._send(200, {"notifications": adyen.notifier.listed()})
        elif path.startswith("/_emulator/3ds/"):
            token = path.rsplit("/", 1)[1]
            with adyen._lock:
                payment = next((p for p in adyen.payments.values() if p.redirect_token == token), None)
            if payment is None:
                self._send(404, b"unknown authentication", "text/plain")
            else:
                self._send(
                    200, ISSUER_PAGE.format(psp=html.escape(payment.psp_reference)).encode(), "text/html"
                )
        else:
            self._send(
                404, {"status": 404, "errorCode": "000", "message": "Not found", "errorType": "validation"}
            )

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        raw = self._read()
        if path.startswith("/_emulator/"):
            self._control(path, raw)
        elif path.startswith(VERSION_PREFIX + "/"):
            self._api(path, raw)
        else:
            self._send(
                404, {"status": 404, "errorCode": "000", "message": "Not found", "errorType": "validation"}
            )

    def _api(self, path: str, raw: bytes) -> None:
        adyen = self.server.adyen
        with adyen._lock:
            adyen.counts["requests"] += 1
        operation = adyen.check.operation(path)
        if operation is None:
            self._send(
                404, {"status": 404, "errorCode": "000", "message": "Not found", "errorType": "validation"}
            )
            return
        held = False
        try:
            if self.headers.get("X-API-Key") != adyen.settings.api_key:
                raise ApiError(401, "000", "HTTP Status Response - Unauthorized", "security")
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = raw.decode(errors="replace")
            errors = adyen.check.request_errors(operation, self.headers.get("Content-Type", ""), body)
            if errors:
                adyen.violation("requestViolations", f"POST {path}: " + "; ".join(errors))
                raise ApiError(422, "702", "; ".join(errors), "validation")
            if (
                body.get("merchantAccount", adyen.settings.merchant_account)
                != adyen.settings.merchant_account
            ):
                raise ApiError(403, "901", "Invalid Merchant Account", "security")
            status, answer, held = self._operate_once(path, body)
        except ApiError as refused:
            status, answer = refused.status, refused.body
        for error in adyen.check.answer_errors(operation, status, answer):
            adyen.violation("responseViolations", f"POST {path} → {status}: {error}")
        if held:
            adyen.release_event.wait(adyen.hold_seconds)
        psp = answer.get("pspReference")
        with contextlib.suppress(OSError):  # a held caller may have given up
            self._send(status, answer, extra={"pspReference": psp} if psp else None)

    def _operate_once(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        """Adyen's idempotency: a request repeated with the same Idempotency-Key gets the first one's answer
        (at once, even where the first answer was held back) and changes nothing."""
        adyen = self.server.adyen
        key = self.headers.get("Idempotency-Key")
        with adyen._lock:
            if key and (path, key) in adyen.answered:
                status, answer = adyen.answered[(path, key)]
                return status, answer, False
            status, answer, held = self._operate(path, body)
            if key:
                adyen.answered[(path, key)] = (status, answer)
            return status, answer, held

    def _operate(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        adyen = self.server.adyen
        if path == f"{VERSION_PREFIX}/payments":
            answer, held = adyen.create_payment(body)
            return 200, answer, held
        if path == f"{VERSION_PREFIX}/payments/details":
            return 200, adyen.payment_details(body), False
        if path == f"{VERSION_PREFIX}/cancels":
            return 201, adyen.modify("technical-cancel", None, body), False
        found = _MODIFICATION.match(path)
        if found is None:
            raise ApiError(422, "905", f"{path} is not emulated", "configuration")
        return 201, adyen.modify(_KINDS[found.group("kind")], found.group("psp"), body), False

    def _control(self, path: str, raw: bytes) -> None:
        adyen = self.server.adyen
        if path.startswith("/_emulator/3ds/"):
            outcome = urllib.parse.parse_qs(raw.decode()).get("outcome", [""])[0]
            target = adyen.shopper_chooses(path.rsplit("/", 1)[1], outcome)
            if target is None:
                self._send(404, b"unknown authentication", "text/plain")
            else:
                self._send(303, b"", "text/plain", {"Location": target})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, {"error": "the body is not JSON"})
            return
        with adyen._lock:
            if path == "/_emulator/notifications":
                if "drop" in body:
                    adyen.notifier.drop(body["drop"])
                if "delaySeconds" in body:
                    adyen.notifier.delay_seconds = float(body["delaySeconds"])
            elif path == "/_emulator/fail-cancels":
                adyen.fail_cancels = int(body.get("count", 1))
                adyen.fail_reason = str(body.get("reason") or "Cancellation failed")
            elif path == "/_emulator/hold-payments":
                adyen.hold_count = int(body.get("count", 1))
                adyen.hold_seconds = float(body.get("seconds", 60))
                adyen.release_event = threading.Event()
            elif path == "/_emulator/release":
                adyen.release_event.set()
            elif path == "/_emulator/reset":
                adyen.reset()
            elif path != "/_emulator/notify":
                self._send(404, {"error": f"no control {path}"})
                return
        if path == "/_emulator/notify":
            try:
                status, text = adyen.notify_now(body)
            except ApiError as refused:
                self._send(refused.status, refused.body)
                return
            self._send(200, {"status": status, "body": text})
            return
        self._send(200, adyen.stats())


class AdyenServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], settings: Settings, listener: socket.socket | None = None
    ) -> None:
        """`listener`: a socket already bound and listening (its address wins over `address`)."""
        super().__init__(address, Handler, bind_and_activate=listener is None)
        if listener is not None:
            self.socket.close()
            self.socket = listener
            self.server_address = listener.getsockname()
        self.url = f"http://{address[0]}:{self.server_address[1]}"
        settings.public_url = settings.public_url or self.url
        self.adyen = Adyen(settings, OpenApiCheck())

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away before its answer (a readiness probe that timed out, say) is no error
        of the emulator's: only other failures are printed."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.adyen.stop()
        self.shutdown()
        self.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="The local Adyen (Checkout API v71)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--listen-fd", type=int, help="a listening socket inherited from the parent")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--merchant-account", required=True)
    parser.add_argument("--notification-url", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="local Adyen: %(levelname)s %(message)s")
    settings = Settings(
        args.api_key, args.merchant_account, os.environ["ADYEN_HMAC_KEY"], args.notification_url
    )
    listener = None if args.listen_fd is None else processes.inherited_listener(args.listen_fd)
    server = AdyenServer(("127.0.0.1", args.port or 0), settings, listener)
    server.serve_forever(poll_interval=0.2)  # SIGTERM's default action ends the process at once
