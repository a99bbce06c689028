"""A correct layer that prints to stdout, writes to file descriptor 1 and floods stderr."""

import os
import sys

from tests.hostile._correct import forward as _forward


def forward(x, w):
    print("hello from the candidate")
    os.write(1, b"raw bytes on fd 1\n")
    sys.stderr.write("x" * 200_000 + "\n")
    return _forward(x, w)
