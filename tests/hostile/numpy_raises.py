"""A correct layer that sets numpy to raise on every floating-point event at import."""

import numpy as np

from tests.hostile._correct import forward, grad_w, loss, step  # noqa: F401

np.seterr(all="raise")
