"""Webhooks to merchants: endpoints, the fan-out from the bus, deliveries in order per
session and endpoint, their attempts, and the scheduled job that re-derives lost queue messages."""
