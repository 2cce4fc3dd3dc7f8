"""Recurring billing: schedules, their calendar, retries and dunning (issue #8)."""
