"""Merchants, their API keys (stored hashed) and their customers."""
