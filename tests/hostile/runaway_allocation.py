"""An allocation far beyond any machine's memory."""

import numpy as np


def forward(x, w):
    waste = np.ones((1 << 40,), np.uint8)
    return x @ w + waste[0]
