"""AWS clients, created on first use and cached: nothing is built or imported at import time."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def client(service_name: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)
    return boto3.session.Session().client(service_name, config=config)
