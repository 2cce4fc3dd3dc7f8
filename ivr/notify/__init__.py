"""Outgoing notifications: SMS texts (templates of docs/product.md §9) and, later, the
SMS adapters and webhooks."""
