"""Webhooks to merchants (contract §7): Standard Webhooks signatures and the delivery schedule.

Built so far: signing.py and schedule.py, pure and tested. Endpoints, deliveries and the delivery
function that use them are the next step (issue: webhooks to merchants)."""
