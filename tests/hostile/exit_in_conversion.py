"""A result whose conversion to numpy raises SystemExit."""

import sys


class Lazy:
    def __array__(self, dtype=None, copy=None):
        sys.exit(0)


def forward(x, w):
    return Lazy()
