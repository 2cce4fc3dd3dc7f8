"""Helpers that tests and benchmarks use to drive real processes (Asterisk, SIPp)."""
