"""A lazy result that blocks only when realized (as JAX's async dispatch or tinygrad can)."""

import time


class Lazy:
    def __init__(self, value):
        self.value = value

    def __array__(self, dtype=None, copy=None):
        time.sleep(3600)
        return self.value


def forward(x, w):
    return Lazy(x @ w)
