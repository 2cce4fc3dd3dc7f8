"""Bulk jobs: many registrations or charges in one file (PRODUCT §8)."""
