"""os._exit(0) inside a call (no cleanup, exit code 0): must not pass."""

import os


def forward(x, w):
    os._exit(0)
