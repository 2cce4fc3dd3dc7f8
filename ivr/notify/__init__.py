"""Outgoing notifications: SMS texts (templates of PRODUCT section 9) and, later, the
SMS adapters and webhooks."""
