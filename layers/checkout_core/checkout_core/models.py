"""Pydantic v2 models: what the API accepts and what it answers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from checkout_core.transitions import SessionStatus, TransactionStatus

# Active ISO 4217 codes.
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
    GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW
    KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD
    NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
    SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED
    VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG""".split()
)

MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500


def _integral(value: Any) -> Any:
    """JSON has one number type: 380.0 is the integer 380 (as JSON Schema's `integer` says); 380.5 is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]
NonEmpty64 = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY_LENGTH)]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_LENGTH)]


@dataclass(frozen=True)
class Tenant:
    """Who is calling, as the authorizer resolved it from the API key."""

    tenant_id: str
    return_hosts: frozenset[str]
    merchant_name: str | None = None  # the display name the hosted page shows its customers


class Model(BaseModel):
    """Validators are built on first use, not at import: a cold start pays only for what it uses."""

    model_config = ConfigDict(defer_build=True)


class Strict(Model):
    """Unknown fields are refused; numbers must be numbers, strings strings.

    Enum fields opt out of strictness: in strict mode pydantic would want enum instances, not the
    strings a parsed JSON body holds; their allowed values still bind.
    """

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class ReasonType(StrEnum):
    CUSTOMER_REQUESTED = "CUSTOMER_REQUESTED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    EXPIRED = "EXPIRED"
    DUPLICATE = "DUPLICATE"
    FRAUDULENT = "FRAUDULENT"
    ABANDONED = "ABANDONED"
    OTHER = "OTHER"


class WhenInFlight(StrEnum):
    WAIT = "WAIT"
    REJECT = "REJECT"


# A return URL, exactly: https and a DNS host (or http to localhost / 127.0.0.1, which only the local runtime
# accepts), an optional port, then no fragment, space or control character.
# The same text is the OpenAPI document's pattern, in a dialect Python and ECMA-262 read alike (explicit
# classes, no \\s, which the two define differently). The host allowlist is the tenant's, checked later.
_HOST_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_URL_CHARACTER = "[^#\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
RETURN_URL_PATTERN = (
    rf"^(?:https://{_HOST_LABEL}(?:\.{_HOST_LABEL})*|http://(?:localhost|127\.0\.0\.1))"
    rf"(?::{_PORT})?(?:[/?]{_URL_CHARACTER}*)?$"
)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})
_RETURN_URL = re.compile(RETURN_URL_PATTERN)
_URL_SCHEMA = {"pattern": RETURN_URL_PATTERN}


def _host_of(rest: str) -> str:
    return re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2].partition(":")[0].lower()


def check_return_url_shape(url: str, field: str = "returnUrl") -> str:
    """https only, no credentials, no fragment: the common mistakes named, then the whole shape."""
    scheme, _, rest = url.partition("://")
    if scheme != "https" and not (scheme == "http" and _host_of(rest) in LOOPBACK_HOSTS):
        raise ValueError(f"{field} must use https (http only to localhost or 127.0.0.1, locally)")
    if "@" in re.split(r"[/?#]", rest, maxsplit=1)[0]:
        raise ValueError(f"{field} must not carry credentials")
    if "#" in url:
        raise ValueError(f"{field} must not have a fragment")
    if not _RETURN_URL.fullmatch(url):
        raise ValueError(f"{field} is not a valid URL")
    return url


class CreateSessionRequest(Strict):
    amount: Annotated[
        int, Field(ge=0, le=99_999_999_999, description="Minor units, e.g. cents"), BeforeValidator(_integral)
    ]
    currency: Annotated[
        str,
        Field(
            min_length=3,
            max_length=3,
            description="ISO 4217 code",
            json_schema_extra={"enum": sorted(ISO_4217)},
        ),
    ]
    referenceId: NonEmpty64
    customerId: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    description: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": MAX_METADATA_KEYS}
    )
    returnUrl: Annotated[
        str,
        StringConstraints(min_length=1, max_length=2048),
        Field(
            description="https, its host in the account's allowlist; on the local runtime also "
            "http://localhost or http://127.0.0.1",
            json_schema_extra=_URL_SCHEMA,
        ),
    ]
    cancelUrl: (
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=2048),
            Field(
                description="Where a customer who cancels is sent; default returnUrl",
                json_schema_extra=_URL_SCHEMA,
            ),
        ]
        | None
    ) = None
    expiresInSeconds: Integer | None = Field(
        default=None, description="Bounded by SESSION_TTL_MIN/MAX_SECONDS"
    )

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        if value not in ISO_4217:
            raise ValueError("currency must be an ISO 4217 code in upper case")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"metadata accepts at most {MAX_METADATA_KEYS} keys")
        return value

    @field_validator("returnUrl")
    @classmethod
    def _return_url(cls, value: str) -> str:
        return check_return_url_shape(value)

    @field_validator("cancelUrl")
    @classmethod
    def _cancel_url(cls, value: str | None) -> str | None:
        return None if value is None else check_return_url_shape(value, "cancelUrl")


class CaptureMethod(StrEnum):
    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"


_PAYMENT_METHOD_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
# Adyen's card `paymentMethod` (CardDetails in its Checkout API v71 document): what its Drop-in's card
# component produces (the encrypted fields) or, where PCI DSS allows, raw card data. Field -> longest value
# (Adyen's own limit where it states one). Anything else Adyen's document would refuse is refused here.
ADYEN_CARD_TYPES = ("scheme", "card", "bcmc", "networkToken", "giftcard", "clicktopay")
ADYEN_FUNDING_SOURCES = ("credit", "debit", "prepaid")
_ADYEN_CARD_FIELDS = {
    "number": 32,
    "expiryMonth": 2,
    "expiryYear": 4,
    "cvc": 4,
    "holderName": 15000,
    "encryptedCardNumber": 15000,
    "encryptedExpiryMonth": 15000,
    "encryptedExpiryYear": 15000,
    "encryptedSecurityCode": 15000,
    "encryptedCard": 40000,
    "encryptedPassword": 15000,
    "brand": 64,
    "checkoutAttemptId": 256,
    "storedPaymentMethodId": 64,
    "threeDS2SdkVersion": 12,
    "sdkData": 50000,
    "networkPaymentReference": 256,
    "shopperNotificationReference": 256,
    "billingSequenceNumber": 16,
    "srcCorrelationId": 256,
    "srcDigitalCardId": 256,
    "srcScheme": 64,
    "srcTokenReference": 256,
    "fastlaneData": 50000,
}
_PAYMENT_METHOD_SCHEMA = {
    "anyOf": [
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": "^[A-Za-z0-9_]+$",
            "description": "stripe: its payment method's id, e.g. pm_card_visa",
        },
        {
            "type": "object",
            "description": "adyen: its own card paymentMethod object, as its Drop-in produces it (encrypted "
            'fields), or raw test card data, e.g. {"type": "scheme", "number": "4111111111111111", '
            '"expiryMonth": "03", "expiryYear": "2030", "cvc": "737", "holderName": "J. Smith"}',
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "enum": list(ADYEN_CARD_TYPES)},
                "fundingSource": {"type": "string", "enum": list(ADYEN_FUNDING_SOURCES)},
                **{name: {"type": "string", "maxLength": size} for name, size in _ADYEN_CARD_FIELDS.items()},
            },
            "additionalProperties": False,
        },
        {"type": "null"},
    ],
    "description": "Required with stripe (an id) and adyen (its object)",
}


def _payment_method(value: Any) -> str | dict[str, str] | None:
    """An id (a string), or Adyen's card object; which one a provider takes is checked against the
    provider (payments.py)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not _PAYMENT_METHOD_ID.fullmatch(value):
            raise ValueError("an id is 1 to 255 letters, digits or underscores")
        return value
    if not isinstance(value, dict):
        raise ValueError("must be a string (an id) or an object (the provider's own)")
    for name, field_value in value.items():
        if name not in _ADYEN_CARD_FIELDS and name not in ("type", "fundingSource"):
            raise ValueError(f"unknown field {json.dumps(name)}")
        if not isinstance(field_value, str):
            raise ValueError(f"{name} must be a string")
        if len(field_value) > _ADYEN_CARD_FIELDS.get(name, 64):
            raise ValueError(f"{name} is longer than {_ADYEN_CARD_FIELDS.get(name, 64)} characters")
    if value.get("type") not in ADYEN_CARD_TYPES:
        raise ValueError(f"type must be one of {', '.join(ADYEN_CARD_TYPES)}")
    if "fundingSource" in value and value["fundingSource"] not in ADYEN_FUNDING_SOURCES:
        raise ValueError(f"fundingSource must be one of {', '.join(ADYEN_FUNDING_SOURCES)}")
    return dict(value)


