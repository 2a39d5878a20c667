"""AWS clients, created on first use and cached: nothing is built or imported at import time."""

from __future__ import annotations

from functools import cache
from typing import Any

# What the service's code calls: the runtime's environments find them parsed (see data_loader).
SERVICES = ("dynamodb", "sqs", "events", "stepfunctions", "secretsmanager", "kms")


@cache
def data_loader() -> Any:
    """botocore's data files (its endpoints, partitions and service models), parsed once per process and
    shared by every client: each new botocore session would otherwise parse them again (about 50 ms of CPU
    per client)."""
    import botocore.session

    return botocore.session.get_session().get_component("data_loader")


@cache
def client(service_name: str) -> Any:
    import boto3
    import botocore.session
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)
    core = botocore.session.get_session()
    core.register_component("data_loader", data_loader())
    return boto3.session.Session(botocore_session=core).client(service_name, config=config)


def preload() -> None:
    """Parses what a client of each service needs, so processes forked after this find it done."""
    loader = data_loader()
    loader.load_data("endpoints")
    loader.load_data("partitions")
    for service in SERVICES:
        loader.load_service_model(service, "service-2")
        loader.load_service_model(service, "endpoint-rule-set-1")
