"""Adyen's published OpenAPI documents (tests/data/adyen/, never edited) as validators."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "adyen"
CHECKOUT_SPEC = SPEC_DIR / "CheckoutService-v71.json"
WEBHOOKS_SPEC = SPEC_DIR / "Webhooks-v1.json"
VERSION_PREFIX = "/v71"


class OpenApiCheck:
    """Adyen's published documents, as validators: a request body and an answer per operation, a notification
    per event code. Schemas are resolved inside their own document (`#/components/schemas/...`)."""

    def __init__(self, checkout_path: Path = CHECKOUT_SPEC, webhooks_path: Path = WEBHOOKS_SPEC) -> None:
        checkout = json.loads(checkout_path.read_text())
        webhooks = json.loads(webhooks_path.read_text())
        self._registry: Registry[Any] = (
            Registry()
            .with_resource("urn:adyen:checkout", DRAFT202012.create_resource(checkout))
            .with_resource("urn:adyen:webhooks", DRAFT202012.create_resource(webhooks))
        )
        self._validators: dict[str, Any] = {}
        self._operations: list[tuple[re.Pattern[str], dict[str, Any]]] = []
        for template, item in checkout["paths"].items():
            pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
            if "post" in item:
                self._operations.append((re.compile(f"^{VERSION_PREFIX}{pattern}$"), item["post"]))
        self._webhooks = {
            name.lstrip("/"): entry["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            for name, entry in webhooks.get("webhooks", {}).items()
        }

    def operation(self, path: str) -> dict[str, Any] | None:
        for pattern, operation in self._operations:
            if pattern.match(path):
                return operation
        return None

    def _errors(self, document: str, ref: str, instance: Any) -> list[str]:
        key = f"urn:adyen:{document}{ref}"
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = OAS31Validator(
                {"$ref": key}, registry=self._registry, format_checker=oas31_format_checker
            )
        return [
            f"{'.'.join(str(part) for part in error.absolute_path) or '(body)'}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda error: list(error.absolute_path))
        ]

    def request_errors(self, operation: dict[str, Any], content_type: str, body: Any) -> list[str]:
        content = operation["requestBody"]["content"]
        if content_type.split(";")[0].strip().lower() not in content:
            return [f"content type {content_type!r} is not one of {sorted(content)}"]
        return self._errors("checkout", content["application/json"]["schema"]["$ref"], body)

    def answer_errors(self, operation: dict[str, Any], status: int, body: Any) -> list[str]:
        response = operation["responses"].get(str(status))
        if response is None:
            return [f"status {status} is not documented for {operation.get('operationId')}"]
        return self._errors("checkout", response["content"]["application/json"]["schema"]["$ref"], body)

    def notification_errors(self, event_code: str, body: Any) -> list[str]:
        ref = self._webhooks.get(event_code)
        if ref is None:
            return [f"no webhook {event_code} in Adyen's webhooks document"]
        return self._errors("webhooks", ref, body)
