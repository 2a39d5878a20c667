"""The local Adyen as a child process of the runtime: it ends when the runtime ends, however it ends."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from local import processes


class LocalAdyen:
    """The emulator as a child process of the runtime, on a free port, notifying the runtime."""

    API_KEY = "adyen_test_local_key"
    MERCHANT_ACCOUNT = "CheckoutSessionsLocal"
    READY_TIMEOUT_SECONDS = 60  # a busy machine: it loads its library (Adyen: its OpenAPI documents) first

    def __init__(
        self,
        notification_url: str,
        hmac_key: str,
        api_key: str = API_KEY,
        merchant_account: str = MERCHANT_ACCOUNT,
    ) -> None:
        with processes.loopback_listener() as listener:
            self.api_base = f"http://127.0.0.1:{listener.getsockname()[1]}"
            self._process = self._spawn(listener, notification_url, hmac_key, api_key, merchant_account)
        if not processes.wait_until_answered(
            self._process, f"{self.api_base}/_emulator/stats", self.READY_TIMEOUT_SECONDS
        ):
            self.stop()
            raise RuntimeError("the local Adyen emulator did not start")

    @staticmethod
    def _spawn(
        listener: socket.socket, notification_url: str, hmac_key: str, api_key: str, merchant_account: str
    ) -> subprocess.Popen[bytes]:
        return processes.spawn(
            [
                sys.executable,
                "-m",
                "local.adyen",
                "--listen-fd",
                str(listener.fileno()),
                "--api-key",
                api_key,
                "--merchant-account",
                merchant_account,
                "--notification-url",
                notification_url,
            ],
            env={**os.environ, "ADYEN_HMAC_KEY": hmac_key},
            pass_fds=(listener.fileno(),),
        )

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
