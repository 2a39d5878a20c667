import re
from typing import Any

import pytest
from pydantic import ValidationError

from checkout_core.models import RETURN_URL_PATTERN, CancelRequest, CreateSessionRequest, ProviderEventRequest

VALID: dict[str, Any] = {
    "amount": 5000,
    "currency": "USD",
    "referenceId": "order-123",
    "returnUrl": "https://example.com/return",
}


def error_of(payload: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest.model_validate(payload)
    first = caught.value.errors()[0]
    return tuple(first["loc"]), first["type"]


def test_a_minimal_valid_request_is_accepted() -> None:
    request = CreateSessionRequest.model_validate(VALID)
    assert request.metadata == {}
    assert request.expiresInSeconds is None


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"amount": -1}, ("amount",)),
        ({"amount": 10.5}, ("amount",)),
        ({"amount": "5000"}, ("amount",)),
        ({"amount": True}, ("amount",)),
        ({"currency": "usd"}, ("currency",)),
        ({"currency": "ABC"}, ("currency",)),
        ({"currency": "US"}, ("currency",)),
        ({"referenceId": ""}, ("referenceId",)),
        ({"referenceId": "x" * 65}, ("referenceId",)),
        ({"customerId": "x" * 65}, ("customerId",)),
        ({"description": ""}, ("description",)),
        ({"description": "x" * 1001}, ("description",)),
        ({"metadata": {"orderId": 5}}, ("metadata", "orderId")),
        ({"metadata": {"orderId": "x" * 501}}, ("metadata", "orderId")),
        ({"metadata": {"k" * 41: "v"}}, ("metadata", "k" * 41, "[key]")),
        ({"metadata": {f"k{i}": "v" for i in range(51)}}, ("metadata",)),
        ({"expiresInSeconds": "60"}, ("expiresInSeconds",)),
    ],
)
def test_out_of_range_or_mistyped_fields_name_the_field(
    change: dict[str, Any], location: tuple[Any, ...]
) -> None:
    assert error_of({**VALID, **change})[0] == location


@pytest.mark.parametrize("missing", ["amount", "currency", "referenceId", "returnUrl"])
def test_required_fields(missing: str) -> None:
    payload = {key: value for key, value in VALID.items() if key != missing}
    assert error_of(payload) == ((missing,), "missing")


def test_unknown_fields_are_refused_by_name() -> None:
    assert error_of({**VALID, "amout": 1}) == (("amout",), "extra_forbidden")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/return",
        "https://user:pass@example.com/return",
        "https://user@example.com/return",
        "https://example.com/return#fragment",
        "https://example.com/return#",
        "ftp://example.com/",
        "https:///nohost",
        "https://exa mple.com/",
        "javascript:alert(1)",
        "http://localhost.example.com/",
        "http://127.0.0.2/",
        "http://user@localhost/return",
        "http://localhost/return#fragment",
    ],
)
def test_return_url_rules(url: str) -> None:
    assert error_of({**VALID, "returnUrl": url})[0] == ("returnUrl",)


@pytest.mark.parametrize(
    "url", ["https://example.com:8443/r?x=1", "http://localhost:8080/r?x=1", "http://127.0.0.1/r?x=1"]
)
def test_return_url_with_port_and_query_is_accepted(url: str) -> None:
    # http to loopback has the right shape; whether it is accepted is the runtime's setting (tests/integration)
    request = CreateSessionRequest.model_validate({**VALID, "returnUrl": url})
    assert request.returnUrl.endswith("?x=1")
    assert re.fullmatch(RETURN_URL_PATTERN, url)


def test_cancel_body_is_optional_and_defaults_to_wait() -> None:
    assert CancelRequest().whenInFlight.value == "WAIT"
    with pytest.raises(ValidationError):
        CancelRequest.model_validate({"whenInFlight": "LATER"})
    with pytest.raises(ValidationError):
        CancelRequest.model_validate({"reasonType": "BORED"})
    with pytest.raises(ValidationError):
        CancelRequest.model_validate({"reason": "x" * 501})


def test_provider_event_status_must_be_a_transaction_status() -> None:
    with pytest.raises(ValidationError):
        ProviderEventRequest.model_validate({"eventId": "e", "transactionId": "x" * 36, "status": "DONE"})


def test_enum_fields_accept_their_values_as_parsed_json_strings() -> None:
    request = CancelRequest.model_validate({"reasonType": "FRAUDULENT", "whenInFlight": "REJECT"})
    assert (request.reasonType, request.whenInFlight) == ("FRAUDULENT", "REJECT")
    event = ProviderEventRequest.model_validate(
        {"eventId": "e", "transactionId": "x" * 36, "status": "SETTLED"}
    )
    assert event.status == "SETTLED"
