"""Webhooks to merchants (contract §7): Standard Webhooks signatures and the delivery schedule.

Built so far, pure and tested: signing.py, schedule.py and addresses.py (the URL rules and SSRF checks). Endpoints, deliveries and the delivery
function that use them are the next step (issue: webhooks to merchants)."""