PaymentMethod = Annotated[Any, BeforeValidator(_payment_method), WithJsonSchema(_PAYMENT_METHOD_SCHEMA)]


class CreateTransactionRequest(Strict):
    provider: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    paymentMethod: PaymentMethod = None
    captureMethod: Annotated[
        CaptureMethod,
        Field(strict=False, description="MANUAL: authorise now, capture later (stripe and adyen)"),
    ] = CaptureMethod.AUTOMATIC


class CancelRequest(Strict):
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    reasonType: Annotated[ReasonType | None, Field(strict=False)] = None
    referenceId: Annotated[str, StringConstraints(max_length=64)] | None = None
    whenInFlight: Annotated[WhenInFlight, Field(strict=False)] = WhenInFlight.WAIT


class ProviderEventRequest(Strict):
    eventId: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    transactionId: Annotated[str, StringConstraints(min_length=36, max_length=36)]
    status: Annotated[TransactionStatus, Field(strict=False)]
    # What the provider holds for the payment; where sent, an event that disagrees with the record is
    # not applied (another reference: ignored; another amount or currency: attention required).
    providerReference: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    amount: Annotated[int, Field(ge=0, description="Minor units"), BeforeValidator(_integral)] | None = None
    currency: (
        Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(description="ISO 4217")] | None
    ) = None


