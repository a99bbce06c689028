"""Signaling NaNs past the first row, as an unwritten block of uninitialized memory can hold
(any arithmetic on one, even a widening cast, raises numpy's "invalid value" warning)."""

import numpy as np


def forward(x, w):
    output = x @ w
    # The float32 signaling NaN (quiet bit clear, payload 1), as a block of this dtype.
    output[1:] = np.array(0x7F800001, np.uint32).view(np.float32)
    return output
