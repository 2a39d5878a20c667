"""The local Adyen: the part of Adyen's Checkout API v71 that the `adyen` provider calls, with payments kept
in memory and Adyen's standard notifications sent back signed. `python -m local.adyen --port N ...`; the
runtime starts it through `process.LocalAdyen`. Modules: `cards` (Adyen's documented test data),
`openapi_check` (Adyen's documents as validators), `platform` (payments and modifications),
`notifications` (signed, delayed, retried), `server` (the HTTP side and the control routes).

Answers as Adyen documents (docs.adyen.com: "Test card numbers", "Testing result codes and refusal reasons"):
- `POST /v71/payments` with a card (`paymentMethod.type` `scheme`; `number`, or `encryptedCardNumber` with
  Adyen's `test_` prefix): Adyen's test cards (e.g. 4111111111111111, 5555341244441115, expiry 03/2030, CVC
  737, Amex 7373) are `Authorised`; a number that fails the Luhn check is a 422 (`101 Invalid card number`);
  a past expiry is `Refused` / `Expired Card`, a wrong CVC on a test card `Refused` / `CVC Declined`. The
  holder name asks for an outcome, as on Adyen's test platform (`DECLINED` → `Refused`, `NOT_ENOUGH_BALANCE`,
  `CARD_EXPIRED`, `ERROR` → `Error`, `PENDING` → `Received`, ... see REFUSALS). The 3-D Secure 2 test cards
  (THREE_DS_CARDS) answer `RedirectShopper` with a `redirect` action to a one-screen stand-in for the
  issuer's page (authenticate / fail / cancel), which sends the shopper to `returnUrl?redirectResult=...`;
  `POST /v71/payments/details` with that `redirectResult` completes the payment. Manual capture:
  `additionalData.manualCapture: "true"` or `captureDelayHours`; otherwise an authorised payment is captured
  at once.
- `POST /v71/payments/{psp}/cancels`, `/captures`, `/refunds`, `/reversals` and `POST /v71/cancels` (by
  `paymentReference`: Adyen's technical cancel) answer 201 `status: received`; their outcome follows in a
  notification (CANCELLATION, CAPTURE, REFUND, CANCEL_OR_REFUND with `modification.action`,
  TECHNICAL_CANCEL), `success: "false"` with a `reason` where Adyen would refuse (already captured, not
  authorised, unknown payment).
- Authentication by `X-API-Key` (401 otherwise), the merchant account (403 `901`), the currency (422 `138`)
  and a negative amount (422 `137`) are checked as Adyen does.

Every request to `/v71/...` and every answer is checked against Adyen's published OpenAPI document
(tests/data/adyen/CheckoutService-v71.json), every notification against its webhooks document
(Webhooks-v1.json), with `openapi-schema-validator` (OAS 3.1). A request the document refuses is answered 422
in Adyen's error shape (`errorType: validation`) and counted; an answer or notification it refuses is logged
at ERROR and counted. The counts are read at `GET /_emulator/stats` (`specViolations` is their sum; it stays
0 on a faithful run).

Notifications (Adyen's JSON: `{"live": "false", "notificationItems": [{"NotificationRequestItem": {...}}]}`,
one item per request, signed with the SDK's own `Adyen.util.generate_notification_sig` into
`additionalData.hmacSignature`) are POSTed to the notification URL from a background thread after
ADYEN_NOTIFICATION_DELAY_SECONDS (default 1) and retried (ADYEN_NOTIFICATION_ATTEMPTS, default 5, backing off
from 1 s) until the receiver answers 2xx with the body `[accepted]`. `merchantReference` is always the
payment's own `reference`; for a modification `originalReference` is the payment's pspReference and
`pspReference` the modification's.

Control routes (outside Adyen's paths, not checked against the document; JSON in, JSON out):
- `GET  /_emulator/stats`: `{"specViolations", "requestViolations", "responseViolations",
  "notificationViolations", "requests", "payments", "notificationsSent", "notificationsDropped",
  "notificationsFailed", "notificationsPending"}`
- `GET  /_emulator/violations`: the messages behind the counts
- `GET  /_emulator/notifications`: every notification with its state (pending, sent, dropped, failed) and
  attempts
- `POST /_emulator/notifications` `{"drop": true | false | n, "delaySeconds": s}`: drop every (or the next n)
  notification instead of sending it; change the delay
- `POST /_emulator/fail-cancels` `{"count": n, "reason": "..."}`: the next n cancels (by pspReference,
  technical, or a reversal of an uncaptured payment) are acknowledged but fail: `success: "false"`, the
  payment stays authorised
- `POST /_emulator/notify` `{"eventCode": "CAPTURE", "pspReference": "<payment>", "success": true, "reason":
  "", "badSignature": false}`: send that notification for a payment now, and apply it (CAPTURE captures,
  AUTHORISATION authorises); `{"items": [...]}` sends several in one request, as Adyen may; answers the
  receiver's status and body
- `POST /_emulator/hold-payments` `{"count": n, "seconds": s}`: the next n `/payments` are processed (the
  payment exists, its notification follows) but answered only after s seconds or a release, as when an answer
  is lost
- `POST /_emulator/release`: answer the held calls now
- `POST /_emulator/reset`: forget payments, notifications and controls (the violation counts stay)
"""
