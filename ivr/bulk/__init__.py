"""Bulk jobs: many registrations or charges in one file (docs/product.md §8)."""