class NextAction(Model):
    """Where the customer must go to finish a payment (3-D Secure, their bank's page)."""

    type: Literal["redirect"] = "redirect"
    url: str


class Transaction(Model):
    transactionId: str
    provider: str
    status: Annotated[TransactionStatus, Field(strict=False)]
    amount: int
    providerReference: str | None = None
    refundId: str | None = None
    failureCode: str | None = None
    nextAction: NextAction | None = Field(
        default=None,
        description=(
            "Set while a PROCESSING payment waits for the customer: send them to `url`; the provider "
            "brings them back to the hosted page's return route, which records the outcome"
        ),
    )
    cancelRequestedAt: str | None = Field(
        default=None,
        description="Set while a cancel the provider accepted awaits its report (adyen): still in flight",
    )
    createdAt: str
    updatedAt: str


class Cancellation(Model):
    reason: str | None = None
    reasonType: Annotated[ReasonType | None, Field(strict=False)] = None
    referenceId: str | None = None
    requestedAt: str
    finalizedAt: str | None = None
    finalizeBy: str | None = None
    cancelledTransactionIds: list[str] = Field(default_factory=list)
    pendingTransactionIds: list[str] = Field(default_factory=list)
    settledTransactionIds: list[str] = Field(default_factory=list)
    refundedTransactionIds: list[str] = Field(default_factory=list)
    attentionRequired: bool = False


class Session(Model):
    sessionId: str
    status: SessionStatus
    amount: int
    currency: str
    referenceId: str
    customerId: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    returnUrl: str
    cancelUrl: str | None = None
    url: str | None = None
    createdAt: str
    updatedAt: str
    expiresAt: str
    completedAt: str | None = None
    cancelledAt: str | None = None
    expiredAt: str | None = None
    cancellation: Cancellation | None = None
    transactions: list[Transaction] = Field(default_factory=list)


class SessionList(Model):
    data: list[Session]
    nextCursor: str | None = None


class CancelResponse(Model):
    sessionId: str
    status: SessionStatus
    message: str
    cancelledTransactionIds: list[str]
    pendingTransactionIds: list[str]
    cancellation: Cancellation


class Event(Model):
    eventId: str
    type: str
    sessionId: str
    sequence: int
    occurredAt: str
    actor: str
    data: dict[str, Any] = Field(default_factory=dict)


class EventList(Model):
    data: list[Event]


class ProviderEventAck(Model):
    received: Literal[True] = True
    applied: bool


class ErrorBody(Model):
    code: str
    message: str
    param: str | None = None
    currentStatus: str | None = None
    requestId: str | None = None
    pendingTransactionIds: list[str] | None = None
    transactionId: str | None = None
    failureCode: str | None = None


class ErrorResponse(Model):
    error: ErrorBody


# ---------------------------------------------------------------- webhooks to merchants


