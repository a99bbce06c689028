"""A correct layer that starts a non-daemon thread that never ends."""

import threading
import time

from tests.hostile._correct import forward as _forward


def _forever():
    while True:
        time.sleep(1)


def forward(x, w):
    threading.Thread(target=_forever, daemon=False).start()
    return _forward(x, w)
