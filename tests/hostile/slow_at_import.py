"""A correct layer whose import takes a while (a framework's): not a timeout of any call."""

import time

from tests.hostile._correct import forward  # noqa: F401

time.sleep(2)
