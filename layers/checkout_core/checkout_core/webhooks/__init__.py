"""Webhooks to merchants (contract §7).

Built so far, pure and tested: signing.py (Standard Webhooks signatures), schedule.py (when a delivery is
tried again) and addresses.py (the URL rules and SSRF checks). Endpoints, deliveries and the delivery
function that use them are the next step."""
