"""Hostile and unusual candidates, one file each, for tests/test_isolation.py."""
