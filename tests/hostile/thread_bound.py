"""A correct layer with thread-bound state (as tinygrad's SQLite cache): it works only in the
thread that imported it."""

import sqlite3

from tests.hostile._correct import forward as _forward

_connection = sqlite3.connect(":memory:")


def forward(x, w):
    _connection.execute("select 1")  # raises from any other thread
    return _forward(x, w)
