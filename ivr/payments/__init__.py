"""Payments: intents, charge attempts with an order id saved before each request, the
exactly-once charging engine, reconciliation of unknown outcomes, refunds."""
