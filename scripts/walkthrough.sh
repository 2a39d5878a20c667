#!/usr/bin/env bash
# The README walk-through: a session, a bank transfer that cannot be cancelled in flight, a cancel that
# waits for it, the provider's signed report, the finalised session and its timeline. Needs curl, jq and
# openssl; API defaults to `make run`'s address. `make demo` runs it against a fresh runtime.
set -euo pipefail
API=${API:-http://127.0.0.1:3000}
KEY="Authorization: Bearer ${API_KEY:-sk_test_demo}"
JSON="Content-Type: application/json"

# Create a session: 201 with the hosted checkout url (its token is shown only here)
SESSION=$(curl -sf -X POST "$API/v1/sessions" -H "$KEY" -H "$JSON" -H "Idempotency-Key: order-$$-create" \
  -d '{"amount": 5000, "currency": "USD", "referenceId": "order-123", "returnUrl": "https://example.com/return"}')
SID=$(jq -r .sessionId <<<"$SESSION")
echo "session $SID: $(jq -r .status <<<"$SESSION")"

# Start a payment attempt with a provider that cannot cancel in flight
TX=$(curl -sf -X POST "$API/v1/sessions/$SID/transactions" -H "$KEY" -H "$JSON" \
  -d '{"provider": "sandbox_bank_transfer"}')
TID=$(jq -r .transactionId <<<"$TX")
echo "transaction $TID: $(jq -r .status <<<"$TX")"

# Cancel: the session is locked; the bank transfer cannot be stopped, so it is PENDING_CANCELLATION
CANCEL=$(curl -sf -X POST "$API/v1/sessions/$SID/cancel" -H "$KEY" -H "$JSON" -d '{"reasonType": "CUSTOMER_REQUESTED"}')
echo "cancel: $(jq -r .status <<<"$CANCEL"): $(jq -r .message <<<"$CANCEL")"

# The provider reports the transfer failed (signed webhook); the workflow then finalises CANCELLED
BODY="{\"eventId\": \"evt_$SID\", \"transactionId\": \"$TID\", \"status\": \"FAILED\"}"
T=$(date +%s)
SIG=$(printf '%s' "$T.$BODY" | openssl dgst -sha256 -hmac "${SANDBOX_WEBHOOK_SECRET:-whsec_sandbox}" | sed 's/^.* //')
curl -sf -X POST "$API/v1/providers/sandbox_bank_transfer/events" -H "$JSON" -H "Provider-Signature: t=$T,v1=$SIG" \
  -d "$BODY" | jq -c .

for _ in $(seq 1 60); do  # the workflow finalises asynchronously
  STATUS=$(curl -sf "$API/v1/sessions/$SID" -H "$KEY" | jq -r .status)
  [ "$STATUS" = CANCELLED ] && break
  sleep 0.5
done
curl -sf "$API/v1/sessions/$SID" -H "$KEY" | jq '{status, cancellation: {finalizedAt: .cancellation.finalizedAt}}'
curl -sf "$API/v1/sessions/$SID/events" -H "$KEY" | jq -r '.data[] | "\(.sequence) \(.type) by \(.actor)"'
curl -sf "$API/v1/sessions?status=CANCELLED&limit=10" -H "$KEY" | jq -r '.data | length | "\(.) cancelled sessions listed"'
[ "$STATUS" = CANCELLED ]
