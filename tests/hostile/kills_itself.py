"""SIGKILL of its own process in a call, as the OOM killer would."""

import os
import signal


def forward(x, w):
    os.kill(os.getpid(), signal.SIGKILL)
