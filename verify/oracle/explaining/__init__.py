"""Explanations of a wrong result by its structure (branch, weight and update tables)."""
