"""Durable background work shared by every engine process (the ``jobs`` table)."""
