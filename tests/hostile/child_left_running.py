"""A correct layer that starts a child process that would outlive everything."""

import subprocess
import sys

from tests.hostile._correct import forward as _forward

_children = []


def forward(x, w):
    if not _children:
        _children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"]))
    return _forward(x, w)
