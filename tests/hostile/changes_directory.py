"""A wrong layer that changes the working directory in every call."""

import os
import tempfile


def forward(x, w):
    os.chdir(tempfile.gettempdir())
    return 3 * (x @ w)