class EventType(StrEnum):
    SESSION_CREATED = "session.created"
    SESSION_COMPLETED = "session.completed"
    SESSION_CANCELLATION_PENDING = "session.cancellation_pending"
    SESSION_CANCELLED = "session.cancelled"
    SESSION_EXPIRED = "session.expired"
    SESSION_ATTENTION_REQUIRED = "session.attention_required"
    TRANSACTION_CREATED = "transaction.created"
    TRANSACTION_UPDATED = "transaction.updated"
    TRANSACTION_REFUNDED = "transaction.refunded"


class EndpointStatus(StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    EXHAUSTED = "EXHAUSTED"


WEBHOOK_URL_PATTERN = RETURN_URL_PATTERN.replace("^https://", "^https?://", 1)
_WEBHOOK_URL = re.compile(WEBHOOK_URL_PATTERN)
EndpointUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048),
    Field(
        description="https, no credentials, a public address; plain http and private addresses only where "
        "WEBHOOK_ALLOW_PRIVATE_URLS (local runtimes)",
        json_schema_extra={"pattern": WEBHOOK_URL_PATTERN},
    ),
]
EventTypes = Annotated[
    list[Annotated[EventType, Field(strict=False)]],
    Field(
        max_length=len(EventType),
        description="Types delivered; empty: every type",
        json_schema_extra={"uniqueItems": True},
    ),
]
EndpointDescription = Annotated[str, StringConstraints(max_length=500)]


def _webhook_url(value: str | None) -> str | None:
    if value is None:
        return value
    scheme, _, rest = value.partition("://")
    if scheme not in ("https", "http"):
        raise ValueError("url must use https")
    if "@" in re.split(r"[/?#]", rest, maxsplit=1)[0]:
        raise ValueError("url must not carry credentials")
    if not _WEBHOOK_URL.fullmatch(value):
        raise ValueError("url is not a valid URL")
    return value


def _distinct(value: list[EventType] | None) -> list[EventType] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("eventTypes must not repeat a type")
    return value


class CreateEndpointRequest(Strict):
    url: EndpointUrl
    eventTypes: EventTypes = Field(default_factory=list)
    description: EndpointDescription | None = None

    _distinct_types = field_validator("eventTypes")(_distinct)
    _url_shape = field_validator("url")(_webhook_url)


class UpdateEndpointRequest(Strict):
    """Fields left out, or null, stay as they are; `description: null` removes the description."""

    url: EndpointUrl | None = None
    eventTypes: EventTypes | None = None
    description: EndpointDescription | None = None
    status: Annotated[EndpointStatus | None, Field(strict=False)] = None

    _distinct_types = field_validator("eventTypes")(_distinct)
    _url_shape = field_validator("url")(_webhook_url)


RECOVER_SINCE_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


class RecoverRequest(Strict):
    since: Annotated[
        str,
        StringConstraints(min_length=20, max_length=40, pattern=RECOVER_SINCE_PATTERN),
        Field(description="ISO 8601 time with Z or an offset; earlier than 30 days ago means 30 days ago"),
    ]


class WebhookEndpoint(Model):
    endpointId: str
    url: str
    eventTypes: list[str]
    description: str | None = None
    status: EndpointStatus
    disabledReason: Literal["GONE", "FAILING", "MANUAL"] | None = None
    createdAt: str
    updatedAt: str


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str = Field(description="whsec_ + base64 of 32 random bytes; shown only in this answer")


class WebhookEndpointList(Model):
    data: list[WebhookEndpoint]
    nextCursor: str | None = None


class Delivery(Model):
    deliveryId: str
    endpointId: str
    eventId: str
    type: str
    sessionId: str | None = None
    status: DeliveryStatus
    attempts: int
    lastAttemptAt: str | None = None
    lastResponseStatus: int | None = None
    lastError: str | None = None
    nextAttemptAt: str | None = Field(
        default=None,
        description="When the next attempt is due (never before createdAt); for a delivery waiting behind "
        "an earlier one of its session (see waitingFor), not before that one's next attempt. Null when none "
        "is scheduled.",
    )
    waitingFor: str | None = Field(
        default=None,
        description="The deliveryId of the session's earlier delivery to this endpoint that this one waits "
        "behind (events of a session go out in order); null when it waits for nothing.",
    )
    createdAt: str


class DeliveryList(Model):
    data: list[Delivery]
    nextCursor: str | None = None


class RecoverResponse(Model):
    endpointId: str
    since: str
    recovered: int = Field(description="FAILED or EXHAUSTED deliveries sent again")
