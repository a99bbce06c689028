"""sys.exit(0) inside a call: must not pass."""

import sys


def forward(x, w):
    sys.exit(0)
