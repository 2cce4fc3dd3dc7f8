"""Registered cards (engine side: tokens and masked data only)."""
