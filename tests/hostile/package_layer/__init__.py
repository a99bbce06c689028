"""A correct layer as a package: a directory SPEC."""

from ._impl import forward  # noqa: F401
